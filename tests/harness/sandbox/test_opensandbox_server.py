"""The compatible server's HTTP surface: the lifecycle shapes the SDK parses, errors, the API key."""
import httpx
import pytest

from harness.sandbox.opensandbox_server import (
    API_KEY_HEADER,
    EXECD_PORT,
    OpenSandboxServer,
)

pytestmark = pytest.mark.sandbox

CREATE = {"image": {"uri": "opensandbox/code-interpreter:v1.0.1"}, "entrypoint": ["/bin/true"],
          "env": {"FOO": "1"}, "timeout": 600, "resourceLimits": {"cpu": "1"}}


@pytest.fixture
def client():
    with OpenSandboxServer(api_key="sk-k") as srv, \
            httpx.Client(base_url=srv.base_url, trust_env=False, timeout=10,
                         headers={API_KEY_HEADER: "sk-k"}) as c:
        yield c


def test_lifecycle_round_trip(client):
    created = client.post("/v1/sandboxes", json=CREATE)
    assert created.status_code == 202
    body = created.json()
    assert body["status"]["state"] == "Running" and body["entrypoint"] == ["/bin/true"]
    assert {"createdAt", "expiresAt"} <= set(body)
    sid = body["id"]
    assert client.get(f"/v1/sandboxes/{sid}").json()["image"] == {"uri": CREATE["image"]["uri"]}
    assert [item["id"] for item in client.get("/v1/sandboxes").json()["items"]] == [sid]
    endpoint = client.get(f"/v1/sandboxes/{sid}/endpoints/{EXECD_PORT}").json()["endpoint"]
    assert endpoint.startswith("127.0.0.1:") and endpoint.endswith(f"/execd/{sid}")
    assert httpx.get(f"http://{endpoint}/ping", trust_env=False).status_code == 200
    assert client.post("/v1/metrics/events", json={"eventType": "sandbox.create"}).status_code == 204
    assert client.delete(f"/v1/sandboxes/{sid}").status_code == 204
    gone = client.delete(f"/v1/sandboxes/{sid}")
    assert gone.status_code == 404 and gone.json()["code"] == "DOCKER::SANDBOX_NOT_FOUND"


def test_errors_use_the_real_servers_shapes(client):
    bad = client.post("/v1/sandboxes", json={**CREATE, "image": {"uri": "x/does-not-exist:1"}})
    assert bad.status_code == 500 and bad.json()["code"] == "DOCKER::SANDBOX_IMAGE_PULL_FAILED"
    assert client.post("/v1/sandboxes", json={**CREATE, "entrypoint": []}).status_code == 400
    assert client.get("/v1/sandboxes", headers={API_KEY_HEADER: ""}).json()["code"] == "MISSING_API_KEY"
    wrong = client.get("/v1/sandboxes", headers={API_KEY_HEADER: "nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_API_KEY"
    assert client.get("/health", headers={API_KEY_HEADER: ""}).status_code == 200


def test_known_images_limit_what_exists():
    with OpenSandboxServer(known_images={"a:1"}) as srv, httpx.Client(base_url=srv.base_url,
                                                                       trust_env=False) as c:
        assert c.post("/v1/sandboxes", json={**CREATE, "image": {"uri": "b:1"}}).status_code == 500
        assert c.post("/v1/sandboxes", json={**CREATE, "image": {"uri": "a:1"}}).status_code == 202
        assert len(srv.sandboxes) == 1
    assert not srv.sandboxes
