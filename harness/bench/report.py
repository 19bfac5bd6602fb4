"""The bench report: numbers in, Markdown and JSON out. `render()` is pure; `write()` saves both.

The Markdown page has the machine, the versions and the date first, then one table per scenario
(every target's row) and the verdicts of ccp's targets, then any profile summary.
"""
from __future__ import annotations

import json
from pathlib import Path

COLUMNS = (("p50 ms", "p50_ms", 2), ("p99 ms", "p99_ms", 2), ("added p50 ms", "added_p50_ms", 2),
           ("TTFB p50 ms", "ttfb_p50_ms", 2), ("added TTFB ms", "added_ttfb_ms", 2),
           ("req/s", "rps", 0), ("CPU ms/req", "cpu_ms_per_req", 3),
           ("peak RSS MB", "peak_rss_mb", 0), ("errors", "errors", 0))


def fmt(value, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and digits == 0:
        return str(value)
    return f"{value:,.{digits}f}"


def scenario_table(scenario: str, combined: dict, targets: list[str]) -> list[str]:
    lines = [f"| target | {' | '.join(c[0] for c in COLUMNS)} |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for target in targets:
        row = (combined.get(target) or {}).get(scenario)
        if row is None:
            continue
        lines.append(f"| {target} | " + " | ".join(fmt(row.get(k), d) for _, k, d in COLUMNS) + " |")
    return lines


def render(result: dict) -> str:
    """The Markdown page for one run (`result` is what `write()` saves as JSON)."""
    meta = result["meta"]
    out = [f"# ccp bench — {meta['date']}", "",
           f"Machine: {meta['machine']}; Python {meta['python']}; {meta['mode']} run, "
           f"{meta['rounds']} interleaved rounds; request body {meta['body_kb']} KB.", "",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
           "Added latency and TTFB are paired per round with `direct` (no proxy) and the median of "
           "the per-round differences is shown; CPU is the target process tree's user+system time "
           "per successful request; RSS is the peak (VmHWM) after the scenario.", ""]
    for name, reason in result.get("skipped", {}).items():
        out.append(f"- **{name} skipped**: {reason}")
    if result.get("skipped"):
        out.append("")
    out += ["## ccp's targets", "", "| check | verdict | detail |", "|---|---|---|"]
    for c in result["checks"]:
        mark = {True: "met", False: "**missed**", None: "n/a"}[c["met"]]
        out.append(f"| {c['check']} | {mark} | {c['note']} |")
    out.append("")
    for scenario in result["scenarios"]:
        out += [f"## {scenario['name']}", "", scenario["describe"], ""]
        out += scenario_table(scenario["name"], result["combined"], result["targets"])
        out.append("")
    if result.get("ablation"):
        out += ["## What ccp's features cost (ablation)", "",
                "The same shim with features switched off for the bench only "
                "(`harness.bench.ablate`): `store` = no SQLite store, `log` = no usage.jsonl write, "
                "`validate` = the body is not parsed (model and stream found by a scan). "
                "Saved = the full shim's CPU/request minus this row's.", "",
                "| scenario | target | CPU ms/req | ÷ floor | saved µs/req | saved (floors) |",
                "|---|---|---|---|---|---|"]
        for row in result["ablation"]:
            out.append(f"| {row['scenario']} | {row['target']} | {fmt(row['cpu_ms_per_req'], 3)} | "
                       f"{fmt(row['floor_ratio'], 2)} | {fmt(row['saved_us'], 0)} | "
                       f"{fmt(row['saved_floors'], 2)} |")
        out.append("")
    for name, prof in (result.get("profiles") or {}).items():
        out += [f"## Profile: {name}", "", prof["describe"], "", "```", *prof["top"], "```", ""]
    return "\n".join(out)


def write(result: dict, results_dir: Path, stamp: str) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    md = results_dir / f"BENCH-{stamp}.md"
    js = results_dir / f"BENCH-{stamp}.json"
    md.write_text(render(result) + "\n")
    js.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return md, js
