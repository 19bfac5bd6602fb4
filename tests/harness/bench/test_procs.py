"""The bench's process plumbing (harness.bench.procs): the event loop, the announced port, and CPU
time and peak RSS read from /proc over a process and its children."""
import asyncio
import os
import subprocess
import sys

import pytest

from harness.bench.procs import cpu_seconds, peak_rss_mb, read_announce, run_fast, tree

WAIT_STDIN = "import sys; sys.stdin.read()"


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)


def _end(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()


@pytest.mark.quick
def test_run_fast_runs_the_coroutine_on_uvloop_when_installed():
    async def which():
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    try:
        import uvloop  # noqa: F401
        want = "uvloop"
    except ImportError:
        want = "asyncio"
    assert run_fast(which()).startswith(want)


def test_read_announce_reads_the_first_json_line_even_when_it_comes_in_pieces():
    proc = _child("import sys, json\n"
                  "sys.stdout.write('{\"event\": \"listen'); sys.stdout.flush()\n"
                  "sys.stdout.write('ing\", \"port\": 4321}\\n{\"later\": 1}\\n'); sys.stdout.flush()\n"
                  "sys.stdin.read()")
    try:
        assert read_announce(proc, 10, "child") == {"event": "listening", "port": 4321}
    finally:
        _end(proc)


def test_read_announce_says_when_the_child_exits_before_listening():
    proc = _child("raise SystemExit(3)")
    try:
        with pytest.raises(RuntimeError, match=r"^floor exited before listening \(code 3\)$"):
            read_announce(proc, 10, "floor")
    finally:
        _end(proc)


def test_read_announce_gives_up_after_its_timeout():
    proc = _child(WAIT_STDIN)
    try:
        with pytest.raises(TimeoutError, match="mock did not announce its port within 0.2s"):
            read_announce(proc, 0.2, "mock")
    finally:
        _end(proc)


def test_the_tree_holds_the_children_and_their_children():
    proc = _child("import subprocess, sys\n"
                  "kid = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],"
                  " stdin=subprocess.PIPE)\n"
                  "print(kid.pid, flush=True)\n"
                  "sys.stdin.read(); kid.stdin.close(); kid.wait()")
    try:
        grandchild = int(proc.stdout.readline())
        assert tree(proc.pid) == [proc.pid, grandchild]
        assert proc.pid in tree(os.getpid()) and grandchild in tree(os.getpid())
    finally:
        _end(proc)


def test_cpu_and_peak_rss_count_the_children_too():
    own_cpu, own_rss = cpu_seconds(os.getpid()), peak_rss_mb(os.getpid())
    assert own_cpu > 0 and own_rss > 10  # this interpreter, with pytest loaded
    proc = _child("x = bytearray(64 * 1024 * 1024)\n"  # touch 64 MB, burn some CPU, then wait
                  "for i in range(0, len(x), 4096): x[i] = 1\n"
                  "sum(range(3_000_000)); print('ready', flush=True)\n"
                  "import sys; sys.stdin.read()")
    try:
        assert proc.stdout.readline() == b"ready\n"
        assert peak_rss_mb(proc.pid) > 64
        assert peak_rss_mb(os.getpid()) >= own_rss + 64
        assert cpu_seconds(os.getpid()) > own_cpu
    finally:
        _end(proc)


def test_a_process_that_is_gone_counts_as_nothing():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    assert (cpu_seconds(proc.pid), peak_rss_mb(proc.pid), tree(proc.pid)) == (0.0, 0.0, [proc.pid])
