"""ioplex plugin `events`: a rules engine in HSYCO's EVENTS language, run from config.

``[plugins.events] files = ["events/*.txt"]`` names the events files; each line is a rule
``event : actions`` (see README.md). The engine (`Engine`) runs as the plugin's service;
``ioplex events check`` and ``ioplex events trace`` are its commands; ``ioplex check``
reports the files' problems too.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import ioplex

from .engine import Engine
from .language import Diagnostic, RulesError, parse_line, parse_text
from .loader import Context, find_files, load_file
from .vscp import is_vscp_event

PLUGIN = "events"
_ENGINES: weakref.WeakKeyDictionary[Any, Engine] = weakref.WeakKeyDictionary()


def engine_of(host: Any) -> Engine | None:
    """The engine running in `host`, if any (for tests and embedders)."""
    return _ENGINES.get(host)


@ioplex.hookimpl
def plugin_settings_schema() -> dict[str, Any]:
    return ioplex.load_schema(__package__, "settings.schema.json")


@ioplex.hookimpl
def check_config(
    settings: dict[str, Any],
    base_dir: Path,
    instances: dict[str, Any],
    host_settings: dict[str, Any],
) -> list[ioplex.Problem]:
    """Every problem of every events file, as ``ioplex events check`` finds them: syntax,
    rules naming an instance that is not configured, DAY/NIGHT without the site's position.
    (Points are checked when the host runs: an instance may declare them later.)"""
    problems = []
    for pattern in settings["files"]:
        if not find_files([pattern], base_dir):
            problems.append(ioplex.Problem("plugins.events.files", f"{pattern!r} matches no file"))
    ctx = Context(
        instances=set(instances),
        has_site=host_settings.get("latitude") is not None
        and host_settings.get("longitude") is not None,
    )
    for path in find_files(settings["files"], base_dir):
        try:
            load_file(path, base_dir, ctx)
        except RulesError as exc:
            problems += [ioplex.Problem("plugins.events.files", str(d)) for d in exc.diagnostics]
    return problems


@ioplex.hookimpl
async def serve(host: Any, settings: dict[str, Any]) -> None:
    """Run the engine for the life of the host (nothing when no files are named)."""
    if not settings["files"]:
        return
    engine = Engine(host, settings)
    _ENGINES[host] = engine
    try:
        await engine.run(watch=settings["watch"])
    finally:
        if _ENGINES.get(host) is engine:
            del _ENGINES[host]


@ioplex.hookimpl
def on_event(host: Any, source: str, event: Any) -> None:
    engine = _ENGINES.get(host)
    if engine is not None and is_vscp_event(event):
        engine.on_vscp(event)


@ioplex.hookimpl
def register_commands(cli: Any) -> None:
    from .commands import events_group

    cli.add_command(events_group)


__all__ = [
    "Diagnostic",
    "Engine",
    "RulesError",
    "engine_of",
    "parse_line",
    "parse_text",
]


@ioplex.hookimpl
def register_views(register: Any) -> None:
    """``events.traces`` and ``events.rules`` for interfaces (the web API), see views.py."""
    from . import views

    register("traces", views.traces, "The last firings of the rules (trigger, actions, results)")
    register("rules", views.rules, "Each loaded rule: firings and skips counted, last firing")
