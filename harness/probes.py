"""Probes: one model request through the shim by a real client, reduced to a `ProbeResult`.

Kinds: `http` (raw httpx; a stream's bytes are kept exactly as received), `sdk` (the official
`anthropic` SDK), `curl` (real curl, `-N` for streams) and `cli` (the real `claude` CLI, see
harness.cli_probe). Every result carries the shim's `x-ccp-request-id` and `x-ccp-lane` when the client
shows response headers; a CLI result carries Claude Code's session id, which the shim records as
`client_session`, so `attach_records()` can find any probe's usage record. Every probe has a timeout.
"""
from __future__ import annotations

import json
import ssl
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import anthropic
import httpx

from harness.shim import HttpsProxy
from proxy.core.sse import events_of

RID_HEADER = "x-ccp-request-id"
LANE_HEADER = "x-ccp-lane"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_TIMEOUT = 30.0


@dataclass
class ProbeResult:
    kind: str
    model: str
    stream: bool
    status: int | None = None
    rid: str | None = None
    text: str = ""
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    elapsed_ms: float = 0.0
    lane: str | None = None
    exit_code: int | None = None
    session_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def row(self) -> dict:
        """A short, secret-free summary for tables and logs."""
        return {"kind": self.kind, "model": self.model, "op": "stream" if self.stream else "nonstream",
                "status": self.status, "lane": self.lane, "rid": self.rid, "ok": self.ok,
                "text": self.text[:60], "error": self.error, "exit_code": self.exit_code,
                "elapsed_ms": round(self.elapsed_ms, 1)}

    def take_headers(self, headers: dict[str, str]) -> None:
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.rid = self.headers.get(RID_HEADER)
        self.lane = self.headers.get(LANE_HEADER)


def message_body(model: str, prompt: str, stream: bool, max_tokens: int = 64) -> dict:
    return {"model": model, "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": prompt}]}


def text_from_sse(raw: bytes) -> str:
    """Concatenated text deltas of an Anthropic SSE body (ignores anything it cannot parse)."""
    parts: list[str] = []
    for event in events_of(raw):
        if event.data is None:
            continue
        try:
            obj = json.loads(event.data.decode("utf-8", errors="replace"))
        except ValueError:
            continue
        delta = obj.get("delta") if isinstance(obj, dict) else None
        if isinstance(delta, dict) and delta.get("type") == "text_delta":
            parts.append(delta.get("text", ""))
    return "".join(parts)


def text_from_message(obj: object) -> str:
    if not isinstance(obj, dict):
        return ""
    return "".join(b.get("text", "") for b in obj.get("content") or []
                   if isinstance(b, dict) and b.get("type") == "text")


def httpx_client(timeout: float, via: HttpsProxy | None = None) -> httpx.Client:
    """A client straight to the URL, or through `via` trusting its CA (never the environment's)."""
    if via is None:
        return httpx.Client(timeout=timeout, trust_env=False)
    return httpx.Client(timeout=timeout, trust_env=False, proxy=via.url,
                        verify=ssl.create_default_context(cafile=via.ca_cert))


def _sdk_http_client(timeout: float, via: HttpsProxy):
    """The SDK's own client class (it rejects a plain httpx one), through `via`."""
    return anthropic.DefaultHttpxClient(timeout=timeout, trust_env=False, proxy=via.url,
                                        verify=ssl.create_default_context(cafile=via.ca_cert))


def http_probe(base_url: str, model: str, prompt: str = "Say hi", *, stream: bool = False,
               api_key: str | None = None, auth_token: str | None = None,
               extra_headers: dict[str, str] | None = None, query: str = "beta=true",
               timeout: float = DEFAULT_TIMEOUT, body: dict | None = None,
               via: HttpsProxy | None = None,
               on_first_event: Callable[[], None] | None = None) -> ProbeResult:
    """POST /v1/messages with httpx; a stream's bytes are kept exactly as received.
    `on_first_event` is called once, as soon as the bytes received hold a whole SSE event (before
    the rest is read)."""
    headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    if auth_token:
        headers["authorization"] = f"Bearer {auth_token}"
    headers.update(extra_headers or {})
    payload = body if body is not None else message_body(model, prompt, stream)
    url = f"{base_url}/v1/messages" + (f"?{query}" if query else "")
    result = ProbeResult("http", model, stream)
    t0 = time.perf_counter()
    try:
        with httpx_client(timeout, via) as client:
            with client.stream("POST", url, headers=headers, content=json.dumps(payload)) as resp:
                result.status = resp.status_code
                result.take_headers(dict(resp.headers))
                raw = bytearray()
                for chunk in resp.iter_raw():
                    raw += chunk
                    if on_first_event is not None and _whole_event(raw):
                        on_first_event()
                        on_first_event = None
                result.raw = bytes(raw)
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    result.text = text_of_body(result.raw, result.headers.get("content-type", ""))
    return result


