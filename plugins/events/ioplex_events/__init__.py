"""ioplex plugin `events`: a rules engine in HSYCO's EVENTS language, run from config.

``[plugins.events] files = ["events/*.txt"]`` names the events files; each line is a rule
``event : actions`` (see README.md). The engine (`Engine`) runs as the plugin's service;
``ioplex events check`` and ``ioplex events trace`` are its commands; ``ioplex check``
reports the files' syntax problems too.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import ioplex

from .engine import Engine
from .language import Diagnostic, RulesError, parse_line, parse_text
from .loader import find_files, read_rules
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
def check_config(settings: dict[str, Any], base_dir: Path) -> list[ioplex.Problem]:
    """Syntax problems of every events file (references need the whole configuration:
    ``ioplex events check`` checks those too)."""
    problems = []
    for pattern in settings["files"]:
        if not find_files([pattern], base_dir):
            problems.append(ioplex.Problem("plugins.events.files", f"{pattern!r} matches no file"))
    for path in find_files(settings["files"], base_dir):
        try:
            read_rules(path, base_dir)
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
