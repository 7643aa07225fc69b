"""``ioplex events check CONFIG`` and ``ioplex events trace CONFIG [RULE]``."""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path

import click
from ioplex import ConfigError, Host

from .language import RulesError
from .loader import Context, find_files, load_file
from .store import database_path, read_traces

EXIT_PROBLEMS = 2


def _host(config: Path) -> Host:
    try:
        return Host.from_config(config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_PROBLEMS)


@click.group(name="events")
def events_group() -> None:
    """The events (rules) engine: check files, read traces."""


def _site(config: Path) -> tuple[list[str], Path, Context]:
    """The events files' patterns, base directory and reference context of CONFIG.

    The events files' own syntax problems make the configuration invalid (``ioplex check``
    reports them through check_config); here every problem of the files is wanted, so the
    configuration is read again without them when those are its only problems.
    """
    try:
        host = Host.from_config(config)
    except ConfigError as exc:
        others = [p for p in exc.problems if not p.path.startswith("plugins.events")]
        if others:
            for line in str(ConfigError(others, str(config))).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(EXIT_PROBLEMS)
        data = tomllib.loads(config.read_text(encoding="utf-8"))
        h = data.get("host", {})
        files = data.get("plugins", {}).get("events", {}).get("files", [])
        return (
            files,
            config.resolve().parent,
            Context(
                instances=set(data.get("ioservers", {})),
                has_site=h.get("latitude") is not None and h.get("longitude") is not None,
            ),
        )
    settings = host.config.plugins.get("events") or {"files": []}
    hs = host.config.host
    return (
        settings["files"],
        host.config.base_dir,
        Context(
            instances=set(host.config.ioservers),
            has_site=hs.latitude is not None and hs.longitude is not None,
        ),
    )


@events_group.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
def check(config: Path) -> None:
    """Check the events files of CONFIG without running anything; exit 2 on problems."""
    patterns, base, ctx = _site(config)
    paths = find_files(patterns, base)
    problems = rules = 0
    for path in paths:
        try:
            rules += len(load_file(path, base, ctx))
        except RulesError as exc:
            for d in exc.diagnostics:
                click.echo(f"error: {d}", err=True)
            problems += len(exc.diagnostics)
    if problems:
        click.echo(f"{problems} problem{'s' if problems != 1 else ''} found.", err=True)
        sys.exit(EXIT_PROBLEMS)
    click.echo(f"{rules} rules in {len(paths)} files: valid")


@events_group.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("rule", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of text.")
def trace(config: Path, rule: str | None, as_json: bool) -> None:
    """Print the last firings of every rule, or of RULE (file:line, or text it contains)."""
    host = _host(config)
    keep = (host.config.plugins.get("events") or {}).get("trace_size", 20)
    for entry in read_traces(database_path(host.data_dir), rule, keep):
        if as_json:
            click.echo(json.dumps(entry))
            continue
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["time"]))
        click.echo(f"{stamp} {entry['rule']}: {entry['text']}")
        click.echo(f"    trigger: {entry['trigger']}; {entry['status']}")
        for text, result in entry["actions"]:
            click.echo(f"    {text}: {result}")