def _whole_event(raw: bytearray) -> bool:
    """The bytes hold at least one SSE event with its blank line (LF, CR LF or CR ends)."""
    return any(end in raw for end in (b"\n\n", b"\r\n\r\n", b"\r\r"))


def text_of_body(raw: bytes, content_type: str) -> str:
    if content_type.startswith("text/event-stream"):
        return text_from_sse(raw)
    try:
        return text_from_message(json.loads(raw))
    except ValueError:
        return ""


def sdk_probe(base_url: str, model: str, prompt: str = "Say hi", *, stream: bool = False,
              api_key: str | None = None, auth_token: str | None = None,
              timeout: float = DEFAULT_TIMEOUT, via: HttpsProxy | None = None) -> ProbeResult:
    """One request through the official `anthropic` SDK (no retries, so a failure shows)."""
    result = ProbeResult("sdk", model, stream)
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, auth_token=auth_token,
                                 max_retries=0, timeout=timeout,
                                 http_client=_sdk_http_client(timeout, via) if via else None)
    messages = [{"role": "user", "content": prompt}]
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # The SDK warns about retired model ids; probes use whatever id the operator's client sends.
            warnings.filterwarnings("ignore", message=r"The model .* is deprecated",
                                    category=DeprecationWarning)
            _sdk_call(client, result, model, messages, stream)
    except anthropic.APIStatusError as exc:
        result.status = exc.status_code
        result.take_headers(dict(exc.response.headers))
        result.error = f"{type(exc).__name__}: {exc.message}"
    except anthropic.APIError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    except ValueError as exc:  # a stream the SDK cannot decode (cut inside a UTF-8 character, a
        # line that is no JSON): that probe failed, the run goes on and its gates say so
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    return result


def _sdk_call(client: anthropic.Anthropic, result: ProbeResult, model: str, messages: list,
              stream: bool) -> None:
    if stream:
        with client.messages.stream(model=model, max_tokens=64, messages=messages) as s:
            result.text = "".join(s.text_stream)
            result.status = s.response.status_code
            result.take_headers(dict(s.response.headers))
    else:
        raw = client.messages.with_raw_response.create(model=model, max_tokens=64, messages=messages)
        result.status = raw.http_response.status_code
        result.take_headers(dict(raw.headers))
        result.text = text_from_message(raw.parse().model_dump())


def fan_out(fn: Callable[[], ProbeResult], n: int, parallel: bool = True) -> list[ProbeResult]:
    """`n` runs of a probe, at once (threads) or one after another; results in submission order."""
    if not parallel or n <= 1:
        return [fn() for _ in range(n)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return [f.result() for f in [pool.submit(fn) for _ in range(n)]]


def attach_records(results: list[ProbeResult], records: list[dict]) -> dict[int, dict]:
    """Find each probe's usage record (by rid, else by Claude Code's session id); fill in `lane`.

    Returns {index of result: record}; a probe whose record is missing is left out.
    """
    by_rid = {r.get("rid"): r for r in records if r.get("rid")}
    by_session: dict[str, dict] = {}
    for rec in records:
        if rec.get("client_session"):
            by_session.setdefault(rec["client_session"], rec)
    found: dict[int, dict] = {}
    for i, res in enumerate(results):
        rec = by_rid.get(res.rid) if res.rid else by_session.get(res.session_id or "")
        if rec is not None:
            found[i] = rec
            res.rid = res.rid or rec.get("rid")
            res.lane = res.lane or rec.get("lane")
    return found
