"""Fixtures for the operator scenarios: a ccp home of its own, two unrelated folders to type in, and
the lane variables pointing at the session mocks (with the fake lane credentials)."""
from __future__ import annotations

import sqlite3

import httpx
import pytest

from harness.keys import lane_env
from harness.operator import Operator


@pytest.fixture
def op(tmp_path, mock_anthropic, mock_zai):
    """An operator whose state lives in tmp/home and who types in tmp/a and tmp/b."""
    for name in ("home", "a", "b"):
        (tmp_path / name).mkdir()
    operator = Operator(tmp_path / "home", lane_env(mock_anthropic.base_url, mock_zai.zai_base_url),
                        cwd=tmp_path / "a")
    operator.a, operator.b = tmp_path / "a", tmp_path / "b"
    yield operator
    operator.stop_all()


def send(port: int, model: str, api_key: str, text: str = "hi") -> httpx.Response:
    """One non-streaming /v1/messages request, as a client of the shim on `port`."""
    return httpx.post(f"http://127.0.0.1:{port}/v1/messages", trust_env=False, timeout=15,
                      headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
                      json={"model": model, "max_tokens": 16,
                            "messages": [{"role": "user", "content": text}]})


def stored(op) -> int:
    """How many samples the daily store holds (0 before its writer made the file)."""
    path = op.home / "logs" / "ccp.sqlite3"
    if not path.exists():
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("select count(*) from samples").fetchone()[0]
    except sqlite3.OperationalError:  # the writer has not made the table yet
        return 0
    finally:
        con.close()
