"""The `ccp` verbs the reports bring (found through the `ccp.verbs` entry point, see
harness.verbs): each reads the profile's logs and results folders unless told otherwise."""
from __future__ import annotations

from proxy.config.load import load_settings

VERBS = {
    "summarize": ("reports.verbs:summarize_main", "turn usage logs into METRICS JSON and a summary"),
    "verify-routing": ("reports.verbs:verify_main",
                       "print routing shares and gate verdicts; exit 1 on failure"),
    "gates": ("reports.verbs:gates_main", "print gate verdicts; exit 1 on failure"),
    "report": ("reports.verbs:report_main",
               "a self-contained HTML report (results/report.html) from logs or METRICS"),
    "bundle": ("reports.bundle:main",
               "reviewer bundle: logs, METRICS, report, config, MANIFEST + .tgz; --prune N"),
}


def summarize_main(argv: list[str]) -> int:
    from reports.summarize import main
    settings = load_settings()
    return main(argv, default_logs_dir=settings.logs_dir, default_results_dir=settings.results_dir)


def verify_main(argv: list[str]) -> int:
    from reports.verify import main
    return main(argv, default_logs_dir=load_settings().logs_dir)


def gates_main(argv: list[str]) -> int:
    from reports.verify import gates_main
    settings = load_settings()
    return gates_main(argv, default_logs_dir=settings.logs_dir,
                      default_results_dir=settings.results_dir)


def report_main(argv: list[str]) -> int:
    from reports.html import main
    settings = load_settings()
    return main(argv, default_logs_dir=settings.logs_dir, default_results_dir=settings.results_dir)
