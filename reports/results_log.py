"""results/TESTS.md: a dated Markdown log of runs, one entry appended per run.

`format_entry()` is pure (run name, toggles, gate verdicts, artifact paths → Markdown);
`append_entry()` is the only writer. harness/repro.py calls it at the end of every `ccp repro`.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path

TESTS_FILE = "TESTS.md"
HEADER = "# Test runs\n\nOne entry per run, newest last (written by reports/results_log.py).\n"


def _verdict(v) -> tuple[str, bool, str]:
    """(name, ok, detail) from a GateResult, a {name, ok, detail} dict or a (name, ok, detail) tuple."""
    if isinstance(v, Mapping):
        return str(v.get("name")), bool(v.get("ok")), str(v.get("detail", ""))
    name, ok, detail = tuple(v)[:3]
    return str(name), bool(ok), str(detail)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_entry(run_name: str, toggles: Mapping[str, object] | None, verdicts: Iterable,
                 artifacts: Iterable, when: str | None = None) -> str:
    """One Markdown entry: heading with date and run, overall verdict, toggles, gates, artifacts."""
    when = when or time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    rows = [_verdict(v) for v in verdicts]
    failed = [name for name, ok, _ in rows if not ok]
    overall = (f"**FAIL** ({len(failed)}/{len(rows)}: {', '.join(failed)})" if failed
               else f"PASS ({len(rows)}/{len(rows)} gates)")
    set_toggles = {k: v for k, v in (toggles or {}).items() if v is not None}
    lines = [f"## {when} — {run_name}", "", f"- verdict: {overall}",
             "- toggles: " + (", ".join(f"`{k}={v}`" for k, v in sorted(set_toggles.items()))
                              or "defaults"), ""]
    if rows:
        lines += ["| gate | verdict | detail |", "|---|---|---|"]
        lines += [f"| {_cell(n)} | {'PASS' if ok else '**FAIL**'} | {_cell(d)} |" for n, ok, d in rows]
        lines.append("")
    paths = [str(a) for a in artifacts]
    if paths:
        lines += ["Artifacts:", "", *[f"- `{p}`" for p in paths], ""]
    return "\n".join(lines) + "\n"


def append_entry(results_dir, run_name: str, toggles, verdicts, artifacts) -> Path:
    """Append one entry to `<results_dir>/TESTS.md` (created with a header); return its path."""
    path = Path(results_dir) / TESTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = format_entry(run_name, toggles, verdicts, artifacts)
    with open(path, "a", encoding="utf-8") as fh:
        if fh.tell() == 0:
            fh.write(HEADER + "\n")
        fh.write(entry + "\n")
    return path
