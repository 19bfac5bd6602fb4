"""No configured secret reaches a log, a partial, a trajectory or a body-tee sample."""
import subprocess
import sys

import httpx
import pytest

from harness.gates import no_secret_in_files
from harness.probes import http_probe
from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.hygiene, pytest.mark.faults]

SESSION = "sess-secret-scan-77aa01"


def test_every_artifact_is_clean(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"ENABLE_BODY_TEE": "1", "ANTHROPIC_API_KEY": keys["ANTHROPIC_API_KEY"]})
    httpx.post(f"{shim.url}/v1/sessions", trust_env=False,
               json={"session_token": SESSION, "sandbox_id": "s", "task_name": "t"})
    # each prompt quotes every secret the shim knows for that request: its own configured keys, the
    # session token, and the credential this very request carries
    configured = [keys["ZAI_API_KEY"], keys["ANTHROPIC_AUTH_TOKEN"], keys["ANTHROPIC_API_KEY"], SESSION]
    rids = []
    for model, stream, fault, cred in (("claude-haiku-4-5", True, None, SESSION),
                                       ("claude-sonnet-4-5", False, None, keys["CLIENT_API_KEY"]),
                                       ("claude-sonnet-4-5", True, "reset_mid_stream;after=3", SESSION)):
        leaky = " ".join([*configured, cred])
        body = {"model": model, "max_tokens": 5, "stream": stream,
                "messages": [{"role": "user", "content": f"Reply with exactly: {leaky} and nothing else."}]}
        res = http_probe(shim.url, model, stream=stream, api_key=cred, body=body,
                         extra_headers={"x-mock-fault": fault} if fault else None)
        rids.append(res.rid)
    shim.wait_for_records(3)
    files = [p for p in shim.logs_dir.rglob("*") if p.is_file() and p.name != "shim.stderr.log"]
    kinds = {p.relative_to(shim.logs_dir).parts[0] for p in files}
    assert {"usage.jsonl", "tee", "trajectory", "partials"} <= kinds, kinds
    secrets = [*configured, keys["CLIENT_API_KEY"]]
    gate = no_secret_in_files([*files, shim.stderr_path], secrets)
    assert gate.ok, gate.detail
    # the gate would have caught one: the mock (not an artifact of ours) saw the prompt in clear
    assert keys["ZAI_API_KEY"] in mock_zai.calls[0].body.decode()
    out = subprocess.run([sys.executable, "-m", "proxy", "gates", "--no-metrics", "--secrets"], cwd=PROJECT_ROOT,
                         env=clean_env({"CCP_LOGS_DIR": str(shim.logs_dir), "ZAI_API_KEY": keys["ZAI_API_KEY"],
                                        "CCP_RESULTS_DIR": str(shim.logs_dir / "results")}),
                         capture_output=True, text=True, timeout=60)
    assert "PASS no_secret_in_artifacts" in out.stdout, out.stdout + out.stderr
