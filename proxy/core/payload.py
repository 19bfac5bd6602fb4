"""The checks every model request's body passes, and its fast readings: pure, no I/O.

A body must be a JSON object with a non-empty string `model`. Routing needs only `model` and
`stream`, so `route_fields()` reads just those while checking the whole body is JSON that
json.loads reads the same way; a body that is rewritten or written to disk is read exactly
(`exact_reading`). Every reading agrees with json.loads, whose results and errors decide the odd
cases (see docs/performance.md for what each reader costs).
"""

from __future__ import annotations

import codecs
import json

from proxy.core.errors import BadRequest, UnsupportedMediaType
from proxy.core.record import UsageRecord, clip
from proxy.core.sse import exact_loads

try:  # a large Claude Code body is read often: orjson gives json's result faster; json decides the odd cases
    import orjson
except ImportError:  # pragma: no cover - a dependency; the stdlib path stays correct without it
    orjson = None  # type: ignore[assignment]  # (an optional module: None when missing)
try:  # the anthropic SDK's JSON parser (a dependency of it): faster still than orjson,
    # read exactly as json.loads reads it (integers of any size, NaN, the last of duplicate keys);
    # what it refuses (nesting past 200 levels, lone surrogates, a BOM) goes on to orjson and json
    import jiter

    jiter.from_json(b"{}", cache_mode="none")  # (a jiter too old for the options used here: none)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - orjson/json: the same payload
    jiter = None  # type: ignore[assignment]  # (an optional module: None when missing)

try:  # reads what routing needs (model, stream) while checking the whole body is JSON, skipping the
    # rest without building it, which costs a fraction of building it (docs/performance.md)
    import msgspec

    class _Route(msgspec.Struct):
        model: str
        stream: object = None

    _ROUTE = msgspec.json.Decoder(_Route)
except ImportError:  # pragma: no cover - a dependency; the full reading below routes without it
    msgspec = _ROUTE = None  # type: ignore[assignment]  # (optional: None when missing)

_utf8_decode = codecs.utf_8_decode


def check_payload(body: bytes, content_type: str, rec: UsageRecord) -> tuple[dict, bool]:
    """The checks every model request's body passes, in the shim and in `ccp mitm`: a JSON object
    with a non-empty `model`. Returns the payload and whether it is json.loads' own whole reading
    (what a rewrite needs; when not, the payload may hold only `model` and `stream`: read it again
    with `exact_reading`); raises the ShimError the client is answered with."""
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"content-type must be application/json, got {clip(content_type) or 'none'}"
        )
    rec["bytes_in"] = len(body)
    payload: object  # a dict once checked
    payload, exact = (
        route_fields(body),
        False,
    )  # valid JSON, a string model: only what routing needs
    if payload is None:  # anything else: the full reading decides, with its errors
        try:
            payload, exact = _read_json(body)
        except ValueError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # hundreds of nested arrays: no real request looks like that
            raise BadRequest("request body is nested too deeply") from exc
        if not isinstance(payload, dict):
            raise BadRequest("request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: field required (a non-empty string)")
    return payload, exact


# msgspec counts nesting against the interpreter's recursion limit as json does, from 4 levels less
# deep a call (json.loads reaches its C scanner through three Python frames): asked through this
# many more frames, it gives up on a body at least a level before json would, and json decides.
_ROUTE_EXTRA_FRAMES = 6


def route_fields(body: bytes) -> dict | None:
    """`{"model": …, "stream": …}` when the body is a JSON object that json.loads reads too, with a
    string `model`; None for anything else (then the full reading below decides, with its errors).

    Only what msgspec and json.loads both accept gets through: the UTF-8 is checked here (msgspec
    skips over the strings it does not keep unchecked); NaN, a BOM, lone surrogates and UTF-16 are
    msgspec's to refuse and json's to decide; duplicate keys are read last-wins by both."""
    if _ROUTE is None or not is_utf8(body):
        return None
    try:
        route = _deeper(_ROUTE.decode, body, _ROUTE_EXTRA_FRAMES)
    except (msgspec.MsgspecError, RecursionError):
        return None
    return {"model": route.model, "stream": route.stream}


