"""Body tee (`ENABLE_BODY_TEE=1`): a redacted, trimmed sample of each request and answer body.

For diagnosing what clients really send: `logs/tee/<rid>.json` holds the request body with every
secret masked and long strings cut to `MAX_STRING` characters, and the head of the answer. Off by
default; never contains a configured secret.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from proxy.core.jsontext import dumps
from proxy.core.redact import redact, redact_text
from proxy.sinks.health import write_whole

TEE_DIR = "tee"
MAX_STRING = 2000
MAX_ANSWER = 4096


def trim(obj: Any, limit: int = MAX_STRING) -> Any:
    if isinstance(obj, str):
        return obj if len(obj) <= limit else obj[:limit] + f"…[{len(obj) - limit} more chars]"
    if isinstance(obj, dict):
        return {k: trim(v, limit) for k, v in obj.items()}
    if isinstance(obj, list):
        return [trim(v, limit) for v in obj]
    return obj


def write_tee(
    logs_dir: str | os.PathLike, rid: str, request: Any, answer_head: bytes, secrets: Iterable[str]
) -> Path:
    secrets = list(secrets)
    folder = Path(logs_dir) / TEE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{rid}.json"
    sample = {
        "rid": rid,
        "request": trim(redact(request, secrets)),
        "answer_head": redact_text(answer_head[:MAX_ANSWER].decode("utf-8", "replace"), secrets),
    }
    # whole or not at all: a full disk never leaves half a sample under its name (lone surrogates
    # escaped)
    return write_whole(path, dumps(sample, indent=1))
