"""The bench's ablation rows: the shim with a feature switched off really lacks that feature (and
still proxies), and the report says what each switch saved."""
import json
import urllib.error
import urllib.request

import pytest

from harness.bench import matrix, report
from harness.bench.ablate import scan_route_fields
from harness.bench.run import make_target
from harness.bench.targets import FastMock

pytestmark = pytest.mark.quick


def test_the_scan_reads_model_and_stream_without_validating():
    assert scan_route_fields(b'{"model":"m-1","max_tokens":5,"stream":true}') == (
        {"model": "m-1", "stream": True}, False)
    assert scan_route_fields(b'{"model": "m\\"x", "messages": [ oops')[0] == {"model": 'm\\"x'}
    with pytest.raises(ValueError):
        scan_route_fields(b'{"messages": []}')


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url + "/v1/messages", data=body, method="POST",
                                 headers={"content-type": "application/json", "x-api-key": "k"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_shim_without_log_and_validation_still_proxies_but_writes_no_line(tmp_path):
    mock = FastMock().start(tmp_path)
    full, ablated = make_target("ccp"), make_target("ccp-without-log+validate")
    try:
        for target in (full, ablated):
            target.start(mock.url, tmp_path)
        good = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5}).encode()
        bad = b'{"model":"claude-sonnet-4-5","messages":[}'
        for target in (full, ablated):
            assert _post(target.url, good)[0] == 200
        before = mock.calls()
        assert _post(full.url, bad)[0] == 400  # the full shim refuses it: the mock never sees it
        assert mock.calls() == before
        _post(ablated.url, bad)  # without validation it goes upstream as it came
        assert mock.calls() == before + 1
        assert full.shim.records() and not ablated.shim.usage_path.read_bytes()
    finally:
        for target in (full, ablated):
            target.stop()
        mock.stop()


def test_ablation_rows_say_what_each_switch_saved():
    combined = {"floor": {"nonstream_c32": {"cpu_ms_per_req": 0.2}},
                "ccp": {"nonstream_c32": {"cpu_ms_per_req": 0.34}},
                "ccp-without-store": {"nonstream_c32": {"cpu_ms_per_req": 0.31}},
                "ccp-bare": {"nonstream_c32": {"cpu_ms_per_req": 0.25}}}
    rows = {r["target"]: r for r in matrix.ablation(combined)}
    assert rows["ccp"]["saved_us"] is None and rows["ccp"]["floor_ratio"] == pytest.approx(1.7)
    assert rows["ccp-without-store"]["saved_us"] == pytest.approx(30.0)
    assert rows["ccp-bare"]["saved_floors"] == pytest.approx(0.45)
    assert matrix.ablation({k: v for k, v in combined.items() if k in ("floor", "ccp")}) == []
    page = report.render({"meta": {"date": "d", "machine": "m", "python": "3", "mode": "quick",
                                   "rounds": 1, "body_kb": 64, "versions": {}},
                          "targets": list(combined), "skipped": {}, "scenarios": [],
                          "combined": combined, "checks": [], "ablation": matrix.ablation(combined)})
    assert "| nonstream_c32 | ccp-without-store | 0.310 | 1.55 | 30 | 0.15 |" in page
