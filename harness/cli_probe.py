"""The probes that run real client programs: the `claude` CLI and curl.

`cli_probe()` runs `claude -p --model M PROMPT --output-format json` the way an operator's shell does
(ANTHROPIC_BASE_URL at the shim, a throwaway HOME, no non-essential traffic, no retries, stdin from
/dev/null, a hard timeout) and reads its JSON result by key, since the fields change between versions.
`curl_probe()` sends one Messages request with real curl (`-N` for streams). Both return a
`ProbeResult`; neither can hang past its timeout.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from harness.probes import (
    ANTHROPIC_VERSION,
    DEFAULT_TIMEOUT,
    ProbeResult,
    message_body,
    text_of_body,
)
from harness.shim import PROJECT_ROOT, HttpsProxy, clean_env
from proxy.core.jsonl import record_of

CLAUDE_VERSION = "2.1.331"  # the pinned CLI that `make claude` installs into .tools/claude
LOCAL_CLAUDE = PROJECT_ROOT / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
CLI_TIMEOUT = 60.0
PLACEHOLDER_TOKEN = "ccp-probe-placeholder"  # the CLI insists on a credential; mocks accept any


def find_claude() -> str | None:
    """The project's own CLI install first, then whatever `claude` is on PATH."""
    if LOCAL_CLAUDE.exists():
        return str(LOCAL_CLAUDE)
    return shutil.which("claude")


@lru_cache(maxsize=4)
def claude_version(binary: str | None = None) -> str | None:
    """`claude --version` (e.g. "2.1.331 (Claude Code)"), or None when it cannot be run."""
    binary = binary or find_claude()
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL, env=clean_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cli_env(base_url: str, home: str, auth_token: str | None = None,
            api_key: str | None = None, via: HttpsProxy | None = None) -> dict[str, str]:
    """The environment a probe gives the CLI: only what an operator's shell would set for it.
    With `via`, what `ccp mitm env` sets instead of ANTHROPIC_BASE_URL (`base_url` is unused)."""
    env = clean_env({
        "HOME": home, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": "0",
    })
    if via is None:
        env["ANTHROPIC_BASE_URL"] = base_url
    else:
        env.update(HTTPS_PROXY=via.url, NODE_EXTRA_CA_CERTS=via.ca_cert)
    if api_key:
        env["ANTHROPIC_API_KEY"] = api_key
    elif via is not None:  # HTTPS_PROXY mode: the CLI's own login (`claude setup-token`'s token)
        env["CLAUDE_CODE_OAUTH_TOKEN"] = auth_token or PLACEHOLDER_TOKEN
    else:
        env["ANTHROPIC_AUTH_TOKEN"] = auth_token or PLACEHOLDER_TOKEN
    return env


def parse_cli_output(stdout: str) -> dict:
    """The CLI's JSON result (the last JSON object line), or {} when there is none."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and (obj := record_of(line)) is not None:
            return obj
    return {}


def cli_probe(base_url: str, model: str, prompt: str = "Say hi", *, auth_token: str | None = None,
              api_key: str | None = None, timeout: float = CLI_TIMEOUT, stream: bool = True,
              binary: str | None = None, via: HttpsProxy | None = None) -> ProbeResult:
    """One `claude -p` call through the shim (or, `via` a `ccp mitm`, as HTTPS_PROXY mode).
    Claude Code always streams."""
    result = ProbeResult("cli", model, True)
    binary = binary or find_claude()
    if not binary:
        result.error = "claude CLI not found (run `make claude`, or put `claude` on PATH)"
        return result
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ccp-cli-home-") as home:
        cmd = [binary, "-p", "--model", model, prompt, "--output-format", "json"]
        try:
            out = subprocess.run(cmd, env=cli_env(base_url, home, auth_token, api_key, via),
                                 cwd=home, stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            result.error = f"timeout: claude did not finish within {timeout:.0f}s"
            result.raw = exc.stdout or b""
            result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
            return result
        except OSError as exc:
            result.error = f"cannot run {binary}: {exc}"
            return result
    result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    result.exit_code = out.returncode
    result.raw = out.stdout
    data = parse_cli_output(out.stdout.decode("utf-8", errors="replace"))
    result.session_id = data.get("session_id")
    result.text = data.get("result") if isinstance(data.get("result"), str) else ""
    if data.get("is_error") or out.returncode != 0:
        status = data.get("api_error_status")
        result.status = status if isinstance(status, int) else None
        detail = result.text or out.stderr.decode("utf-8", errors="replace").strip()[-300:]
        result.error = f"claude exit {out.returncode}: {detail or 'no output'}"
    else:
        result.status = 200
    return result


def curl_probe(base_url: str, model: str, prompt: str = "Say hi", *, stream: bool = False,
               api_key: str | None = None, auth_token: str | None = None,
               extra_headers: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
               body: dict | None = None, via: HttpsProxy | None = None) -> ProbeResult:
    """One request with real curl; `-N` so a stream is read as it arrives. With `via`, curl goes
    through that proxy (`--proxy`, trusting its CA with `--cacert`) to `base_url`."""
    result = ProbeResult("curl", model, stream)
    curl = shutil.which("curl")
    if not curl:
        result.error = "curl not found"
        return result
    payload = json.dumps(body if body is not None else message_body(model, prompt, stream))
    headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION,
               **(extra_headers or {})}
    if api_key:
        headers["x-api-key"] = api_key
    if auth_token:
        headers["authorization"] = f"Bearer {auth_token}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ccp-curl-") as tmp:
        head_file, body_file, config = Path(tmp, "h"), Path(tmp, "b"), Path(tmp, "cfg")
        # headers go through a config file, so no credential shows in the process list
        config.write_text("".join(f'header = "{k}: {v}"\n' for k, v in headers.items()))
        # with `via`, NO_PROXY (127.0.0.1, localhost in a harness env) must not bypass the proxy
        route = ["--noproxy", "*"] if via is None else ["--proxy", via.url, "--noproxy", "",
                                                          "--cacert", via.ca_cert]
        cmd = [curl, "-sS", "-N", *route, "--max-time", f"{timeout:.0f}", "-K", str(config),
               "-D", str(head_file), "-o", str(body_file), "-w", "%{http_code}",
               "--data-binary", "@-", f"{base_url}/v1/messages?beta=true"]
        try:
            out = subprocess.run(cmd, input=payload.encode(), capture_output=True,
                                 timeout=timeout + 5, env=clean_env())
        except subprocess.TimeoutExpired:
            out = None
        result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
        if out is None:
            result.error = f"timeout: curl did not finish within {timeout:.0f}s"
            return result
        result.exit_code = out.returncode
        result.raw = body_file.read_bytes() if body_file.exists() else b""
        result.take_headers(_parse_head(head_file.read_text("latin-1") if head_file.exists() else ""))
    code = out.stdout.decode().strip()
    result.status = int(code) if code.isdigit() and code != "000" else None
    if out.returncode != 0:
        result.error = f"curl exit {out.returncode}: {out.stderr.decode(errors='replace').strip()}"
    result.text = text_of_body(result.raw, result.headers.get("content-type", ""))
    return result


def _parse_head(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
