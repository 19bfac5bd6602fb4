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
TLS_COLUMNS = (("TLS handshakes/round", "handshakes", 0), ("h2 share", "h2_share", 2))


def fmt(value, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and digits == 0:
        return str(value)
    return f"{value:,.{digits}f}"


def scenario_table(scenario: str, combined: dict, targets: list[str], tls: bool = False) -> list[str]:
    """One scenario's rows; the https path's also show the mock's TLS handshakes and h2 share."""
    columns = COLUMNS + TLS_COLUMNS if tls else COLUMNS
    lines = [f"| target | {' | '.join(c[0] for c in columns)} |",
             "|---" * (len(columns) + 1) + "|"]
    for target in targets:
        row = (combined.get(target) or {}).get(scenario)
        if row is None:
            continue
        lines.append(f"| {target} | " + " | ".join(fmt(row.get(k), d) for _, k, d in columns) + " |")
    return lines


def tls_table(rows: list[dict]) -> list[str]:
    """The https path: every proxy row as ratios to floor-tls (`matrix.tls_ratios`)."""
    if not rows:
        return []
    heads = list(rows[0]["ratios"])
    out = ["## The https path: each upstream client ÷ floor-tls", "",
           "Ratios to the bare TLS relay of the same run (1.00 = the floor); handshakes and h2 share "
           "as the mock's TLS port counted them (non-stream, 32 clients; handshakes also for the "
           "held streams).", "",
           "| target | " + " | ".join(f"{h} ×" for h in heads)
           + " | held errors | handshakes/round c32 | handshakes/round held | h2 share |",
           "|---" * (len(heads) + 5) + "|"]
    for row in rows:
        out.append(f"| {row['target']} | " + " | ".join(fmt(row["ratios"][h], 2) for h in heads)
                   + f" | {fmt(row['hold_errors'], 0)} | {fmt(row['handshakes'], 0)} | "
                   f"{fmt(row['hold_handshakes'], 0)} | {fmt(row['h2_share'], 2)} |")
    out.append("")
    return out


def store_table(rows: list[dict]) -> list[str]:
    """`ccp-pg` (the store on PostgreSQL) against `ccp` (SQLite) of the same run (`matrix.store_ratios`)."""
    if not rows:
        return []
    out = ["## PostgreSQL store ÷ SQLite store", "",
           "`ccp-pg` (CCP_STORE_URL on a PostgreSQL server the bench started) against `ccp` (the "
           "SQLite default) in the same interleaved rounds: the shim's CPU per request and its added "
           "p50 against `direct`, as ratios; the p50 difference is paired round by round. The "
           "database server's own CPU is apart (not in the shim's).", "",
           "| scenario | CPU ms/req SQLite | CPU ms/req PostgreSQL | CPU ÷ | added p50 ms SQLite | "
           "added p50 ms PostgreSQL | added p50 ÷ | p50 PostgreSQL − SQLite ms | server CPU ms/req |",
           "|---" * 9 + "|"]
    for r in rows:
        out.append(f"| {r['scenario']} | {fmt(r['base_cpu_ms_per_req'], 3)} | "
                   f"{fmt(r['cpu_ms_per_req'], 3)} | {fmt(r['cpu_ratio'], 2)} | "
                   f"{fmt(r['base_added_p50_ms'], 2)} | {fmt(r['added_p50_ms'], 2)} | "
                   f"{fmt(r['added_p50_ratio'], 2)} | {fmt(r['p50_vs_base_ms'], 2)} | "
                   f"{fmt(r['db_cpu_ms_per_req'], 3)} |")
    out.append("")
    return out


def render(result: dict) -> str:
    """The Markdown page for one run (`result` is what `write()` saves as JSON)."""
    meta = result["meta"]
    out = [f"# ccp bench — {meta['date']}", "",
           f"Machine: {meta['machine']}; Python {meta['python']}; {meta['mode']} run, "
           f"{meta['rounds']} interleaved rounds; request body {meta['body_kb']} KB.", "",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
           "Added latency and TTFB are paired per round with `direct` (no proxy) and the median of "
           "the per-round differences is shown; CPU is the target process tree's user+system time "
           "per successful request; RSS is the peak (VmHWM) after the scenario. The https path "
           "(`tls_*`: the mock's TLS port) is paired with `direct-tls` and judged against "
           "`floor-tls`, the bare TLS relay.", ""]
    for name, reason in result.get("skipped", {}).items():
        out.append(f"- **{name} skipped**: {reason}")
    if result.get("skipped"):
        out.append("")
    out += ["## ccp's targets", "", "| check | verdict | detail |", "|---|---|---|"]
    for c in result["checks"]:
        mark = {True: "met", False: "**missed**", None: "n/a"}[c["met"]]
        out.append(f"| {c['check']} | {mark} | {c['note']} |")
    out.append("")
    out += tls_table(result.get("tls_ratios") or [])
    out += store_table(result.get("store_ratios") or [])
    for scenario in result["scenarios"]:
        out += [f"## {scenario['name']}", "", scenario["describe"], ""]
        out += scenario_table(scenario["name"], result["combined"], result["targets"],
                              bool(scenario.get("tls")))
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
