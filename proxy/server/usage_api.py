"""Usage and quota endpoints, and the lifecycle of the store and quota book inside the app.

- `GET  /v1/usage`            per quota: rolling %, weekly %, warn/block, tokens/s, ETA to reset,
                              the configured and the auto-calibrated warn threshold; the store status
- `GET  /v1/quotas`           the active quota config, its source file and the reroute mode
- `POST /v1/quotas/reload`    re-read the quotas file (or `{"file": PATH}`); an invalid file → 400 and
                              the old config stays (admin token when configured). The book is rebuilt
                              from the store by `restore_quotas()`, the function start-up calls, so a
                              reload leaves it exactly as a restart with that file would
- `GET  /v1/usage/summary`    the fuel gauge (proxy.sinks.usage_summary): tokens, requests and errors per
                              lane × model over the rolling window and the week, from the store
- `GET  /v1/usage/samples`    `?since=<epoch|ISO|-1h>&model=&limit=` stored usage samples
- `GET  /v1/usage/rollups`    `?granularity=hour|day&since=&model=`
- `POST /v1/dev/sim-usage`    `{"model", "tokens" | "pct", "lane"?, "status"?, "ago"?}` adds synthetic
                              usage to the book and the store (never to the JSONL log); only with
                              `CCP_DEV_ENABLE=1`, otherwise the route does not exist (404)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import weakref
from datetime import datetime
from pathlib import Path

from aiohttp import web

from proxy.config.home import under
from proxy.config.quotas import QuotaConfig, QuotaError, book_span, load_quotas, quotas_from_text
from proxy.config.settings import DEFAULT_QUOTAS_FILE, QUOTAS_FILE
from proxy.core.errors import BadRequest, Forbidden, NotFound, ShimError
from proxy.core.parse import ConfigError, parse_duration
from proxy.core.record import UsageRecord, clip, new_record, utc_timestamp
from proxy.pipeline.state import RID_HEADER, ShimState
from proxy.server.auth import require_admin
from proxy.server.errors import mapped
from proxy.sinks.store import rollup_loop
from proxy.sinks.usage_summary import usage_summary, windows_for

log = logging.getLogger("ccp.usage")
USAGE_STATE = web.AppKey("usage_state", ShimState)
_sim_ids = itertools.count(1)
FLUSH_SECONDS = 5.0  # a rebuild waits this long for the records already queued to reach the store
# one rebuild at a time per shim: two reloads in a row end with the later file
_REBUILD_LOCKS: weakref.WeakKeyDictionary[ShimState, asyncio.Lock] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------- lifecycle (called from _resources)
async def start_usage(state: ShimState) -> asyncio.Task | None:
    """Open the store, rebuild the quota book from it, start the rollup task."""
    store = await asyncio.to_thread(state.open_store)
    await restore_quotas(state, state.quotas.config)
    if store is None:
        return None
    loops = [rollup_loop(store, state.settings.rollup_interval)]
    if store.engine.name == "postgresql" and state.settings.quota_sync > 0:
        loops.append(quota_sync_loop(state, state.settings.quota_sync))
    if state.sessions.shared is not None and state.settings.fleet_sync > 0:
        loops.append(fleet_sync_loop(state, state.settings.fleet_sync))
    elif store.degraded is not None:  # a SQLite file that could not open: nothing to refresh
        for coro in loops:
            coro.close()
        return None
    return asyncio.create_task(_together(*loops), name="ccp-rollups")


async def _together(*coros) -> None:
    await asyncio.gather(*coros)


async def quota_sync_loop(state: ShimState, interval: float) -> None:
    """A shared (PostgreSQL) store: rebuild the quota book from it every `interval` seconds, so
    the records every shim wrote count against this shim's quotas (what start-up and a reload do,
    `restore_quotas`; the records this shim answered meanwhile are kept, by rid)."""
    while True:
        await asyncio.sleep(interval)
        store = state.store
        if store is None or store.degraded is not None or book_span(state.quotas.config) is None:
            continue
        try:
            await restore_quotas(state, state.quotas.config, quiet=True)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning("quota sync from %s failed: %s", store.where, exc)


async def fleet_sync_loop(state: ShimState, interval: float) -> None:
    """A fleet: every `interval` seconds, write this shim's new 429 cooldowns and read everyone's
    (they block here as this shim's own), and forget the sessions that ended on any shim. So a
    session ended anywhere is refused here at most `interval` plus one query later, and a real 429
    anywhere blocks its quota here as soon."""
    while True:
        await asyncio.sleep(interval)
        await fleet_sync(state)


async def fleet_sync(state: ShimState) -> None:
    """One round of fleet_sync_loop (errors logged: the next round tries again)."""
    fleet = state.sessions.shared
    if fleet is None:
        return
    shares = state.quotas.take_shares()
    try:
        rows = await asyncio.to_thread(fleet.sync_cooldowns, shares, time.time())
    except Exception as exc:  # noqa: BLE001
        state.quotas.give_back(shares)
        log.warning("cooldown sync failed: %s: %s", type(exc).__name__, exc)
    else:
        state.quotas.apply_shared(rows)
    await feed_quotas(state, fleet)
    try:
        ended = await state.sessions.sync()
    except Exception as exc:  # noqa: BLE001
        log.warning("session sync failed: %s: %s", type(exc).__name__, exc)
    else:
        if ended:
            log.info("session(s) ended on the fleet: %s", ", ".join(ended))


async def feed_quotas(state: ShimState, fleet) -> int:
    """Count the records the other shims wrote since the last feed (or full sync) in this shim's
    book, so a budget the fleet fills blocks here within CCP_FLEET_SYNC, not CCP_QUOTA_SYNC. Under
    the rebuild lock: a feed never overlaps a full sync (which would count its rows twice)."""
    span = book_span(state.quotas.config)
    store = state.store
    if span is None or store is None or store.degraded is not None:
        return 0
    async with _REBUILD_LOCKS.setdefault(state, asyncio.Lock()):
        try:
            rows = await asyncio.to_thread(fleet.feed, time.time() - span)
        except Exception as exc:  # noqa: BLE001
            log.warning("quota feed failed: %s: %s", type(exc).__name__, exc)
            return 0
        for rec in rows:
            state.quotas.account(rec)
    return len(rows)


async def restore_quotas(state: ShimState, config: QuotaConfig, quiet: bool = False) -> int | None:
    """Make `config` the book's and rebuild every account from the store's records of its span:
    what start-up does, and what `POST /v1/quotas/reload` does (one path, so a reload is a restart).

    Records that come in meanwhile are kept by the book and added unless the store read them. With
    no usable store there is nothing to rebuild from: quotas that stay keep their history in memory.
    Returns how many records counted (None: not rebuilt from the store)."""
    lock = _REBUILD_LOCKS.setdefault(state, asyncio.Lock())
    async with lock:
        book, store, span = state.quotas, state.store, book_span(config)
        if store is None or store.degraded is not None or span is None:
            book.reload(config)
            return None if span is not None else 0
        book.begin_rebuild()
        try:
            await asyncio.to_thread(store.flush, FLUSH_SECONDS)
            recs = await asyncio.to_thread(store.quota_records, time.time() - span)
        except Exception as exc:  # noqa: BLE001 - a store we cannot read: what memory holds
            log.warning("could not restore quotas from %s: %s", store.where, exc)
            book.reload(config)
            return None
        except BaseException:  # cancelled (the shim stops): the old book stays as it is
            book.cancel_rebuild()
            raise
        counted = book.rebuild(config, recs)
        if state.sessions.shared is not None:  # a fleet: its quota feed goes on from here
            state.sessions.shared.saw(recs)
        (log.debug if quiet else log.info)(
            "quotas restored from %s: %d record(s)", store.where, counted
        )
        return counted


async def stop_usage(state: ShimState, task: asyncio.Task | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await state.sessions.close()
    store = state.store
    if store is not None:
        await asyncio.to_thread(store.close, 10.0, time.time())


# ---------------------------------------------------------------- helpers
def parse_since(raw: str | None, now: float) -> float | None:
    """`since` as epoch seconds: an epoch, an ISO time, or `-1h` / `-30m` / `-7d` before now."""
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if raw.startswith("-"):  # a span before now, in the one duration syntax (proxy.core.parse)
        try:
            return now - parse_duration("since", raw[1:])
        except ConfigError:
            raise BadRequest(
                f"since={raw!r}: expected epoch seconds, an ISO time or -1h/-30m/-7d"
            ) from None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadRequest(
            f"since={raw!r}: expected epoch seconds, an ISO time or -1h/-30m/-7d"
        ) from None


def _json(state: ShimState, data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={RID_HEADER: state.new_rid()})


async def _body(request: web.Request) -> dict:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def usage_report(state: ShimState, now: float) -> dict:
    """The body of GET /v1/usage (also what `ccp usage` computes offline)."""
    models = {}
    for pattern, st in state.quotas.states(now).items():
        models[pattern] = st.public()
        for window, pct in (("rolling", st.rolling_pct), ("weekly", st.weekly_pct)):
            if pct is not None:
                state.metrics.quota_pct.labels(pattern, window).set(pct)
        state.metrics.quota_blocked.labels(pattern).set(1 if st.block else 0)
    return {
        "now": now,
        "ts": utc_timestamp(now),
        "mode": state.settings.reroute_mode,
        "source": state.quotas.config.source,
        "instance": state.settings.instance or None,  # a fleet: `models.*.instances` are shares
        "models": models,
    }


# ---------------------------------------------------------------- handlers
async def get_usage(request: web.Request) -> web.Response:
    state = request.app[USAGE_STATE]
    report = usage_report(state, time.time())
    store = state.store
    report["store"] = (await asyncio.to_thread(_store_status, store)) if store else None
    return _json(state, report)


def _store_status(store) -> dict:
    try:
        return store.status()
    except Exception as exc:  # noqa: BLE001 - a status is never worth a 500
        return {
            "path": str(store.path),
            "degraded": store.degraded,
            "error": str(exc),
            "written": store.written,
            "write_errors": store.errors,
        }


async def get_quotas(request: web.Request) -> web.Response:
    state = request.app[USAGE_STATE]
    return _json(state, {**state.quotas.config.public(), "mode": state.settings.reroute_mode})


async def reload_quotas(request: web.Request) -> web.Response:
    state = request.app[USAGE_STATE]
    require_admin(request)
    data = await _body(request)
    path = data.get("file") or state.quotas.config.source or state.settings.quotas_file
    text = data.get("text")
    if (
        text is not None
    ):  # the file's text, read by `ccp quotas reload FILE` on the operator's side:
        # the shim reads no file for it (`file` only names it)
        if not isinstance(text, str) or not isinstance(path or "", str):
            raise BadRequest('"text" must be the quotas file\'s text and "file" its name')
        try:
            config = quotas_from_text(text, path or "(sent)", state.settings.catalog.providers)
        except QuotaError as exc:
            raise BadRequest(f"quotas not reloaded, the old config stays: {exc}") from exc
        counted = await restore_quotas(state, config)
        log.info(
            "quotas reloaded from %s, as sent (%d quota(s))", clip(path or "-"), len(config.quotas)
        )
        return _json(state, {"reloaded": True, **config.public(), "restored_records": counted})
    if not path or not isinstance(path, str):
        raise BadRequest('no quotas file: set CCP_QUOTAS_FILE or send {"file": PATH}')
    if _resolved(path) not in quota_files(state):
        raise Forbidden(
            f"{clip(path)!r} is not a quotas file of this shim; it reads only CCP_QUOTAS_FILE, "
            f"<config home>/{QUOTAS_FILE}, the home's {DEFAULT_QUOTAS_FILE} and the file in use"
        )
    try:
        config = await asyncio.to_thread(load_quotas, path, state.settings.catalog.providers)
    except QuotaError as exc:
        raise BadRequest(f"quotas not reloaded, the old config stays: {exc}") from exc
    counted = await restore_quotas(state, config)
    log.info("quotas reloaded from %s (%d quota(s))", path, len(config.quotas))
    return _json(state, {"reloaded": True, **config.public(), "restored_records": counted})


def _resolved(path: str | Path) -> Path | None:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in the name
        return None


def quota_files(state: ShimState) -> set[Path]:
    """The only files `POST /v1/quotas/reload` reads: the ones the shim's configuration names
    (the client chooses among them, never any other file of the machine)."""
    s = state.base_settings
    names: list[str | None] = [s.quotas_file, state.quotas.config.source]
    if s.config_home:
        names.append(str(Path(s.config_home) / QUOTAS_FILE))
    if s.home:
        names.append(under(Path(s.home), DEFAULT_QUOTAS_FILE))
    return {p for p in (_resolved(n) for n in names if n) if p is not None}


def _store_or_404(state: ShimState):
    if state.store is None:
        raise NotFound("the usage store is off (CCP_PERSIST=0)")
    return state.store


async def get_samples(request: web.Request) -> web.Response:
    state = request.app[USAGE_STATE]
    q = request.query
    try:
        store = _store_or_404(state)
        since = parse_since(q.get("since"), time.time())
        try:
            limit = max(1, min(10000, int(q.get("limit", "1000"))))
        except ValueError:
            raise BadRequest(f"limit={q.get('limit')!r}: expected a whole number") from None
        await asyncio.to_thread(store.flush, 2.0)  # read what this shim already answered
        rows = await asyncio.to_thread(store.samples, since, q.get("model") or None, limit)
    except ShimError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a degraded store: say so, no traceback
        raise ShimError(f"usage store unavailable: {type(exc).__name__}: {exc}") from exc
    return _json(state, {"since": since, "count": len(rows), "samples": rows})


async def get_rollups(request: web.Request) -> web.Response:
    state = request.app[USAGE_STATE]
    q = request.query
    granularity = q.get("granularity", "hour")
    try:
        store = _store_or_404(state)
        if granularity not in ("hour", "day"):
            raise BadRequest(f"granularity={granularity!r}: expected hour or day")
        since = parse_since(q.get("since"), time.time())
        await asyncio.to_thread(store.flush, 2.0)
        rows = await asyncio.to_thread(store.rollups, granularity, since, q.get("model") or None)
    except ShimError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ShimError(f"usage store unavailable: {type(exc).__name__}: {exc}") from exc
    return _json(state, {"granularity": granularity, "since": since, "rollups": rows})


async def get_summary(request: web.Request) -> web.Response:
    state = request.app[USAGE_STATE]
    try:
        store = _store_or_404(state)
        await asyncio.to_thread(store.flush, 2.0)
        windows = windows_for(state.quotas.config)
        summary = await asyncio.to_thread(store.read, usage_summary, time.time(), windows)
    except ShimError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ShimError(f"usage store unavailable: {type(exc).__name__}: {exc}") from exc
    return _json(state, summary)


def sim_record(data: dict, state: ShimState, now: float) -> UsageRecord:
    """A synthetic usage record from a sim-usage body (BadRequest names the bad field)."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: expected a model id, e.g. claude-haiku-4-5")
    quota = state.quotas.config.match(model)
    tokens = data.get("tokens")
    if "pct" in data:
        pct = data["pct"]
        limit = (quota.rolling_tokens or quota.weekly_tokens) if quota is not None else None
        if not limit:
            raise BadRequest(f"pct: no quota covers {model!r}; send tokens instead")
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or pct < 0:
            raise BadRequest(f"pct={pct!r}: expected a number ≥ 0")
        tokens = int(round(limit * pct / 100.0))
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise BadRequest(f"tokens={tokens!r}: expected a whole number ≥ 0 (or send pct)")
    ago = data.get("ago", 0)
    if isinstance(ago, bool) or not isinstance(ago, (int, float)) or ago < 0:
        raise BadRequest(f"ago={ago!r}: expected seconds ≥ 0")
    status = data.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int):
        raise BadRequest(f"status={status!r}: expected an HTTP status")
    lane = data.get("lane") or (quota.lane if quota and quota.lane else "zai")
    rec = new_record(f"sim-{state.new_rid()}-{next(_sim_ids)}", "/v1/dev/sim-usage")
    rec["ts"] = utc_timestamp(now - ago)
    rec["model"] = model
    rec["upstream_model"] = model
    rec["lane"] = lane
    rec["provider"] = lane
    rec["decision"] = "sim_usage"
    rec["op"] = "nonstream"
    rec["status"] = status
    rec["upstream_status"] = status
    rec["in_tokens"] = tokens
    rec["out_tokens"] = 0
    rec["err_type"] = "upstream_4xx" if status >= 400 else None
    return rec


