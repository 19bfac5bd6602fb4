"""A real PostgreSQL server for tests: initdb + pg_ctl in a temporary folder, on a free port.

`PostgresServer().start()` finds the server's programs (PATH, else Debian's
/usr/lib/postgresql/<version>/bin), makes a cluster in a folder of its own (trust authentication,
user `ccp`), starts it on a free 127.0.0.1 port with its unix socket in that folder, and waits until
a connection works (a bounded loop). `stop()` is `pg_ctl stop -m fast`; `start()` again restarts the
same cluster on the same port (what the outage scenarios do); `close()` stops it and removes the
folder. `database(name)` creates a database and returns its URL.

Run as root (a container), initdb refuses; the programs then run as the `postgres` user that
Debian's package creates, and the folder is given to it.

The pytest fixtures (harness.pytest_plugin): `pg_server` (one per session), `pg_url` (a fresh
database per test), `make_postgres` (a server of the test's own, for tests that stop it). Without
PostgreSQL they skip with one line, SKIP_REASON.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SKIP_REASON = ("PostgreSQL is not installed (no initdb/pg_ctl on PATH or under "
               "/usr/lib/postgresql/*/bin): `apt-get install postgresql` runs these")
USER = "ccp"
START_TIMEOUT = 30.0


def find_bin_dir() -> Path | None:
    """The folder with initdb and pg_ctl: PATH first, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    def version(p: str) -> tuple:
        name = Path(p).parent.name
        return tuple(int(x) for x in name.split(".") if x.isdigit())
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    """The user the server's programs run as: `postgres` when this process is root."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


class PostgresServer:
    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        if self.bin_dir is None:
            raise FileNotFoundError(SKIP_REASON)
        self.user = _run_as()
        self.root: Path | None = None
        self.port: int | None = None
        self._made = False

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, db: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def _cmd(self, *args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
        assert self.bin_dir is not None
        return subprocess.run([str(self.bin_dir / args[0]), *args[1:]], user=self.user,
                              cwd=str(self.root), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def _init(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ccp-pg-"))
        if self.user is not None:
            shutil.chown(self.root, self.user)
        done = self._cmd("initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
                         "--no-sync", "--no-instructions")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        self.port = free_port()
        self._made = True

    def start(self) -> PostgresServer:
        """Start the server (the first time: make the cluster) and wait until it answers."""
        if not self._made:
            self._init()
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        done = self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", opts,
                         "-w", "-t", str(int(START_TIMEOUT)), "start", timeout=START_TIMEOUT + 10)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {self.log_tail()}")
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        import psycopg
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"PostgreSQL on port {self.port} not ready: {exc}") from exc
                time.sleep(0.05)

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: open connections are cut, the cluster stays."""
        if self.root is None or not (self.data / "postmaster.pid").exists():
            return
        done = self._cmd("pg_ctl", "-D", str(self.data), "stop", "-m", "fast", "-w")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip()}")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
                self._made = False

    def database(self, name: str) -> str:
        """Create database `name` (dropped first if it exists) and return its URL."""
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # type: ignore[arg-type]
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url_for(name)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
