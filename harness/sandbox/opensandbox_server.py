"""ccp's own OpenSandbox-compatible server: the slice of the lifecycle and execd APIs the SDK uses.

Where no Docker engine exists (CI), this stands in for `opensandbox-server` so the `opensandbox`
runtime still runs through the official SDK. A "sandbox" is a local process sandbox: a temporary
root folder per sandbox, commands run by bash in that folder. The image is recorded, never pulled;
the entrypoint is recorded, never run.

Lifecycle API (served under `/v1` and bare, as the real server mounts both; API key checked):
    POST   /sandboxes                      202 {id, status, createdAt, expiresAt, entrypoint, ...}
    GET    /sandboxes                      200 {items, pagination}
    GET    /sandboxes/{id}                 200 sandbox | 404
    DELETE /sandboxes/{id}                 204 | 404 (kills the sandbox's processes, removes its root)
    GET    /sandboxes/{id}/endpoints/{port}  200 {endpoint}: port 44772 is this server's execd
    POST   /metrics/events                 204 (the SDK's create-latency report, accepted and dropped)
Execd API (at the endpoint `127.0.0.1:<port>/execd/<id>`; no API key, as direct-mode execd):
    GET  /ping                  200
    POST /command               SSE: init, stdout/stderr (one event per line, like execd), then
                                execution_complete, or error with `evalue` = the exit code
    GET  /files/download?path=  the file's bytes | 404 FILE_NOT_FOUND

Sandboxes, commands and the /tmp mapping (`/tmp/` in command strings, cwd and file paths becomes
`<root>/tmp/`) live in `harness.sandbox.opensandbox_execd`; this module owns the HTTP surface.

Errors are the real server's shapes: a bad image (name containing `does-not-exist`, or not in
`known_images` when given) fails create with 500 `DOCKER::SANDBOX_IMAGE_PULL_FAILED`.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.sandbox.opensandbox_execd import LocalSandbox, map_tmp, run_streaming
from harness.threaded import ThreadedServer

EXECD_PORT = 44772
API_KEY_HEADER = "OPEN-SANDBOX-API-KEY"
BAD_IMAGE_MARKER = "does-not-exist"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


class OpenSandboxServer(ThreadedServer):
    """An OpenSandbox-compatible server on 127.0.0.1 port 0, in its own thread and event loop."""

    _thread_name = "opensandbox-server"

    def __init__(self, api_key: str | None = None, known_images: Collection[str] | None = None,
                 workdir: str | Path | None = None) -> None:
        self._api_key = api_key or None
        self._known = frozenset(known_images) if known_images is not None else None
        self._workdir = Path(workdir) if workdir else None
        self._boxes: dict[str, LocalSandbox] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._stop_requested = asyncio.Event()

    # lifecycle of the server itself
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sandboxes(self) -> dict[str, LocalSandbox]:
        """A snapshot of the live sandboxes by id."""
        with self._lock:
            return dict(self._boxes)

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        app = web.Application(middlewares=[self._auth])
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/sandboxes", self._create)
            app.router.add_get(f"{prefix}/sandboxes", self._list)
            app.router.add_get(f"{prefix}/sandboxes/{{sid}}", self._get)
            app.router.add_delete(f"{prefix}/sandboxes/{{sid}}", self._delete)
            app.router.add_get(f"{prefix}/sandboxes/{{sid}}/endpoints/{{port}}", self._endpoint)
            app.router.add_post(f"{prefix}/metrics/events", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/execd/{sid}/ping", self._ping)
        app.router.add_post("/execd/{sid}/command", self._command)
        app.router.add_get("/execd/{sid}/files/download", self._download)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def _close(self) -> None:
        with self._lock:
            boxes = list(self._boxes.values())
            self._boxes.clear()
        for box in boxes:
            box.kill()
            shutil.rmtree(box.root, ignore_errors=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _box(self, request: web.Request) -> LocalSandbox | None:
        with self._lock:
            return self._boxes.get(request.match_info["sid"])

    # middleware
    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._api_key is None or request.path == "/health" or request.path.startswith("/execd/"):
            return await handler(request)
        given = request.headers.get(API_KEY_HEADER)
        if not given:
            return _error(401, "MISSING_API_KEY", f"Authentication credentials are missing. "
                                                  f"Provide an API key via the {API_KEY_HEADER} header.")
        if given != self._api_key:
            return _error(401, "INVALID_API_KEY", "Authentication credentials are invalid.")
        return await handler(request)

    # lifecycle handlers
    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            image = body["image"]["uri"]
            entrypoint = [str(part) for part in body.get("entrypoint") or []]
            env = {str(k): str(v) for k, v in (body.get("env") or {}).items() if v is not None}
            metadata = {str(k): str(v) for k, v in (body.get("metadata") or {}).items()}
            ttl = body.get("timeout")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _error(400, "SANDBOX::INVALID_PARAMETER", f"invalid create request: {exc}")
        if not entrypoint:
            return _error(400, "SANDBOX::INVALID_ENTRYPOINT", "Entrypoint must not be empty.")
        if BAD_IMAGE_MARKER in image or (self._known is not None and image not in self._known):
            repo = image.rsplit(":", 1)[0]
            return _error(500, "DOCKER::SANDBOX_IMAGE_PULL_FAILED",
                          f"Failed to pull image {image}: 404 Client Error: Not Found (\"pull access "
                          f"denied for {repo}, repository does not exist or may require 'docker login'\")")
        created = datetime.now(UTC)
        expires = created + timedelta(seconds=int(ttl)) if ttl else None
        root = Path(tempfile.mkdtemp(prefix="ccp-osb-", dir=self._workdir))
        for sub in ("tmp", "home"):
            (root / sub).mkdir()
        box = LocalSandbox(str(uuid.uuid4()), image, entrypoint, env, metadata, root, created, expires)
        with self._lock:
            self._boxes[box.id] = box
        payload = box.to_json()
        payload.pop("image")
        return web.json_response(payload, status=202)

    async def _list(self, request: web.Request) -> web.Response:
        items = [box.to_json() for box in self.sandboxes.values()]
        return web.json_response({"items": items, "pagination": {
            "page": 1, "pageSize": max(len(items), 1), "totalItems": len(items),
            "totalPages": 1 if items else 0, "hasNextPage": False}})

    async def _get(self, request: web.Request) -> web.Response:
        box = self._box(request)
        if box is None:
            return self._not_found(request)
        return web.json_response(box.to_json())

    async def _delete(self, request: web.Request) -> web.Response:
        with self._lock:
            box = self._boxes.pop(request.match_info["sid"], None)
        if box is None:
            return self._not_found(request)
        box.kill()
        shutil.rmtree(box.root, ignore_errors=True)
        return web.Response(status=204)

    async def _endpoint(self, request: web.Request) -> web.Response:
        if self._box(request) is None:
            return self._not_found(request)
        sid, port = request.match_info["sid"], request.match_info["port"]
        if port == str(EXECD_PORT):
            return web.json_response({"endpoint": f"127.0.0.1:{self.port}/execd/{sid}"})
        # Other ports (the egress sidecar's 18080, user services) exist only as addresses here.
        return web.json_response({"endpoint": f"127.0.0.1:{self.port}/sandboxes/{sid}/proxy/{port}"})

    async def _metrics(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    @staticmethod
    def _not_found(request: web.Request) -> web.Response:
        return _error(404, "DOCKER::SANDBOX_NOT_FOUND",
                      f"Sandbox {request.match_info['sid']} not found.")

    # execd handlers
    async def _ping(self, request: web.Request) -> web.Response:
        if self._box(request) is None:
            return self._not_found(request)
        return web.Response(status=200)

    async def _download(self, request: web.Request) -> web.Response:
        box = self._box(request)
        if box is None:
            return self._not_found(request)
        raw = request.query.get("path", "")
        if not raw:
            return _error(400, "MISSING_QUERY", "missing query parameter 'path'")
        path = Path(map_tmp(raw, box.root))
        if not path.is_absolute():
            path = box.root / path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return _error(404, "FILE_NOT_FOUND", f"file not found. {raw}")
        except OSError as exc:
            return _error(500, "RUNTIME_ERROR", f"error reading file: {raw}. {exc}")
        return web.Response(body=data, content_type="application/octet-stream",
                            headers={"Content-Disposition": f'attachment; filename="{path.name}"'})

    async def _command(self, request: web.Request) -> web.StreamResponse:
        box = self._box(request)
        if box is None:
            return self._not_found(request)
        try:
            body = await request.json()
            command = body.get("command")
            if not isinstance(command, str) or not command.strip():
                raise ValueError("command must be non-empty shell text")
            if body.get("background"):
                raise ValueError("background commands are not supported by ccp's local server")
            timeout_ms = int(body.get("timeout") or 0)
            envs = {str(k): str(v) for k, v in (body.get("envs") or {}).items()}
            cwd = map_tmp(str(body.get("cwd") or ""), box.root) or str(box.root)
        except (ValueError, TypeError, AttributeError) as exc:
            return _error(400, "INVALID_REQUEST_BODY", f"invalid request, validation error {exc}")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await run_streaming(box, map_tmp(command, box.root), cwd, envs, timeout_ms, resp)
        await resp.write_eof()
        return resp
