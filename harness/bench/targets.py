"""The bench's processes: the mock upstream and every target in front of it.

A target is a process started with its own environment and working folder, that answers Anthropic
`POST /v1/messages` and forwards it to the mock: `floor` (the bare relay), `ccp` (the real shim with
its default logging, metrics and store, like `ShimProcess` runs it) and the third-party proxies in
`harness.bench.external`. `direct` is no process at all: the client talks to the mock, the floor of
every latency. The https path has its own: `direct-tls`, `floor-tls` (the bare relay trusting the
mock's CA) and `ccp-tls*` (the shim with base URLs on the mock's TLS port and `CCP_CA_BUNDLE`);
clients in front of a proxy still speak plain HTTP, as Claude Code does to a local shim.
`ccp-pg` is `ccp` with its store on a PostgreSQL server of the bench's own (harness.postgres),
started with the target and removed when it stops. `Target.cpu_s()` and `Target.peak_rss_mb()` read
the process tree from /proc (for `ccp-pg` the shim's; the server's own is `db_cpu_s()`).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness.bench.procs import cpu_seconds, peak_rss_mb, read_announce
from harness.postgres import SKIP_REASON, PostgresServer, find_bin_dir
from harness.shim import PROJECT_ROOT, ShimProcess, clean_env

PASSTHROUGH_MODEL = "claude-sonnet-4-5"  # the anthropic lane in ccp's built-in routing
CONVERT_MODEL = "glm-bench"  # routed by the bench catalog to an OpenAI-protocol provider


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, body: dict | None = None, timeout: float = 5.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read() or b"{}")


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Until `url` answers any HTTP status (the process is listening), or TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before listening")
        try:
            urllib.request.urlopen(url, timeout=2.0).close()  # noqa: S310
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:g}s")


class Proc:
    """A child process with an announced or known port; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._log = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def cpu_s(self) -> float | None:
        return cpu_seconds(self.pid) if self.pid else None

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.pid) if self.pid else None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _stderr(self, path: Path):
        """The child's stderr file (closed by stop())."""
        self._log = open(path, "ab")
        return self._log


class FastMock(Proc):
    """The fast mock: cleartext on `url`, TLS (h2 and http/1.1 by ALPN) on `tls_url`, trusting `ca`."""

    def __init__(self) -> None:
        super().__init__("mock")
        self.tls_url = ""
        self.ca = ""

    def start(self, workdir: Path) -> FastMock:
        tls_dir = workdir / "mock-tls"
        tls_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.bench.fast_mock", "--port", "0",
                                      "--tls-dir", str(tls_dir)],
                                     cwd=PROJECT_ROOT, env=clean_env(), stdout=subprocess.PIPE,
                                     stderr=self._stderr(workdir / "mock.stderr.log"))
        announced = read_announce(self.proc, 15, "mock")
        self.url = f"http://127.0.0.1:{announced['port']}"
        self.tls_url = f"https://127.0.0.1:{announced['tls_port']}"
        self.ca = announced["ca"]
        return self

    def counts(self) -> dict:
        """calls, handshakes, tls_calls, h2_calls (and by_kind) so far."""
        return http_json(self.url + "/_bench/count")

    def calls(self) -> int:
        return int(self.counts()["calls"])

    def configure(self, deltas: int, delay_ms: int = 0) -> None:
        http_json(self.url + "/_bench/config", {"deltas": deltas, "delay_ms": delay_ms})


class Target(Proc):
    """What every target offers the runner. A `tls` target is started on the mock's https URL with
    its CA (`ca`) and runs the `tls_*` scenarios; the others, the cleartext ones."""

    version = ""
    tls = False
    ca: str | None = None

    def start(self, mock_url: str, workdir: Path) -> None:
        raise NotImplementedError

    def model(self, convert: bool) -> str:
        return CONVERT_MODEL if convert else PASSTHROUGH_MODEL


class Direct(Target):
    """No proxy: the load generator talks to the mock (over TLS, HTTP/1.1, for `direct-tls`)."""

    def __init__(self, name: str = "direct", tls: bool = False) -> None:
        super().__init__(name)
        self.tls = tls

    def start(self, mock_url: str, workdir: Path, ca: str | None = None) -> None:
        self.url, self.ca = mock_url, ca

    def model(self, convert: bool) -> str:
        return PASSTHROUGH_MODEL  # the mock answers any model; the floor of every latency


