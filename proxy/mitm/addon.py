"""The mitmproxy addon of `ccp mitm` (HTTPS_PROXY mode): a thin adapter onto the shim's pipeline.

Claude Code, run with its own login and `HTTPS_PROXY`, talks to `api.anthropic.com` through
mitmproxy, which terminates its TLS. `CcpRouter` hands each model request of the chosen flows to
the pipeline — the same aiohttp front door `ccp serve` is, served by `ccp mitm` itself on its admin
port — and lets mitmproxy stream the answer back as it comes. So both front doors are one pipeline:
the body checks, routing and the quota row, header hygiene, conversion to OpenAI-protocol routes,
backoff, the fallback lane, sessions and trajectories, partials, the body tee, and the one usage
record per request (written by the pipeline, never here). mitmproxy keeps what only it can do: the
client's TLS and HTTP/2, and the flows that are not model calls.

Which flows: `MITM_FILTER_CHAIN` — `1` (default) the Anthropic API hosts, `0` none (mitmproxy passes
everything untouched), or a mitmproxy filter expression. Inside the chosen flows only the model
paths (`/v1/messages`, `/v1/message`, `/v1/messages/count_tokens`, also under a prefix) go to the
pipeline; anything else on those hosts goes to the anthropic lane's upstream as it came.
"""

from __future__ import annotations

import logging
from typing import NamedTuple
from urllib.parse import urlsplit

from mitmproxy import flowfilter, http

from proxy.config.settings import Settings
from proxy.core.parse import FALSE, TRUE
from proxy.protocols import ANTHROPIC
from proxy.protocols import get as protocol

log = logging.getLogger("ccp.mitm")

ANTHROPIC_API_HOSTS = ("api.anthropic.com",)
MODEL_PATHS = protocol(ANTHROPIC).paths
_ROUTED = "ccp"  # flow.metadata key: this flow went to the pipeline


class FilterChain(NamedTuple):
    """Which flows the addon handles: none, or those a mitmproxy filter expression matches."""

    enabled: bool
    expression: str


def parse_filter_chain(value: str) -> FilterChain:
    """`MITM_FILTER_CHAIN`: 1/on (the Anthropic API hosts), 0/off, or a mitmproxy filter expression.
    Raises ValueError for an expression mitmproxy cannot parse."""
    raw = value.strip()
    if raw.lower() in TRUE or raw == "":
        return FilterChain(True, " | ".join(f"~d {h}" for h in ANTHROPIC_API_HOSTS))
    if raw.lower() in FALSE:
        return FilterChain(False, "")
    try:
        flowfilter.parse(raw)
    except ValueError as exc:
        raise ValueError(f"not a mitmproxy filter expression: {raw!r} ({exc})") from None
    return FilterChain(True, raw)


class CcpRouter:
    """Sends the model requests of the chosen flows to the pipeline at `pipeline_url`."""

    def __init__(self, settings: Settings, pipeline_url: str) -> None:
        self.settings = settings
        chain = parse_filter_chain(settings.mitm_filter_chain)
        self.enabled = chain.enabled
        self._filter = flowfilter.parse(chain.expression) if chain.enabled else None
        pipeline = urlsplit(pipeline_url)
        assert pipeline.hostname is not None and pipeline.port is not None, pipeline_url
        self._pipeline = (pipeline.scheme, pipeline.hostname, pipeline.port)
        self.passed = 0  # flows left to mitmproxy (other hosts, other paths)
        self.routed = 0

    def _chosen(self, flow: http.HTTPFlow) -> bool:
        f = self._filter  # (None exactly when not enabled)
        return self.enabled and f is not None and bool(flowfilter.match(f, flow))

    @staticmethod
    def _is_model_request(flow: http.HTTPFlow) -> bool:
        # by suffix: a host chosen by MITM_FILTER_CHAIN may serve the API under a prefix
        return flow.request.method == "POST" and flow.request.path.split("?", 1)[0].endswith(
            MODEL_PATHS
        )

    def request(self, flow: http.HTTPFlow) -> None:
        chosen = self._chosen(flow)
        if chosen and self._is_model_request(flow):
            scheme, host, port = self._pipeline
            # the path keeps any prefix's end and the query; the pipeline serves it as the shim does
            path = flow.request.path
            prefix_end = path.split("?", 1)[0]
            model_path = next(
                p for p in sorted(MODEL_PATHS, key=len, reverse=True) if prefix_end.endswith(p)
            )
            query = path[len(prefix_end) :]
            flow.request.scheme, flow.request.host, flow.request.port = scheme, host, port
            flow.request.path = model_path + query
            flow.metadata[_ROUTED] = True
            self.routed += 1
            return
        self.passed += 1
        log.info(
            "[pass%s] %s %s%s",
            " to the anthropic lane" if chosen else "",
            flow.request.method,
            flow.request.pretty_host,
            flow.request.path.split("?", 1)[0],
        )
        if chosen:  # the Anthropic API, not a model call: the anthropic lane, as it came
            self._to_anthropic_lane(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_ROUTED) and flow.response is not None:
            flow.response.stream = True  # the pipeline's answer goes on as it arrives

    def _to_anthropic_lane(self, flow: http.HTTPFlow) -> None:
        """Send a chosen flow that is not a model call (Claude Code's settings calls, …) to the
        anthropic lane's upstream, path and headers unchanged (a no-op with the default lane)."""
        base = urlsplit(self.settings.anthropic_base_url)
        if (base.scheme, base.hostname, base.port or 443) == (
            flow.request.scheme,
            flow.request.host,
            flow.request.port,
        ):
            return
        flow.request.url = self.settings.anthropic_base_url + flow.request.path
        flow.request.host_header = base.netloc
