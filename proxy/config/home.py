"""Where ccp keeps its state: one folder, found the same way from any working directory.

The home holds every profile's run files (`ccp.pid`, `ccp.port`, `ccp-serve.log`), usage logs, the
SQLite store, `results/` and the repo config files (`configs/…`); a home named by `CCP_HOME` also
holds the user config (`<home>/config`: licence pack, model file, quotas) that otherwise lives in
`~/.config/ccp` (`CCP_CONFIG_HOME` names another). It is, first match wins:

| source          | home                                                                  |
|-----------------|-----------------------------------------------------------------------|
| `CCP_HOME`      | that folder (`~` expanded; a relative path is taken from the cwd once) |
| a checkout      | the project root, when the running `proxy` package lives in a checkout |
| otherwise       | `$XDG_STATE_HOME/ccp`, else `~/.local/state/ccp`                       |

"A checkout" is decided by where the code is, not by the shell's folder: `ccp up` in the repo and
`ccp down` in `/tmp` therefore find the same pid file. Paths that the environment gives relative
(`CCP_LOGS_DIR=logs/x`) are taken relative to the home for the same reason. Pure apart from reading
the file system once for the checkout test; `Settings` calls it with its environment mapping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # proxy/ (this file is proxy/config/home.py)
# a checkout has these beside the package; an installed wheel has none of them
_CHECKOUT_MARKERS = ("pyproject.toml", "Makefile", "harness")


def checkout_root(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The project root when the `proxy` package sits in a ccp checkout, else None."""
    root = package_dir.parent
    if not all((root / marker).exists() for marker in _CHECKOUT_MARKERS):
        return None
    try:
        head = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "ccp"' in head else None


def state_home(env: Mapping[str, str]) -> Path:
    """The XDG state folder for ccp (used outside a checkout)."""
    xdg = env.get("XDG_STATE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "ccp"
    home = env.get("HOME", "").strip() or str(Path.home())
    return Path(home) / ".local" / "state" / "ccp"


def resolve_home(env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """(home folder, where it came from: "CCP_HOME", "checkout" or "xdg")."""
    env = os.environ if env is None else env
    named = env.get("CCP_HOME", "").strip()
    if named:
        return Path(named).expanduser().resolve(), "CCP_HOME"
    root = checkout_root()
    if root is not None:
        return root, "checkout"
    return state_home(env), "xdg"


def under(home: Path, path: str | os.PathLike) -> str:
    """`path` as an absolute path string; a relative one is taken from `home`."""
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else home / p)
