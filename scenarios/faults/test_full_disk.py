"""A full disk under a real shim: every request still gets the upstream's answer, the usage log
keeps only whole lines, every line it lost is counted, /readyz names the sink, and writing resumes
by itself once there is room again.

The logs folder is a real small filesystem when this process may mount one (a 1 MB tmpfs, filled
by a ballast file: writes fail with ENOSPC, and removing the ballast gives the room back). Where it
may not (not root), the shim's file-size limit is lowered instead (RLIMIT_FSIZE through prlimit:
CPython ignores SIGXFSZ, so a write past the limit fails with EFBIG, short first), and raising it
gives the room back. chmod is no such mechanism for root, so it is not used.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import uuid

import httpx
import pytest

from harness.keys import lane_env
from harness.shim import PROJECT_ROOT, ShimProcess, clean_env, wait_until

pytestmark = [pytest.mark.faults]

HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"


class Tmpfs:
    """A 1 MB tmpfs mounted on `folder`: full by a ballast file, room again by removing it."""

    kind = "tmpfs"
    error = "ENOSPC"

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(folder)],
                       check=True, capture_output=True)
        self.ballast = folder / "ballast"

    def attach(self, pid: int) -> None:
        pass

    def fill(self, leave: int) -> None:
        """Fill the filesystem to the last byte, then give back `leave` bytes (a page or so)."""
        block = b"\0" * 65536
        with open(self.ballast, "wb", buffering=0) as fh:
            while True:
                try:
                    fh.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(block) == 1:
                        break
                    block = block[: len(block) // 2]
            os.ftruncate(fh.fileno(), max(0, os.fstat(fh.fileno()).st_size - leave))

    def free(self) -> None:
        self.ballast.unlink()

    def read_only(self, on: bool) -> None:
        subprocess.run(["mount", "-o", "remount," + ("ro" if on else "rw"), str(self.folder)],
                       check=True, capture_output=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)


class FileSizeLimit:
    """The shim's RLIMIT_FSIZE (soft) lowered to just above what the usage log holds now."""

    kind = "rlimit"
    error = "EFBIG"

    def __init__(self, folder):
        self.folder = folder
        self.pid: int | None = None

    def attach(self, pid: int) -> None:
        self.pid = pid
        self.saved = resource.prlimit(pid, resource.RLIMIT_FSIZE)

    def fill(self, leave: int) -> None:
        size = (self.folder / "usage.jsonl").stat().st_size
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (size + leave, self.saved[1]))

    def free(self) -> None:
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self.saved)

    def close(self) -> None:
        pass


def _can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "--version"], capture_output=True).returncode == 0


@pytest.fixture(params=["tmpfs", "rlimit"])
def small_disk(request, tmp_path):
    folder = tmp_path / "logs"
    if request.param == "rlimit":
        folder.mkdir()
        disk = FileSizeLimit(folder)
    else:
        if not _can_mount():
            pytest.skip("no tmpfs: mounting needs root (the rlimit case runs instead)")
        try:
            disk = Tmpfs(folder)
        except subprocess.CalledProcessError as exc:  # (a container that refuses mounts)
            pytest.skip(f"no tmpfs: {exc.stderr.decode(errors='replace').strip()}")
    yield disk
    disk.close()


def ask(client, url, keys, model) -> tuple[int, str, dict]:
    r = client.post(f"{url}/v1/messages", json={
        "model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "say ok"}]},
        headers={"x-api-key": keys["CLIENT_API_KEY"]})
    return r.status_code, r.headers["x-ccp-request-id"], r.json()


def lost(url) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5, trust_env=False).text
    line = next(ln for ln in text.splitlines()
                if ln.startswith('ccp_sink_write_errors_total{sink="usage_log"}'))
    return float(line.split()[-1])


