"""The execd half of the compatible server: the /tmp mapping, execd's line framing, the base env."""
from pathlib import Path

import pytest

from harness.sandbox.opensandbox_execd import TOOLS_BIN, base_env, map_tmp, split_lines

pytestmark = pytest.mark.quick

ROOT = Path("/tmp/ccp-osb-abc")


@pytest.mark.parametrize("text, expected", [
    ("cat /tmp/x", "cat /tmp/ccp-osb-abc/tmp/x"),
    ("/tmp/a /tmp/b", "/tmp/ccp-osb-abc/tmp/a /tmp/ccp-osb-abc/tmp/b"),
    ("echo hi >/tmp/out.txt", "echo hi >/tmp/ccp-osb-abc/tmp/out.txt"),
    ('claude -p "$(cat /tmp/prompt)"', 'claude -p "$(cat /tmp/ccp-osb-abc/tmp/prompt)"'),
    ("f=/tmp/y", "f=/tmp/ccp-osb-abc/tmp/y"),
    ("ls /var/tmp/x ./tmp/y a/tmp/z", "ls /var/tmp/x ./tmp/y a/tmp/z"),
    ("cd /tmp", "cd /tmp"),  # a bare /tmp is not a /tmp/ prefix
])
def test_map_tmp_rewrites_only_path_starting_tmp(text, expected):
    assert map_tmp(text, ROOT) == expected


def test_map_tmp_is_not_applied_twice_by_accident():
    once = map_tmp("cat /tmp/x", ROOT)
    assert once.count("/tmp/ccp-osb-abc/tmp/") == 1


def test_split_lines_frames_like_execd():
    events, pending, cr = split_lines("", "a\n\nb", False, final=False)
    assert (events, pending) == (["a", "\n"], "b")
    events, pending, cr = split_lines(pending, "c\r\nd", cr, final=True)
    assert (events, pending) == (["bc", "d"], "")


def test_base_env_puts_the_project_claude_first_when_installed():
    env = base_env(ROOT)
    assert env["TMPDIR"] == f"{ROOT}/tmp" and env["HOME"] == f"{ROOT}/home"
    assert env["PATH"].startswith(str(TOOLS_BIN)) == TOOLS_BIN.is_dir()
    assert "/usr/bin" in env["PATH"]
