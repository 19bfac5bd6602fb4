"""Third-party proxies, installed on demand into the git-ignored `.bench/` and pointed at the mock.

- `litellm`: `pip install 'litellm[proxy]'` into `.bench/venv-litellm`; a config that maps the bench's
  Anthropic model to `anthropic/…` and the conversion model to `hosted_vllm/…` (Chat Completions;
  its `openai/…` bridge speaks the Responses API), both on the mock; clients call its
  Anthropic-compatible `/v1/messages`.
- `ccr`: `npm install @musistudio/claude-code-router` into `.bench/ccr`; a `config.json` under a
  HOME of its own with two providers on the mock (Anthropic passthrough, and OpenAI for conversion);
  a request picks one by naming `provider,model`.

`ensure()` installs when needed, within a time limit, and returns None or the reason it could not;
the runner then skips the target with that reason.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from harness.bench.targets import (
    CONVERT_MODEL,
    PASSTHROUGH_MODEL,
    Target,
    free_port,
    wait_http,
)
from harness.shim import PROJECT_ROOT, clean_env

BENCH_DIR = PROJECT_ROOT / ".bench"
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 90.0


def _run(cmd: list[str], timeout: float, log: Path) -> str | None:
    try:
        with open(log, "ab") as fh:
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if done.returncode == 0 else f"exit {done.returncode} (see {log})"


class LiteLLM(Target):
    venv = BENCH_DIR / "venv-litellm"

    def __init__(self, name: str = "litellm", tls: bool = False) -> None:
        super().__init__(name)
        self.tls = tls

    @property
    def exe(self) -> Path:
        return self.venv / "bin" / "litellm"

    def ensure(self) -> str | None:
        if self.exe.exists():
            return None
        BENCH_DIR.mkdir(exist_ok=True)
        log = BENCH_DIR / "install-litellm.log"
        return (_run([sys.executable, "-m", "venv", str(self.venv)], 120, log)
                or _run([str(self.venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                        INSTALL_TIMEOUT, log))

    def start(self, mock_url: str, workdir: Path, ca: str | None = None) -> None:
        home = workdir / self.name
        home.mkdir(parents=True, exist_ok=True)
        config = home / "config.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {PASSTHROUGH_MODEL}\n"
            f"    litellm_params: {{model: anthropic/{PASSTHROUGH_MODEL}, api_base: '{mock_url}',"
            " api_key: bench-key}\n"
            f"  - model_name: {CONVERT_MODEL}\n"
            f"    litellm_params: {{model: hosted_vllm/{CONVERT_MODEL}, api_base: '{mock_url}/v1',"
            " api_key: bench-key}\n")
        port = free_port()
        env = clean_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HOME": str(home),
                         # loopback only, no database: the bench needs no master key
                         "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                         **_trust(ca)})
        self.proc = subprocess.Popen(
            [str(self.exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            cwd=home, env=env, stdout=self._stderr(home / "stdout.log"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/health/liveliness", START_TIMEOUT, self.proc)
        self.version = _pip_version(self.venv, "litellm")


class CCR(Target):
    prefix = BENCH_DIR / "ccr"

    def __init__(self, name: str = "ccr", tls: bool = False) -> None:
        super().__init__(name)
        self.tls = tls

    @property
    def cli(self) -> Path:
        return self.prefix / "node_modules" / "@musistudio" / "claude-code-router" / "dist" / "cli.js"

    def ensure(self) -> str | None:
        if self.cli.exists():
            return None
        if shutil.which("npm") is None or shutil.which("node") is None:
            return "npm/node not found"
        BENCH_DIR.mkdir(exist_ok=True)
        return _run(["npm", "install", "--prefix", str(self.prefix), "--no-audit", "--no-fund",
                     "--loglevel=error", "@musistudio/claude-code-router"], INSTALL_TIMEOUT,
                    BENCH_DIR / "install-ccr.log")

    def start(self, mock_url: str, workdir: Path, ca: str | None = None) -> None:
        home = workdir / self.name
        (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = {
            "PORT": port, "HOST": "127.0.0.1", "API_TIMEOUT_MS": 60000,
            "Providers": [
                {"name": "mock", "api_base_url": f"{mock_url}/v1/messages", "api_key": "bench-key",
                 "models": [PASSTHROUGH_MODEL], "transformer": {"use": ["Anthropic"]}},
                {"name": "mockoa", "api_base_url": f"{mock_url}/v1/chat/completions",
                 "api_key": "bench-key", "models": [CONVERT_MODEL]},
            ],
            "Router": {"default": f"mock,{PASSTHROUGH_MODEL}"},
        }
        (home / ".claude-code-router" / "config.json").write_text(json.dumps(config, indent=2))
        env = clean_env({"HOME": str(home), "NODE_ENV": "production", **_trust(ca)})
        self.proc = subprocess.Popen(["node", str(self.cli), "start"], cwd=home, env=env,
                                     stdout=self._stderr(home / "stdout.log"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/", START_TIMEOUT, self.proc)
        pkg = self.cli.parent.parent / "package.json"
        self.version = json.loads(pkg.read_text()).get("version", "?")

    def model(self, convert: bool) -> str:
        return f"mockoa,{CONVERT_MODEL}" if convert else f"mock,{PASSTHROUGH_MODEL}"


def _trust(ca: str | None) -> dict[str, str]:
    """How each peer is told to trust the mock's throwaway CA on the https path: Python's ssl and
    httpx read SSL_CERT_FILE, requests REQUESTS_CA_BUNDLE, node NODE_EXTRA_CA_CERTS (added to its
    bundled roots, as ccp's CCP_CA_BUNDLE is added to certifi's)."""
    if not ca:
        return {}
    return {"SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca, "NODE_EXTRA_CA_CERTS": ca}


CANDIDATE_PACKAGES = ("aiohttp", "uvloop", "httpx[http2]", "curl_cffi", "niquests", "rnet")


class CandidateRelay(Target):
    """`relay-tls-<client>`: the bare relay of harness.bench.client_relays with that HTTP client,
    on the https path, from a venv of its own (the candidates are not ccp's dependencies)."""

    venv = BENCH_DIR / "venv-candidates"
    tls = True

    def __init__(self, client: str) -> None:
        super().__init__(f"relay-tls-{client}")
        self.client = client

    @property
    def exe(self) -> Path:
        return self.venv / "bin" / "python"

    def ensure(self) -> str | None:
        if self.exe.exists():
            return None
        BENCH_DIR.mkdir(exist_ok=True)
        log = BENCH_DIR / "install-candidates.log"
        return (_run([sys.executable, "-m", "venv", str(self.venv)], 120, log)
                or _run([str(self.venv / "bin" / "pip"), "install", "-q", *CANDIDATE_PACKAGES],
                        INSTALL_TIMEOUT, log))

    def start(self, mock_url: str, workdir: Path, ca: str | None = None) -> None:
        from harness.bench.procs import read_announce

        cmd = [str(self.exe), "-m", "harness.bench.client_relays", "--client", self.client,
               "--upstream", mock_url] + (["--ca", ca] if ca else [])
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT,
                                     env=clean_env({"PYTHONPATH": str(PROJECT_ROOT)}),
                                     stdout=subprocess.PIPE,
                                     stderr=self._stderr(workdir / f"{self.name}.stderr.log"))
        announced = read_announce(self.proc, START_TIMEOUT, self.name)
        if announced.get("event") == "missing":
            raise RuntimeError(f"{self.client} is not installed: {announced.get('error')}")
        self.url = f"http://127.0.0.1:{announced['port']}"
        self.version = self.client

    def model(self, convert: bool) -> str:
        return PASSTHROUGH_MODEL


def _pip_version(venv: Path, dist: str) -> str:
    try:
        out = subprocess.run([str(venv / "bin" / "python"), "-c",
                              f"import importlib.metadata as m; print(m.version('{dist}'))"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"
