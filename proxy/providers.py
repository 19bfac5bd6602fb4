"""The providers the shim can route to, as one merged view with the source of each entry.

For now the view holds the two built-in lanes; the provider catalog (repo and user files) adds its
entries here, each with its source. Only the NAME of a credential's variable is shown, and whether it
is set — never its value.
"""
from __future__ import annotations

import argparse
import json

from proxy.routing import LANE_ANTHROPIC, LANE_ZAI
from proxy.settings import Settings


def providers_view(settings: Settings) -> list[dict]:
    anth_env = ("ANTHROPIC_AUTH_TOKEN" if settings.anthropic_auth_token else
                "ANTHROPIC_API_KEY" if settings.anthropic_api_key else "ANTHROPIC_AUTH_TOKEN")
    return [
        {"name": LANE_ANTHROPIC, "protocol": "anthropic", "base_url": settings.anthropic_base_url,
         "credential_env": anth_env,
         "credential_set": bool(settings.anthropic_auth_token or settings.anthropic_api_key),
         "header_mode": None, "source": "built-in"},
        {"name": LANE_ZAI, "protocol": "anthropic", "base_url": settings.zai_base_url,
         "credential_env": "ZAI_API_KEY", "credential_set": bool(settings.zai_api_key),
         "header_mode": settings.zai_header_mode, "source": "built-in"},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp providers",
                                     description="Print the merged providers view with sources.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    view = providers_view(Settings.from_env())
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    print(f"{'name':<12}{'protocol':<11}{'credential':<32}{'source':<10}base_url")
    for p in view:
        cred = f"{p['credential_env']}{'' if p['credential_set'] else ' (unset)'}"
        print(f"{p['name']:<12}{p['protocol']:<11}{cred:<32}{p['source']:<10}{p['base_url']}")
    return 0
