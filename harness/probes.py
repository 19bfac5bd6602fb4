"""Probes: one model request through the shim by a real client, reduced to a `ProbeResult`.

Kinds here: `http` (raw httpx; for streams the exact bytes received are kept) and `sdk` (the official
`anthropic` SDK, stream and non-stream). The `claude` CLI and curl probes come with the real-clients
work. Every result carries the shim's `x-ccp-request-id`, so a test can find the probe's usage record.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field

import anthropic
import httpx

RID_HEADER = "x-ccp-request-id"
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

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def row(self) -> dict:
        """A short, secret-free summary for tables and logs."""
        return {"kind": self.kind, "model": self.model, "op": "stream" if self.stream else "nonstream",
                "status": self.status, "rid": self.rid, "ok": self.ok, "text": self.text[:60],
                "error": self.error, "elapsed_ms": round(self.elapsed_ms, 1)}


def message_body(model: str, prompt: str, stream: bool, max_tokens: int = 64) -> dict:
    return {"model": model, "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": prompt}]}


def text_from_sse(raw: bytes) -> str:
    """Concatenated text deltas of an Anthropic SSE body (ignores anything it cannot parse)."""
    parts: list[str] = []
    for block in raw.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if not line.startswith("data:"):
                continue
            try:
                obj = json.loads(line[5:].strip())
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


def http_probe(base_url: str, model: str, prompt: str = "Say hi", *, stream: bool = False,
               api_key: str | None = None, auth_token: str | None = None,
               extra_headers: dict[str, str] | None = None, query: str = "beta=true",
               timeout: float = DEFAULT_TIMEOUT, body: dict | None = None) -> ProbeResult:
    """POST /v1/messages with httpx; a stream's bytes are kept exactly as received."""
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
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            with client.stream("POST", url, headers=headers, content=json.dumps(payload)) as resp:
                result.status = resp.status_code
                result.headers = dict(resp.headers)
                result.rid = resp.headers.get(RID_HEADER)
                result.raw = b"".join(resp.iter_raw())
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    if result.headers.get("content-type", "").startswith("text/event-stream"):
        result.text = text_from_sse(result.raw)
    else:
        try:
            result.text = text_from_message(json.loads(result.raw))
        except ValueError:
            pass
    return result


def sdk_probe(base_url: str, model: str, prompt: str = "Say hi", *, stream: bool = False,
              api_key: str | None = None, auth_token: str | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
    """One request through the official `anthropic` SDK (no retries, so a failure shows)."""
    result = ProbeResult("sdk", model, stream)
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, auth_token=auth_token,
                                 max_retries=0, timeout=timeout)
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
        result.headers = dict(exc.response.headers)
        result.error = f"{type(exc).__name__}: {exc.message}"
    except anthropic.APIError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    result.rid = result.headers.get(RID_HEADER)
    result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    return result


def _sdk_call(client: anthropic.Anthropic, result: ProbeResult, model: str, messages: list,
              stream: bool) -> None:
    if stream:
        with client.messages.stream(model=model, max_tokens=64, messages=messages) as s:
            result.text = "".join(s.text_stream)
            result.status = s.response.status_code
            result.headers = dict(s.response.headers)
    else:
        raw = client.messages.with_raw_response.create(model=model, max_tokens=64, messages=messages)
        result.status = raw.http_response.status_code
        result.headers = dict(raw.headers)
        result.text = text_from_message(raw.parse().model_dump())


PROBES = {"http": http_probe, "sdk": sdk_probe}


def probe(kind: str, base_url: str, model: str, prompt: str = "Say hi", **kw) -> ProbeResult:
    """Run one probe of `kind` ("http" or "sdk")."""
    try:
        fn = PROBES[kind]
    except KeyError:
        raise ValueError(f"unknown probe kind {kind!r}; expected one of {sorted(PROBES)}") from None
    return fn(base_url, model, prompt, **kw)
