"""A stand-in sandbox runtime for the sandbox tests: the "sandbox" is this process, and its agent
command is one real Messages request through the shim with the credential the sandbox was given
(tests/harness/sandbox/test_e2e.py, test_smoke.py)."""
import httpx

from harness.sandbox.runtime import ArtifactReadError, CommandResult

ARTIFACT = "/tmp/claude_result.txt"


class Box:
    """A sandbox whose command is one Messages request through the shim, its answer the artifact."""

    id = "box-1"

    def __init__(self, env: dict, exit_code: int | None = None, artifact: str | None = None,
                 writes_artifact: bool = True, raises: Exception | None = None) -> None:
        self.env, self.exit_code, self.artifact, self.raises = env, exit_code, artifact, raises
        self.writes_artifact = writes_artifact
        self.files: dict[str, str] = {}
        self.deleted = False

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        if self.raises is not None:
            raise self.raises
        resp = httpx.post(
            self.env["ANTHROPIC_BASE_URL"] + "/v1/messages", trust_env=False, timeout=30,
            headers={"authorization": f"Bearer {self.env['ANTHROPIC_AUTH_TOKEN']}",
                     "anthropic-version": "2023-06-01"},
            json={"model": self.env["ANTHROPIC_MODEL"], "max_tokens": 20,
                  "messages": [{"role": "user", "content": "hi"}],
                  "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]})
        text = resp.json()["content"][0]["text"] if resp.status_code == 200 else resp.text
        if self.writes_artifact:
            self.files[ARTIFACT] = text if self.artifact is None else self.artifact
        code = self.exit_code if self.exit_code is not None else (0 if resp.status_code == 200 else 1)
        return CommandResult(code, text, "" if code == 0 else "agent failed")

    def read_file(self, path: str) -> str:
        if path not in self.files:
            raise ArtifactReadError(f"cannot read {path} in sandbox {self.id}")
        return self.files[path]

    def delete(self) -> None:
        self.deleted = True


class Runtime:
    name = "stand-in"

    def __init__(self, create_error: Exception | None = None, **box) -> None:
        self.create_error, self.box_options = create_error, box
        self.created: list[dict] = []
        self.box: Box | None = None

    def create(self, env, image=None, name=None, timeout=300.0) -> Box:
        self.created.append({"env": dict(env), "image": image, "name": name, "timeout": timeout})
        if self.create_error is not None:
            raise self.create_error
        self.box = Box(dict(env), **self.box_options)
        return self.box
