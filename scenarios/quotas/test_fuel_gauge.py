"""The fuel gauge without quotas, on a real shim: requests to both mock lanes (one of them failing)
and a 404, then the real `python -m proxy usage` and `python -m proxy status` show tokens, requests
and errors per lane and model that match what the mock upstreams answered — against the running
shim (by --url, and by the profile's pid and port files), and from the store once it has stopped."""
import json
import subprocess
import sys

import httpx
import pytest

from harness.probes import http_probe
from harness.shim import PROJECT_ROOT, clean_env
from proxy.config.profiles import RunFiles

pytestmark = [pytest.mark.quotas]

HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"


def ccp(shim, *args):
    """`python -m proxy ARGS` with the shim's logs folder and config home (so: its store)."""
    env = clean_env({"CCP_LOGS_DIR": str(shim.logs_dir),
                     "CCP_CONFIG_HOME": str(shim.logs_dir / "config-home")})
    out = subprocess.run([sys.executable, "-m", "proxy", *args], env=env, cwd=PROJECT_ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout


def answered_usage(call) -> tuple[int, int]:
    """(input, output) tokens of what a mock answered: its JSON body, or its SSE stream's
    message_start and last message_delta."""
    if call.sent.lstrip().startswith(b"{"):
        usage = json.loads(call.sent)["usage"]
        return usage["input_tokens"], usage["output_tokens"]
    tin = tout = 0
    for line in call.sent.decode().splitlines():
        if not line.startswith("data:"):
            continue
        event = json.loads(line[5:])
        if event["type"] == "message_start":
            tin = event["message"]["usage"]["input_tokens"]
        elif event["type"] == "message_delta":
            tout = event["usage"]["output_tokens"]
    return tin, tout


def lane_tokens(mock) -> tuple[int, int]:
    pairs = [answered_usage(c) for c in mock.calls if c.status == 200]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def gauge(text: str) -> str:
    return text[text.index("fuel gauge"):]


def test_usage_and_status_show_the_fuel_gauge(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    key = keys["CLIENT_API_KEY"]
    results = [http_probe(shim.url, HAIKU, api_key=key),
               http_probe(shim.url, HAIKU, stream=True, api_key=key),
               http_probe(shim.url, SONNET, stream=True, api_key=key),
               http_probe(shim.url, SONNET, api_key=key,
                          extra_headers={"x-mock-fault": "status=529"})]
    assert [(r.status, r.lane) for r in results] == [
        (200, "zai"), (200, "zai"), (200, "anthropic"), (529, "anthropic")]
    assert httpx.get(f"{shim.url}/no/such/path", trust_env=False).status_code == 404
    shim.wait_for_records(5)
    zin, zout = lane_tokens(mock_zai)
    ain, aout = lane_tokens(mock_anthropic)
    assert len(mock_zai.calls) == 2 and zin > 0 and zout > 0 and ain > 0 and aout > 0

    status = ccp(shim, "status", "--url", shim.url)
    assert "running shim" in status and "quotas none" in status
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in gauge(status).splitlines()[2:]}
    want = {("zai", HAIKU): [2, 0, zin, zout] * 2,
            ("anthropic", SONNET): [2, 1, ain, aout] * 2,
            ("-", "-"): [0, 1, 0, 0] * 2,  # the 404: no model request, but an error
            ("(all)", "(all)"): [4, 2, zin + ain, zout + aout] * 2}
    assert rows == {k: [str(n) for n in v] for k, v in want.items()}, status

    usage = ccp(shim, "usage", "--url", shim.url)
    assert "no quotas configured" in usage
    assert (f"  zai {HAIKU}: 5h 2 req 0 err {zin} in {zout} out | 7d 2 req 0 err {zin} in {zout}"
            f" out") in usage
    banner = ccp(shim, "usage", "--banner", "--url", shim.url)
    assert banner == (f"ccp anthropic 5h {ain + aout} tok 2 req 1 err 7d {ain + aout} tok"
                      f" | zai 5h {zin + zout} tok 2 req 7d {zin + zout} tok"
                      " | other 5h 0 tok 0 req 1 err 7d 0 tok\n")
    online = json.loads(ccp(shim, "usage", "--json", "--url", shim.url))
    assert online["models"] == {} and online["summary"]["total"]["week"]["requests"] == 4

    # without --url: the profile's pid and port files name the running shim
    files = RunFiles(shim.logs_dir)
    files.pid.write_text(str(shim.proc.pid))
    files.port.write_text(str(shim.port))
    assert "running shim" in ccp(shim, "status")

    shim.stop()  # no shim answers: the same gauge from the store on disk
    offline = ccp(shim, "status")
    assert "offline (store on disk)" in offline and gauge(offline) == gauge(status)
    stored = json.loads(ccp(shim, "usage", "--json"))
    assert stored["offline"] is True
    assert {k: stored["summary"][k] for k in ("rows", "lanes", "total")} == {
        k: online["summary"][k] for k in ("rows", "lanes", "total")}
    assert ccp(shim, "usage", "--banner") == banner
