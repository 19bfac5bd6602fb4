"""The candidate-client relays: each forwards to a TLS upstream it trusts by --ca, streams what comes
back, and one whose library is not installed says so and exits 3 (the bench reports it skipped)."""
import asyncio
import json
import subprocess
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer

from harness.bench import client_relays
from harness.shim import PROJECT_ROOT
from harness.tls_mock import TlsMock, anthropic_app

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def mock():
    with TlsMock(anthropic_app) as server:
        yield server


@pytest.mark.parametrize("name", ["aiohttp", "httpx-h1", "httpx-h2"])
def test_a_candidate_relays_json_and_streams_over_tls(mock, name):
    async def go():
        candidate = client_relays.make_candidate(name, str(mock.ca_path))
        app = client_relays.make_app(mock.base_url, candidate.send)
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/v1/messages", json={"model": "m"},
                                     headers={"x-api-key": "k"})
            assert resp.status == 200 and (await resp.json())["type"] == "message"
            resp = await client.post("/v1/messages", json={"model": "m", "stream": True})
            text = await resp.text()
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert text.count("event: ") >= 4 and "message_stop" in text
        await candidate.close()

    before = len(mock.calls)
    asyncio.run(go())
    versions = {call.http_version for call in mock.calls[before:]}
    assert versions == ({"2"} if name.endswith("h2") else {"1.1"})


def test_an_unknown_candidate_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown client 'nope'"):
        client_relays.make_candidate("nope", None)


def test_a_candidate_whose_library_is_missing_exits_3_with_a_line():
    try:
        import curl_cffi  # noqa: F401
        pytest.skip("curl_cffi is installed here; the missing path needs a missing library")
    except ImportError:
        pass
    done = subprocess.run([sys.executable, "-m", "harness.bench.client_relays", "--client", "curl-h1",
                           "--upstream", "https://127.0.0.1:9"], cwd=PROJECT_ROOT,
                          capture_output=True, timeout=60)
    assert done.returncode == 3
    line = json.loads(done.stdout.splitlines()[0])
    assert line["event"] == "missing" and line["client"] == "curl-h1"
