"""`ccp sandbox-smoke`: the sandbox task on a runtime, with mock upstreams unless real keys are allowed.

On mocks: one mock upstream serves the OpenAI-protocol route (`GLM_BASE_URL`) and the anthropic lane;
the real `claude` CLI runs inside the sandbox. With `ALLOW_REAL_API=1` the environment's own keys and
URLs are used. Exit 0 when the run's class is `ok`, 1 otherwise, 2 on a usage error. The run's shim
keeps its logs, store and trajectories in `results/runs/sandbox/<task>/` (emptied first), never in the
daily `logs/`; it binds the spec's 127.0.0.1:18080 unless `--port` says otherwise, so beside a daily
`ccp up` on that port use `--port 0`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.keys import test_keys
from harness.mock_upstream import MockUpstream
from harness.sandbox.e2e import ROUTES_FILE, run_task
from harness.sandbox.runtimes import get_runtime
from harness.sandbox.task import load_task
from harness.shim import PROJECT_ROOT, run_env, run_folder
from proxy.config.load import load_settings
from proxy.core.parse import ConfigError, truthy

DEFAULT_TASK = PROJECT_ROOT / "tasks" / "claude_proxy_demo.yaml"


def mock_env(mock: MockUpstream) -> dict[str, str]:
    keys = test_keys()
    return {"GLM_BASE_URL": f"{mock.base_url}/v1", "GLM_API_KEY": "glm-test-key-3f9d2a61",
            "CCP_ANTHROPIC_BASE_URL": mock.base_url, "CCP_ZAI_BASE_URL": mock.zai_base_url,
            "ANTHROPIC_AUTH_TOKEN": keys["ANTHROPIC_AUTH_TOKEN"], "ZAI_API_KEY": keys["ZAI_API_KEY"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp sandbox-smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=str(DEFAULT_TASK), help="task YAML (default %(default)s)")
    parser.add_argument("--runtime", default=os.environ.get("SANDBOX_RUNTIME", "local"),
                        help="local (default), opensandbox or docker (env SANDBOX_RUNTIME)")
    parser.add_argument("--port", type=int, default=18080,
                        help="the shim's port (default 18080, as the task spec says; 0: any free port)")
    parser.add_argument("--logs", help="the run shim's logs folder (default results/runs/sandbox/"
                                       "<task>, emptied first; never the daily logs)")
    parser.add_argument("--results", help="results folder (default CCP_RESULTS_DIR or the ccp "
                                          "home's results)")
    args = parser.parse_args(argv)
    try:
        results_dir = Path(args.results or load_settings().results_dir).resolve()
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
    local_server = None
    try:
        task = load_task(args.task)
        options = {}
        if args.runtime == "opensandbox":
            url = os.environ.get("OPENSANDBOX_SERVER_URL", "").strip()
            if not url:  # no server of the operators' (and no Docker here): ccp's compatible one
                from harness.sandbox.opensandbox_server import OpenSandboxServer
                local_server = OpenSandboxServer().start()
                url = local_server.base_url
                print(f"[sandbox] OpenSandbox server: ccp's local compatible server at {url}")
            options = {"server_url": url, "api_key": os.environ.get("OPENSANDBOX_API_KEY") or None}
        runtime = get_runtime(args.runtime, **options)
    except ValueError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return 2
    real = truthy(os.environ.get("ALLOW_REAL_API"))
    mock = None if real else MockUpstream("glm").start()
    try:
        env = run_env() if real else mock_env(mock)
        logs_dir = (Path(args.logs).resolve() if args.logs
                    else run_folder(results_dir, "sandbox", Path(args.task).stem))
        result = run_task(task, runtime, shim_env=env, logs_dir=logs_dir, results_dir=results_dir,
                          port=args.port, routes_file=ROUTES_FILE)
    finally:
        if mock is not None:
            mock.stop()
        if local_server is not None:
            local_server.stop()
    summary = {k: result.to_json()[k] for k in ("task", "runtime", "class", "error", "steps", "checks")}
    print(json.dumps(summary, indent=2))
    print(f"[sandbox] artifact: {(result.artifact_text or '').strip()[:120]!r}")
    print(f"[sandbox] result: {result.result_path}")
    return 0 if result.ok else 1
