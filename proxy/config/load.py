"""The runtime-loading edge: the settings the shim and every verb run with.

`Settings.from_env()` reads the environment and nothing else. `load_settings()` is the one place
that then reads what the environment names: it resolves the ccp home, checks that the files named
exist, reads the manual model override file, verifies the licence (once, at start), loads the
provider catalog and the quotas file. A bad file fails here, at start, with a message naming it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path

from proxy.config.catalog import load_catalog
from proxy.config.home import resolve_home, under
from proxy.config.quotas import QuotaConfig, QuotaError, load_quotas
from proxy.config.settings import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_PROVIDERS_FILE,
    DEFAULT_QUOTAS_FILE,
    MODEL_FILE,
    QUOTAS_FILE,
    Settings,
)
from proxy.core.parse import ConfigError
from proxy.licence import verify as lic


def load_settings(env: Mapping[str, str] | None = None, now: float | None = None) -> Settings:
    """Settings from `env` (default: the process environment) with every file it names read;
    `now` dates the licence."""
    env = os.environ if env is None else env
    home, home_source = resolve_home(env)
    settings = Settings.from_env(env, home=home, home_source=home_source)
    changes: dict = {}
    for attr, keys in (
        ("ca_bundle", ("CCP_CA_BUNDLE", "SSL_CERT_FILE")),
        ("policy_pubkey", ("CCP_POLICY_PUBKEY",)),
    ):
        if getattr(settings, attr):
            key = next((k for k in keys if env.get(k, "").strip()), keys[0])
            existing_file(key, env.get(key, getattr(settings, attr)), FILE_HINTS.get(attr, ""))
    changes.update(_config_files(settings, home))
    if settings.model_override is None and settings.config_home:
        changes.update(_model_file(Path(settings.config_home) / MODEL_FILE))
    changes.update(_licence(env, settings.config_home, time.time() if now is None else now))
    settings = dataclasses.replace(settings, **changes)
    catalog = load_catalog(settings, env)
    if settings.fallback_lane and catalog.provider(settings.fallback_lane) is None:
        raise ConfigError(
            f"CCP_FALLBACK_LANE={settings.fallback_lane!r}: no such provider "
            f"(known: {', '.join(sorted(catalog.providers))})"
        )
    quotas_file = _quotas_file(env, settings.config_home, home)
    quotas = QuotaConfig()  # (no file: what Settings itself starts with)
    if quotas_file:
        try:
            quotas = load_quotas(quotas_file, catalog.providers)
        except QuotaError as exc:
            raise ConfigError(f"CCP_QUOTAS_FILE: {exc}") from None
    return dataclasses.replace(settings, catalog=catalog, quotas_file=quotas_file, quotas=quotas)


FILE_HINTS = {"policy_pubkey": " (expected a file with a base64 public key)"}


def existing_file(key: str, raw: str, hint: str = "") -> str:
    """A path that must name a file (a CA bundle, a public key); ConfigError names the key."""
    path = raw.strip()
    if not Path(path).is_file():
        raise ConfigError(f"{key}={raw!r}: file not found{hint}")
    return path


def with_licence_pack(settings: Settings, pack_file: str, now: float) -> Settings:
    """`settings` with the licence from `pack_file` (``ccp serve --license-pack``)."""
    state = lic.load_state(pack_file, "", None, None, settings.trusted_licence_keys(), now)
    return dataclasses.replace(settings, licence=state)


def quotas_file_candidates(
    env: Mapping[str, str], config_home: str, home: Path | None = None
) -> list[tuple[str, str]]:
    """Where a quotas file may be, highest precedence first: (origin, path)."""
    out = []
    if env.get("CCP_QUOTAS_FILE", "").strip():
        out.append(("CCP_QUOTAS_FILE", env["CCP_QUOTAS_FILE"].strip()))
    if config_home:
        out.append(("user", str(Path(config_home) / QUOTAS_FILE)))
    home = resolve_home(env)[0] if home is None else home
    out.append(("repo", under(home, DEFAULT_QUOTAS_FILE)))
    return out


def _quotas_file(env: Mapping[str, str], config_home: str, home: Path) -> str | None:
    """CCP_QUOTAS_FILE (must exist), else the user file, else the repo file, else None."""
    for origin, path in quotas_file_candidates(env, config_home, home):
        if Path(path).is_file():
            return path
        if origin == "CCP_QUOTAS_FILE":
            raise ConfigError(f"CCP_QUOTAS_FILE={path!r}: file not found")
    return None


def _config_files(settings: Settings, home: Path) -> dict:
    """The routes and providers files: one the environment names must exist (it is taken from the
    working directory); a repo default is taken from `home` when it exists."""
    kw: dict = {}
    for attr, key, default in (
        ("config_file", "CCP_CONFIG", DEFAULT_CONFIG_FILE),
        ("providers_file", "CCP_PROVIDERS_FILE", DEFAULT_PROVIDERS_FILE),
    ):
        named = getattr(settings, attr)
        if named and not Path(named).is_file():
            raise ConfigError(f"{key}={named!r}: file not found")
        repo = under(home, default) if default else None
        kw[attr] = (
            str(Path(named).resolve()) if named else repo if repo and Path(repo).is_file() else None
        )
    return kw


def _model_file(path: Path) -> dict:
    """The persisted manual override (`ccp model NAME`): the file's first non-empty line."""
    try:
        line = next(
            (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()), ""
        )
    except (OSError, UnicodeDecodeError):
        line = ""  # no model file: no override
    return {"model_override": line, "model_override_source": str(path)} if line else {}


def _licence(env: Mapping[str, str], config_home: str, now: float) -> dict:
    """Trusted licence keys and the licence in force (verified once, here, at start)."""
    spec = env.get("CCP_LICENSE_PUBKEY_B64", "")
    try:
        trusted = lic.parse_trusted_keys(spec)
    except ValueError as exc:  # the message names the kid, never the key material
        raise ConfigError(f"CCP_LICENSE_PUBKEY_B64: {exc}") from None
    keys = tuple((kid, lic.public_key_b64(key)) for kid, key in trusted.items())
    state = lic.load_state(
        env.get("CC_LICENSE_PACK", "").strip() or None,
        config_home,
        env.get("CC_LICENSE_JSON", "").strip() or None,
        env.get("CC_LICENSE_SIG", "").strip() or None,
        trusted,
        now,
    )
    return {"licence_keys": keys, "licence": state}
