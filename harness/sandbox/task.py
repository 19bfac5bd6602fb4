"""Sandbox task files (`tasks/*.yaml`): what to run in the sandbox and what must come out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Task:
    name: str
    model: str
    commands: tuple[str, ...]
    artifact: str
    expect: str
    image: str = "opensandbox/code-interpreter:v1.0.1"
    entrypoint: str = "/opt/opensandbox/code-interpreter.sh"
    timeouts: dict = field(default_factory=lambda: {"create": 300.0, "command": 120.0})


def parse_task(data: object, source: str = "task") -> Task:
    """A Task from parsed YAML; ValueError naming the file and the key."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping at the top level")
    for key in ("name", "model", "artifact", "expect"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ValueError(f"{source}: {key}: a non-empty string is required (value: {data.get(key)!r})")
    commands = data.get("commands")
    if not isinstance(commands, list) or not commands or not all(isinstance(c, str) for c in commands):
        raise ValueError(f"{source}: commands: a non-empty list of strings is required")
    timeouts = {"create": 300.0, "command": 120.0}
    for key, value in (data.get("timeouts") or {}).items():
        if key not in timeouts or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{source}: timeouts.{key}: expected create/command seconds > 0 (value: {value!r})")
        timeouts[key] = float(value)
    extra = {k: data[k] for k in ("image", "entrypoint") if isinstance(data.get(k), str)}
    return Task(name=data["name"].strip(), model=data["model"].strip(), commands=tuple(commands),
                artifact=data["artifact"].strip(), expect=data["expect"], timeouts=timeouts, **extra)


def load_task(path: str | Path) -> Task:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    return parse_task(data, str(path))
