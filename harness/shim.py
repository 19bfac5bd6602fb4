"""Running the real shim as a real process, the way an operator does.

`ShimProcess` starts `python -m proxy serve --port 0` with a clean environment plus an overlay, reads
the announced port from its first stdout line, waits until `/healthz` (or `/readyz`) answers 200,
and stops it with SIGTERM (SIGKILL only if it does not stop in time). Every wait has a deadline;
nothing is guessed.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import httpx

from proxy.sinks.usage_log import usage_records

# Variables that change what the shim or a client does; a harness run starts without any of them.
_STRIPPED_PREFIXES = ("CCP_", "ANTHROPIC_", "ZAI_", "CLAUDE_", "MITM_", "CC_LICENSE")
_STRIPPED = {"FORCE_HAIKU_TO_ZAI", "OFFLOAD_PAUSED", "ENABLE_BODY_TEE", "MAX_LOG_BYTES",
             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
             "NO_PROXY", "no_proxy", "ALLOW_REAL_API"}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def clean_env(overlay: Mapping[str, str] | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without proxy/provider variables, plus `overlay`."""
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items()
           if k not in _STRIPPED and not k.startswith(_STRIPPED_PREFIXES)}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overlay or {})
    return env


# What points a shim at the operator's daily state (proxy.config.home): a harness run never passes these on,
# so its shim keeps its own usage log, store and quota book in its run folder.
DAILY_STATE = ("CCP_HOME", "CCP_LOGS_DIR", "CCP_DB_PATH")


def run_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: the process environment) without the daily-state variables: the overlay a
    repro, soak, A/B or sandbox run gives its own shim when it talks to the real upstreams."""
    base = os.environ if base is None else base
    return {k: v for k, v in base.items() if k not in DAILY_STATE}


def run_folder(results_dir: str | os.PathLike, *parts: str, fresh: bool = True) -> Path:
    """`<results>/runs/<parts…>`: where a harness run keeps its shim's logs, store and quota book,
    apart from the daily `logs/`. `fresh` empties it first (a rerun of the same name starts clean)."""
    folder = Path(results_dir).resolve() / "runs" / Path(*parts)
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll `predicate` until it returns a truthy value or `timeout` passes (then TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


class ShimProcess:
    """A running `ccp serve` with its own logs folder."""

    def __init__(self, logs_dir: str | os.PathLike, env: Mapping[str, str] | None = None,
                 host: str = "127.0.0.1", start_timeout: float = 20.0,
                 ready_path: str = "/healthz", port: int = 0) -> None:
        self.logs_dir = Path(logs_dir)
        self.host = host
        self.overlay = dict(env or {})
        self.start_timeout = start_timeout
        self.ready_path = ready_path  # "/readyz" also waits until every lane's upstream answers
        self.port: int | None = None
        self.requested_port = port  # 0: the OS chooses (the default everywhere but sandbox tasks)
        self.proc: subprocess.Popen | None = None
        self.announce: dict = {}  # the JSON line the process printed when it started listening
        self.stderr_path = self.logs_dir / "shim.stderr.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def usage_path(self) -> Path:
        return self.logs_dir / "usage.jsonl"

    def start(self) -> ShimProcess:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        # CCP_CONFIG_HOME: a folder of its own, so no ~/.config/ccp of the machine changes routing
        config_home = self.logs_dir / "config-home"
        config_home.mkdir(exist_ok=True)
        env = clean_env({"CCP_LOGS_DIR": str(self.logs_dir), "CCP_CONFIG_HOME": str(config_home),
                         **self.overlay})
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            self._command(), env=env, cwd=str(PROJECT_ROOT), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr)
        try:
            self.announce = self._read_announce()
            self.port = int(self.announce["port"])
            wait_until(self._ready, self.start_timeout, self.ready_url)
        except BaseException:
            self.stop()
            raise
        return self

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "proxy", "serve", "--host", self.host, "--port",
                str(self.requested_port)]

    @property
    def ready_url(self) -> str:
        return f"{self.url}{self.ready_path}"

    @property
    def client_url(self) -> str:
        """Where a client sends its API requests (ANTHROPIC_BASE_URL)."""
        return self.url

    @property
    def via(self):
        """The HTTPS proxy a client goes through (None: it talks to `client_url` directly)."""
        return None

    def _read_announce(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError(f"shim did not announce its port: {self.stderr_tail()}")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"shim exited before listening (code {self.proc.wait()}): "
                                       f"{self.stderr_tail()}")
                buf += chunk
        return json.loads(buf.split(b"\n", 1)[0])

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"shim exited with {self.proc.returncode}: {self.stderr_tail()}")
        try:
            return httpx.get(self.ready_url, timeout=3.0,
                             trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def records(self) -> list[dict]:
        """Every usage record written so far."""
        if not self.usage_path.exists():
            return []
        return usage_records(self.usage_path)[0]

    def wait_for_records(self, n: int, timeout: float = 10.0) -> list[dict]:
        """Wait until at least `n` records exist, then return them all."""
        return wait_until(lambda: (r := self.records()) and len(r) >= n and r, timeout,
                          f"{n} usage record(s) in {self.usage_path}")

    def record_for(self, rid: str, timeout: float = 10.0) -> dict:
        """The one record with this rid (waits for it to be written)."""
        def find():
            hits = [r for r in self.records() if r.get("rid") == rid]
            return hits[0] if hits else None
        return wait_until(find, timeout, f"the usage record of {rid}")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> ShimProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class HttpsProxy(NamedTuple):
    """HTTPS_PROXY mode (`ccp mitm`): the proxy's URL and the CA certificate it signs with."""

    url: str
    ca_cert: str


class MitmProcess(ShimProcess):
    """A running `ccp mitm` (HTTPS_PROXY mode): `url` is the proxy to set as HTTPS_PROXY, `ca_cert`
    the mitmproxy CA a client trusts, `admin_url` serves /healthz and /metrics."""

    def __init__(self, logs_dir: str | os.PathLike, env: Mapping[str, str] | None = None,
                 host: str = "127.0.0.1", start_timeout: float = 30.0) -> None:
        super().__init__(logs_dir, env, host, start_timeout, ready_path="/healthz")
        self.stderr_path = self.logs_dir / "mitm.stderr.log"
        self.confdir = self.logs_dir / "mitmproxy"  # its own CA, never the machine's ~/.mitmproxy

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "proxy", "mitm", "--host", self.host, "--port",
                str(self.requested_port), "--confdir", str(self.confdir)]

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.announce['admin_port']}"

    @property
    def ready_url(self) -> str:
        return f"{self.admin_url}{self.ready_path}"

    @property
    def ca_cert(self) -> str:
        return self.announce["ca_cert"]

    @property
    def client_url(self) -> str:
        return MITM_CLIENT_URL  # the client keeps its Anthropic URL

    @property
    def via(self):
        return HttpsProxy(self.url, self.ca_cert)


FRONTS = ("shim", "mitm")  # ccp serve (ANTHROPIC_BASE_URL) or ccp mitm (HTTPS_PROXY)
MITM_CLIENT_URL = "https://api.anthropic.com"  # where a client in HTTPS_PROXY mode thinks it goes


def front_process(front: str, logs_dir: str | os.PathLike, env: Mapping[str, str] | None = None,
                  ready_path: str = "/healthz") -> ShimProcess:
    """An unstarted `ccp serve` ("shim") or `ccp mitm` ("mitm") with the same environment."""
    if front == "mitm":
        return MitmProcess(logs_dir, env)
    return ShimProcess(logs_dir, env, ready_path=ready_path)
