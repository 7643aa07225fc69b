"""ioplex-web: a control surface for a running host.

- an HTTP API under ``/api/v1`` (points, UI variables, writes, live watches over server-sent
  events, I/O server health, data loggers, rules), OpenAPI at ``/api/v1/openapi.json``;
- ``/healthz``, ``/readyz`` and Prometheus ``/metrics``;
- a status page served from the package (no build step, no CDN);
- the ``ioplex points/get/set/watch/status`` commands, which talk to a running host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ioplex
from ioplex import FatalError, Problem

from . import settings as settings_module

__all__: list[str] = []


@ioplex.hookimpl
def plugin_settings_schema() -> dict[str, Any]:
    return ioplex.load_schema(__package__, "settings.schema.json")


@ioplex.hookimpl
def check_config(settings: dict[str, Any], base_dir: Path) -> list[Problem]:
    """The listen address, users (loopback only without them), allow-list, write policy,
    per-point metrics patterns and certificate pair."""
    if not settings["enabled"]:
        return []
    try:
        settings_module.parse(settings, base_dir)
    except ValueError as exc:
        return [Problem(*str(exc).split(": ", 1))]
    return []


@ioplex.hookimpl
async def serve(host: Any, settings: dict[str, Any]) -> None:
    """Run the web server for the life of the host."""
    if not settings["enabled"]:
        return
    from . import server

    try:
        parsed = settings_module.parse(settings, host.config.base_dir)
    except ValueError as exc:
        raise FatalError(str(exc)) from None
    await server.run(host, parsed)


@ioplex.hookimpl
def register_commands(cli: Any) -> None:
    from .commands import add_commands

    add_commands(cli)