class Floor(Target):
    """The bare aiohttp relay; `floor-tls` relays to the mock's https URL trusting its CA."""

    def __init__(self, name: str = "floor", tls: bool = False) -> None:
        super().__init__(name)
        self.tls = tls

    def start(self, mock_url: str, workdir: Path, ca: str | None = None) -> None:
        self.ca = ca
        cmd = [sys.executable, "-m", "harness.bench.floor_relay", "--upstream", mock_url]
        self.proc = subprocess.Popen(
            cmd + (["--ca", ca] if ca else []),
            cwd=PROJECT_ROOT, env=clean_env(), stdout=subprocess.PIPE,
            stderr=self._stderr(workdir / f"{self.name}.stderr.log"))
        self.url = f"http://127.0.0.1:{read_announce(self.proc, 15, self.name)['port']}"

    def model(self, convert: bool) -> str:
        return PASSTHROUGH_MODEL  # no conversion in a bare relay


class _AblatedShim(ShimProcess):
    """`ccp serve` with some per-request features switched off (harness.bench.ablate)."""

    def __init__(self, without: tuple[str, ...], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.without = without

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "harness.bench.ablate", ",".join(self.without),
                *super()._command()[3:]]  # [python, -m, proxy, serve, …] → serve, …


class Ccp(Target):
    """The shim as an operator runs it: default logging (usage.jsonl), metrics and stores; or, for
    the ablation rows, with the features in `without` switched off."""

    def __init__(self, name: str = "ccp", env: dict | None = None,
                 without: tuple[str, ...] = (), tls: bool = False) -> None:
        super().__init__(name)
        self.extra_env = env or {}
        self.without = without
        self.tls = tls
        self.shim: ShimProcess | None = None

    def start(self, mock_url: str, workdir: Path, ca: str | None = None) -> None:
        self.ca = ca
        logs = workdir / self.name
        logs.mkdir(parents=True, exist_ok=True)
        providers = logs / "providers.yaml"
        providers.write_text("providers:\n  glm:\n    protocol: openai\n"
                             f"    base_url: {mock_url}/v1\n    key_env: GLM_API_KEY\n"
                             f"    routes:\n      - name: {CONVERT_MODEL}\n")
        env = {"CCP_ANTHROPIC_BASE_URL": mock_url, "CCP_ZAI_BASE_URL": mock_url + "/api/anthropic",
               "ZAI_API_KEY": "bench-zai-key", "GLM_API_KEY": "bench-glm-key",
               "CCP_PROVIDERS_FILE": str(providers), **self.extra_env}
        if ca:  # the mock's throwaway CA, added to certifi's roots (proxy.upstream.tls)
            env["CCP_CA_BUNDLE"] = ca
        self.shim = (_AblatedShim(self.without, logs, env=env) if self.without
                     else ShimProcess(logs, env=env)).start()
        self.proc = self.shim.proc
        self.url = self.shim.url
        self.version = _dist_version("ccp")

    def stop(self) -> None:
        if self.shim is not None:
            self.shim.stop()


PG_DATABASE = "bench"


class CcpPg(Ccp):
    """ccp with `CCP_STORE_URL` on a PostgreSQL server started for the run (initdb in a temporary
    folder, a free loopback port) and stopped, its folder removed, by `stop()`. `missing()` says
    why it cannot run (PostgreSQL not installed) before anything starts."""

    def __init__(self, name: str = "ccp-pg", env: dict | None = None) -> None:
        super().__init__(name, env)
        self.server: PostgresServer | None = None

    @staticmethod
    def missing() -> str | None:
        return None if find_bin_dir() is not None else SKIP_REASON

    def start(self, mock_url: str, workdir: Path, ca: str | None = None) -> None:
        self.server = PostgresServer()
        try:
            self.server.start()
            self.extra_env = {**self.extra_env,
                              "CCP_STORE_URL": self.server.database(PG_DATABASE)}
            super().start(mock_url, workdir, ca)
        except BaseException:
            self.stop()
            raise

    def db_cpu_s(self) -> float | None:
        """The database server's CPU seconds so far (the postmaster and its backends)."""
        if self.server is None or self.server.root is None:
            return None
        try:
            pid = int((self.server.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return cpu_seconds(pid)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.server is not None:
                self.server.close()
                self.server = None


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"