def whole_records(path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "the usage log ends mid-line"
    return [json.loads(line) for line in data.splitlines()]  # (every line parses)


def log_lines(shim, *words) -> list[str]:
    return [ln for ln in shim.stderr_tail(1000).splitlines() if all(w in ln for w in words)]


def test_a_full_disk_answers_every_request_and_loses_only_counted_whole_lines(
        small_disk, tmp_path, mock_anthropic, mock_zai, keys):
    env = lane_env(mock_anthropic.base_url, mock_zai.zai_base_url)
    shim = ShimProcess(small_disk.folder, env, ready_path="/readyz")
    shim.stderr_path = tmp_path / "shim.stderr.log"  # off the small disk: its lines are asserted
    shim.start()
    try:
        small_disk.attach(shim.proc.pid)
        sent: list[str] = []
        with httpx.Client(timeout=10, trust_env=False) as client:
            for i in range(6):
                status, rid, _ = ask(client, shim.url, keys, HAIKU if i % 2 else SONNET)
                assert status == 200
                sent.append(rid)
            shim.wait_for_records(6)
            small_disk.fill(leave=4096)  # room for a few lines, then none
            for i in range(40):
                status, rid, body = ask(client, shim.url, keys, HAIKU if i % 2 else SONNET)
                assert status == 200 and body["type"] == "message"  # the upstream's answer
                sent.append(rid)
            assert len(mock_anthropic.calls) + len(mock_zai.calls) == 46

            recs = whole_records(shim.usage_path)
            written = [r["rid"] for r in recs]
            assert len(set(written)) == len(written) and set(written) <= set(sent)
            assert lost(shim.url) == len(sent) - len(written) > 0  # every lost line, counted
            print(f"{small_disk.kind}: {len(sent) - len(written)} of {len(sent)} lines lost, "
                  f"{len(written)} whole")
            ready = httpx.get(f"{shim.url}/readyz", timeout=5, trust_env=False)
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert "usage_log" in ready.json()["degraded"]
            assert small_disk.error in ready.json()["sinks"]["usage_log"]["error"]
            # one line for the whole outage, not one per request
            assert len(log_lines(shim, "sink usage_log (", "cannot write")) == 1
            assert not log_lines(shim, "Traceback")

            small_disk.free()  # room again: nothing restarted, nothing told
            before = lost(shim.url)
            for i in range(10):
                status, rid, _ = ask(client, shim.url, keys, HAIKU if i % 2 else SONNET)
                assert status == 200
                sent.append(rid)
            recs = whole_records(shim.usage_path)
            assert [r["rid"] for r in recs][-10:] == sent[-10:]  # written again, whole
            assert lost(shim.url) == before
            assert wait_until(lambda: httpx.get(f"{shim.url}/readyz", timeout=5, trust_env=False)
                              .json()["degraded"] == [], 10, "every sink writing again")
            assert len(log_lines(shim, "sink usage_log (", "writes again")) == 1
    finally:
        shim.stop()


def serve_once(logs_dir, tmp_path) -> subprocess.CompletedProcess:
    env = clean_env({"CCP_LOGS_DIR": str(logs_dir), "CCP_CONFIG_HOME": str(tmp_path / "cfg"),
                     "CCP_HOME": str(tmp_path / "home")})
    return subprocess.run([sys.executable, "-m", "proxy", "serve", "--port", "0"], env=env,
                          cwd=str(PROJECT_ROOT), capture_output=True, text=True, timeout=30)


def test_a_logs_folder_that_cannot_be_written_is_one_config_error_line(small_disk, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder under a regular file: refused even to root
    cases = [blocker / "logs"]
    if isinstance(small_disk, Tmpfs):  # a read-only filesystem, for real
        small_disk.read_only(True)
        cases.append(small_disk.folder / f"logs-{uuid.uuid4().hex[:6]}")
        cases.append(small_disk.folder)
    try:
        for logs_dir in cases:
            done = serve_once(logs_dir, tmp_path)
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(
                f"ConfigError: CCP_LOGS_DIR={logs_dir} cannot be written"), done.stderr
            assert done.stdout == ""  # it never announced a port
    finally:
        if isinstance(small_disk, Tmpfs):
            small_disk.read_only(False)