async def sim_usage(request: web.Request) -> web.Response:
    state = request.app[USAGE_STATE]
    now = time.time()
    require_admin(request)
    rec = sim_record(await _body(request), state, now)
    state.quotas.account(rec)
    if state.store is not None:
        state.store.write(rec, source="sim")
    st = state.quotas.state(rec["model"], now)
    return _json(
        state,
        {
            "recorded": {k: rec[k] for k in ("rid", "ts", "model", "lane", "status", "in_tokens")},
            "state": st.public() if st else None,
        },
        status=201,
    )


def add_usage_routes(app: web.Application, state: ShimState) -> None:
    """Mount the usage/quota endpoints (before the catch-all 404 route)."""
    app[USAGE_STATE] = state
    app.router.add_get("/v1/usage", mapped(get_usage))
    app.router.add_get("/v1/quotas", mapped(get_quotas))
    app.router.add_post("/v1/quotas/reload", mapped(reload_quotas))
    app.router.add_get("/v1/usage/samples", mapped(get_samples))
    app.router.add_get("/v1/usage/rollups", mapped(get_rollups))
    app.router.add_get("/v1/usage/summary", mapped(get_summary))
    if state.settings.dev_enable:
        app.router.add_post("/v1/dev/sim-usage", mapped(sim_usage))
