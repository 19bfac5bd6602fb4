"""TC_CLAUDE_PROXY_E2E_SMOKE: a coding agent in a sandbox whose only way to a model is the shim.

`run_task()` takes one task through the ten steps — start the shim (routes loaded, `ENV:` resolved),
load the sandbox server config, create the sandbox with the shim's URL and a session token as its only
credential, register the session, run the task's commands (the real `claude -p`), read the artifact,
check the trajectory — and always cleans up (sandbox deleted, session ended, shim stopped), also when a
step failed. The outcome is one class: `ok`, `sandbox_create_error`, `proxy_bind_error`,
`upstream_error`, `runtime_error` or `artifact_read_error`, written with step timings, the artifact
text and the trajectory paths to `results/sandbox/<task>-<ts>.json`.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from harness.sandbox.runtime import Runtime, SandboxError
from harness.sandbox.task import Task
from harness.shim import PROJECT_ROOT, ShimProcess, wait_until

ROUTES_FILE = PROJECT_ROOT / "config" / "llmproxy-cfg.yaml"
SERVER_CONFIG = PROJECT_ROOT / "config" / "sandbox-server-cfg.yaml"


class StepFailed(Exception):
    def __init__(self, failure_class: str, message: str) -> None:
        super().__init__(message)
        self.failure_class = failure_class


@dataclass
class RunResult:
    task: str
    runtime: str
    failure_class: str = "ok"
    error: str | None = None
    steps: dict[str, float] = field(default_factory=dict)
    artifact_text: str | None = None
    trajectory: list[str] = field(default_factory=list)
    session: str | None = None
    sandbox_id: str | None = None
    checks: dict[str, object] = field(default_factory=dict)
    commands: list[dict] = field(default_factory=list)
    result_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure_class == "ok"

    def to_json(self) -> dict:
        data = {k: v for k, v in self.__dict__.items()}
        data["class"] = data.pop("failure_class")
        return data


@contextmanager
def _step(result: RunResult, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        result.steps[name] = round((time.perf_counter() - t0) * 1000.0, 1)


def _port_free(host: str, port: int) -> bool:
    if port == 0:
        return True
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _upstream_failed(shim: ShimProcess, session: str, wait: float) -> dict | None:
    """The session's record with an upstream non-2xx, waited for a moment (the CLI may exit a hair
    before the shim writes the record of its last stream), or None."""
    def find() -> dict | None:
        for rec in shim.records():
            if rec.get("session") == session and (rec.get("upstream_status") or 0) >= 400:
                return rec
        return None
    try:
        return wait_until(find, wait, "an upstream error record", interval=0.05)
    except TimeoutError:
        return None


def run_task(task: Task, runtime: Runtime, *, shim_env: Mapping[str, str], logs_dir: Path,
             results_dir: Path, port: int = 18080, host: str = "127.0.0.1",
             routes_file: Path = ROUTES_FILE, server_config: Path | None = SERVER_CONFIG) -> RunResult:
    """Run one task end to end; never raises for a failed step (the result says which class)."""
    result = RunResult(task=task.name, runtime=runtime.name)
    token = "ccp-sess-" + secrets.token_hex(16)
    shim: ShimProcess | None = None
    box = None
    try:
        with _step(result, "start_shim"):
            if not _port_free(host, port):
                raise StepFailed("proxy_bind_error", f"{host}:{port} is already in use")
            shim = ShimProcess(logs_dir, {"CCP_CONFIG": str(routes_file), **shim_env}, host=host, port=port)
            try:
                shim.start()
            except (RuntimeError, TimeoutError) as exc:
                kind = "proxy_bind_error" if "address already in use" in str(exc).lower() else "runtime_error"
                raise StepFailed(kind, f"the shim did not start: {exc}") from exc
        with _step(result, "load_routes"):
            providers = httpx.get(f"{shim.url}/readyz", timeout=10, trust_env=False).json()["providers"]
            result.checks["providers"] = sorted(providers)
        with _step(result, "load_server_config"):
            if server_config is not None and server_config.exists():
                from harness.sandbox.server_config import load_server_config
                result.checks["server_config"] = str(server_config)
                load_server_config(server_config, os.environ)
        env = {"ANTHROPIC_BASE_URL": shim.url, "ANTHROPIC_AUTH_TOKEN": token, "ANTHROPIC_MODEL": task.model,
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
               "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": "0"}
        with _step(result, "create_sandbox"):
            try:
                box = runtime.create(env, image=task.image, name=task.name, timeout=task.timeouts["create"])
            except SandboxError as exc:
                raise StepFailed("sandbox_create_error", str(exc)) from exc
            result.sandbox_id = box.id
        with _step(result, "register_session"):
            reg = httpx.post(f"{shim.url}/v1/sessions", trust_env=False, timeout=10,
                             headers=_admin(shim_env),
                             json={"session_token": token, "sandbox_id": box.id, "task_name": task.name})
            if reg.status_code != 201:
                raise StepFailed("runtime_error", f"session registration failed: {reg.status_code} {reg.text}")
            result.session = reg.json()["session"]
        with _step(result, "run_commands"):
            for command in task.commands:
                out = box.run(command, timeout=task.timeouts["command"])
                result.commands.append({"command": command, "exit_code": out.exit_code,
                                        "stdout": out.stdout[-2000:], "stderr": out.stderr[-2000:]})
                if out.exit_code != 0:
                    failed = _upstream_failed(shim, result.session, wait=1.0)
                    if failed is not None:
                        raise StepFailed("upstream_error", f"upstream answered {failed['upstream_status']} "
                                         f"({failed['err_type']}) to `{command}`")
                    raise StepFailed("runtime_error", f"`{command}` exited {out.exit_code}: "
                                     f"{(out.stderr or out.stdout).strip()[-300:]}")
        with _step(result, "read_artifact"):
            try:
                result.artifact_text = box.read_file(task.artifact)
            except SandboxError as exc:
                raise StepFailed("artifact_read_error", str(exc)) from exc
            if task.expect not in result.artifact_text:
                raise StepFailed("runtime_error", f"{task.artifact} does not contain {task.expect!r}: "
                                 f"{result.artifact_text[:200]!r}")
        with _step(result, "check_trajectory"):
            _check_trajectory(shim, task, result)
    except StepFailed as exc:
        result.failure_class, result.error = exc.failure_class, str(exc)
    except Exception as exc:  # a harness bug still ends in a result and a cleanup
        result.failure_class, result.error = "runtime_error", f"{type(exc).__name__}: {exc}"
    finally:
        with _step(result, "cleanup"):
            if box is not None:
                box.delete()
            if shim is not None and result.session:
                try:
                    httpx.delete(f"{shim.url}/v1/sessions/{result.session}", headers=_admin(shim_env),
                                 trust_env=False, timeout=5)
                except httpx.HTTPError:
                    pass
            if shim is not None:
                shim.stop()
        result.result_path = str(_write_result(result, results_dir))
    return result


def _admin(shim_env: Mapping[str, str]) -> dict[str, str]:
    token = shim_env.get("CCP_ADMIN_TOKEN")
    return {"x-ccp-admin-token": token} if token else {}


def _check_trajectory(shim: ShimProcess, task: Task, result: RunResult) -> None:
    recs = [r for r in shim.wait_for_records(1) if r.get("session") == result.session]
    folder = shim.logs_dir / "trajectory" / str(result.session)
    queries = sorted((folder / "query").glob("*.json"))
    answers = sorted((folder / "answer").glob("*.json"))
    result.trajectory = [str(p) for p in queries + answers]
    pairs = {q.name for q in queries} == {a.name for a in answers} and bool(queries)
    model_ok = any(r.get("model") == task.model and r.get("decision") == "route" for r in recs)
    full = False
    for q in queries:
        request = json.loads(q.read_text()).get("request") or {}
        full = full or {"messages", "tools"} <= request.keys()
    result.checks.update(trajectory_pairs=pairs, model_matches_route=model_ok, full_request=full,
                         session_records=len(recs), streams=[r.get("op") for r in recs])
    if not pairs:
        raise StepFailed("runtime_error", f"trajectory of {result.session} has unpaired or no files")
    if not model_ok:
        raise StepFailed("runtime_error", f"no request of the session was routed by the route {task.model!r}")
    if not full:
        raise StepFailed("runtime_error", "no query holds the full upstream request (messages, tools)")


def _write_result(result: RunResult, results_dir: Path) -> Path:
    folder = Path(results_dir) / "sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{result.task}-{stamp}.json"
    path.write_text(json.dumps(result.to_json(), indent=2))
    return path