# is_utf8() looks at a body this many bytes at a time: an ASCII piece needs no decoding, and no
# string twice the body's size is built
UTF8_PIECE = 4096


def is_utf8(body: bytes) -> bool:
    """Whether `body` is valid UTF-8 (what json.loads requires of bytes it reads as UTF-8).

    Piece by piece: an ASCII piece (most of any request) needs no decoding; the others are decoded
    alone, a sequence cut at a piece's end carried over to the next. Decoding the whole body instead
    builds a string up to twice its size (a single CJK character makes every one two bytes)."""
    if body.isascii():
        return True
    piece_size = UTF8_PIECE
    carried = b""
    try:
        for start in range(0, len(body), piece_size):
            piece = body[start : start + piece_size]
            if carried:
                piece = carried + piece
            elif piece.isascii():
                continue
            _, used = _utf8_decode(piece, "strict", False)
            carried = piece[used:]  # at most 3 bytes: the start of a sequence the next piece ends
    except UnicodeDecodeError:
        return False
    return not carried  # a sequence the body's end cut short


def _deeper(fn, arg, frames: int):
    return fn(arg) if frames == 0 else _deeper(fn, arg, frames - 1)


# json.loads refuses nesting deeper than the interpreter's recursion limit allows (~950 here) with
# a 400, orjson only past 1024 levels. orjson reads the body only when it cannot nest deeper than
# this; anything deeper is json's to decide, as before orjson.
ORJSON_MAX_DEPTH = 899
ORJSON_MAX_BRACKETS = ORJSON_MAX_DEPTH + 1  # (its former name: fewer brackets cannot nest deeper)
_ORJSON_DEPTH_LIMIT = 1024
# Counting brackets costs time in proportion to the body, the padded read below a flat amount: the
# padded read pays for large bodies (a Claude Code body is 50–125 KB, often with thousands of
# brackets); the crossover is measured in docs/performance.md.
_PAD_FROM_BYTES = 16 * 1024
_PAD = _ORJSON_DEPTH_LIMIT - ORJSON_MAX_DEPTH
_OPEN, _CLOSE = b"[" * _PAD, b"]" * _PAD


def _loads(body: bytes):
    """The body for routing (see `_read_json`)."""
    return _read_json(body)[0]


def _read_json(body: bytes) -> tuple[object, bool]:
    """`(value, exact)`: the body read by jiter (exact: json.loads' own reading), else by orjson
    (not exact: integers past 64 bits become floats), else by json.loads (exact), which also
    decides everything the others refuse, so results, errors and messages stay the stdlib's.
    Wherever the payload is written or rewritten, exchange() wants an exact one."""
    if jiter is not None:
        try:
            return jiter.from_json(body, cache_mode="none"), True
        except ValueError:
            pass
    if orjson is not None:
        value = _orjson_loads(body)
        if value is not _REFUSED:
            return value, False
    return json.loads(body), True


_REFUSED = object()


def _orjson_loads(body: bytes):
    """orjson's reading of `body`, or `_REFUSED` (then json decides).

    The depth check: a small body has too few brackets to nest that deep (counted); a large one is
    read inside `_PAD` more lists, which orjson refuses exactly when the body itself nests deeper
    than `ORJSON_MAX_DEPTH`. Every padding list must then hold exactly one element, or the body was
    not one JSON value (e.g. `1],[2`) and json decides."""
    if len(body) < _PAD_FROM_BYTES:
        if (
            len(body) <= 2 * ORJSON_MAX_DEPTH
            or body.count(b"[") + body.count(b"{") < ORJSON_MAX_BRACKETS
        ):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        return _REFUSED
    try:
        value = orjson.loads(b"".join((_OPEN, body, _CLOSE)))
    except orjson.JSONDecodeError:
        return _REFUSED
    for _ in range(_PAD):
        if len(value) != 1:
            return _REFUSED
        value = value[0]
    return value


def exact_reading(body: bytes, payload: dict) -> dict:
    """The payload exactly as json.loads reads it (the shim's behaviour before orjson)."""
    fast = orjson is not None or jiter is not None or _ROUTE is not None
    return exact_loads(body) if fast else payload  # (without them, payload is json.loads' own)
