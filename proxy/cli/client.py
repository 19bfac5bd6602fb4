"""How a verb finds and calls the running shim: its URL (the profile's port file) and the admin
credential every admin call carries (CCP_ADMIN_TOKEN)."""

from __future__ import annotations

from pathlib import Path

from proxy.cli.control import LOCALHOST, current_port
from proxy.config.profiles import RunFiles
from proxy.config.settings import Settings


def shim_url(settings: Settings, url: str | None = None) -> str:
    if url:
        return url.rstrip("/")
    return f"http://{LOCALHOST}:{current_port(settings, RunFiles(Path(settings.logs_dir)))}"


def admin_headers(settings: Settings) -> dict:
    token = settings.admin_token.reveal()
    return {"authorization": f"Bearer {token}"} if token else {}
