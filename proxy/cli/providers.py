"""The providers the shim can route to, as one merged view with the source of each entry.

The view comes from the provider catalog (proxy.config.catalog): the built-in lanes `anthropic` and `zai`
first, then the providers of the routes file, the repo providers file and the user file, each with
its source (a file path or `built-in`) and the routes it serves. Only the NAME of a credential's
variable is shown, and whether it is set — never its value.

`ccp providers reload` makes the running shim read its routes/providers files again
(proxy.cli.controls, `POST /v1/admin/providers/reload`): an invalid file is refused and the old
catalog stays.
"""

from __future__ import annotations

import argparse
import json

from proxy.config.load import load_settings
from proxy.config.settings import Settings


def providers_view(settings: Settings) -> list[dict]:
    """One dict per provider: name, protocol, base_url, credential_env, credential_set, header_mode,
    source, profile (its name or None), knobs (the profile's effective knobs or None) and routes
    (each with name, upstream_model and source)."""
    return settings.catalog.view()


def _routes(p: dict) -> str:
    """`name->upstream_model`, with the route's source when it differs from the provider's."""
    return (
        ", ".join(
            r["name"]
            + (f"->{r['upstream_model']}" if r["upstream_model"] else "")
            + (f" ({r['source']})" if r["source"] != p["source"] else "")
            for r in p["routes"]
        )
        or "-"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp providers",
        description="Print the merged providers view with sources; "
        "`reload`: the running shim reads its files again.",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["reload"],
        help="reload: the running shim re-reads its routes/providers files from "
        "the next request (an invalid file is refused, the old catalog stays)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--url", help="with reload: the shim's base URL (default: the profile's running shim)"
    )
    args = parser.parse_args(argv)
    if args.action == "reload":
        from proxy.cli.controls import providers_reload

        return providers_reload(args.url)
    settings = load_settings()
    view = providers_view(settings)
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    rows = [("name", "protocol", "credential", "source", "base_url")]
    for p in view:
        env = p["credential_env"] or "(inline key)"
        rows.append(
            (
                p["name"],
                p["protocol"],
                f"{env}{'' if p['credential_set'] else ' (unset)'}",
                p["source"],
                p["base_url"],
            )
        )
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(4)]
    for i, row in enumerate(rows):
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[4])
        if i:
            print(" " * widths[0] + f"routes: {_routes(view[i - 1])}")
            provider = settings.catalog.provider(view[i - 1]["name"])
            if provider is not None and provider.profile is not None:
                print(" " * widths[0] + f"profile: {provider.profile.summary()}")
    if settings.model_override:
        print(
            f"\nmanual override: {settings.model_override} (from {settings.model_override_source})"
        )
    return 0
