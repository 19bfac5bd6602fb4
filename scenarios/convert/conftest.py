"""A catalog that routes `glm-4.6` (and `glm-*`) to an OpenAI-protocol provider on the mock."""
import pytest

GLM_KEY = "glm-test-key-3f9d2a61"


@pytest.fixture
def glm_shim(make_shim, mock_anthropic, mock_zai, tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text(f"""
providers:
  glm:
    protocol: openai
    base_url: {mock_zai.base_url}/api/paas/v4
    key_env: GLM_API_KEY
    routes:
      - name: glm-4.6
        model: glm-4.6-chat
      - name: "glm-*"
""")
    return make_shim({"CCP_PROVIDERS_FILE": str(providers), "GLM_API_KEY": GLM_KEY})
