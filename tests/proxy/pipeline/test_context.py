"""The per-request state: one typed object, and what it writes for a broken stream."""
import time
from pathlib import Path

import pytest

from proxy import protocols
from proxy.config.settings import Settings
from proxy.core.record import new_record
from proxy.pipeline.context import SAME, Exchange
from proxy.pipeline.state import ShimState

pytestmark = pytest.mark.quick


def exchange(logs: Path, path: str = "/v1/messages", **settings) -> Exchange:
    """An exchange as a front door starts one, on a shim whose logs are `logs`."""
    state = ShimState(Settings(logs_dir=str(logs), persist=False, **settings), None)
    return Exchange(state, state.settings, new_record(state.new_rid(), path),
                    protocols.for_path(path), time.perf_counter())


def test_an_exchange_has_no_dict_of_extras():
    ex = exchange(Path("/nonexistent"))
    with pytest.raises(AttributeError):
        ex.anything_else = 1  # slots: every piece of state is declared
    assert ex.downstream is SAME and ex.events is None and ex.tool_names == {}


def test_a_partial_is_written_with_the_requests_own_credentials_masked(tmp_path):
    ex = exchange(tmp_path)
    ex.credentials = ["sk-ant-secret-credential-1234"]
    where = ex.save_partial([b"data: sk-ant-secret-credential-1234\n\n"])
    text = Path(where).read_text()
    assert "sk-ant-secret-credential-1234" not in text and "data:" in text


def test_a_partial_that_cannot_be_written_is_none(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    ex = exchange(blocker)  # logs "folder" is a file: nothing can be written under it
    assert ex.save_partial([b"x"]) is None
