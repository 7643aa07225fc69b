"""The `ioplex` command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import click

from . import schemadoc
from .config import HOST_SCHEMA
from .errors import ConfigError
from .host import Host
from .plugins import Plugins, load_plugins

EXIT_CONFIG = 2

config_argument = click.argument(
    "config", type=click.Path(dir_okay=False, path_type=Path), metavar="CONFIG"
)


def _load(config: Path) -> Host:
    try:
        return Host.from_config(config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        n = len(exc.problems)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found; nothing was started.", err=True)
        sys.exit(EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ioplex")
def cli() -> None:
    """ioplex: a plugin-based host for building-automation I/O servers."""


@cli.command()
@config_argument
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much the host logs to stderr.",
)
@click.option(
    "--watch",
    "watch",
    multiple=True,
    metavar="PATTERN",
    help="Print changes of the data points matching PATTERN (e.g. 'dummy.*') to stdout, "
    "one line each; repeatable.",
)
def run(config: Path, log_level: str, watch: tuple[str, ...]) -> None:
    """Run the host described by CONFIG until SIGINT or SIGTERM."""
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    host = _load(config)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        logging.getLogger("ioplex").info(
                            "%s received: stopping", signal.Signals(signum).name
                        )
                        tg.cancel_scope.cancel()
                        return

                tg.start_soon(stop_on_signal)
                async with host:
                    if watch:
                        tg.start_soon(print_changes, host, watch)
                    await anyio.sleep_forever()

    anyio.run(main)


async def print_changes(host: Host, patterns: tuple[str, ...]) -> None:
    async with host.subscribe(*patterns) as events:
        async for event in events:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
            click.echo(f"{stamp} {event.name} = {event.value!r} ({event.quality})")


@cli.command()
@config_argument
def check(config: Path) -> None:
    """Validate CONFIG and the options of every plugin it uses; exit 0 if valid, 2 if not."""
    host = _load(config)
    click.echo(
        f"{config}: valid ({len(host.config.ioservers)} I/O servers, "
        f"{len(host.config.loggers)} data loggers)"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions and I/O server types, and load errors."""
    loaded = load_plugins()
    rows = [info.as_dict() for info in loaded.info.values()]
    failed = [info.as_dict() for info in loaded.failed]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "errors": failed}, indent=2))
        return
    for row in rows:
        types = ", ".join(row["types"]) or "-"
        builtin = " (built-in)" if row["builtin"] else ""
        click.echo(f"{row['name']} {row['version'] or '?'}{builtin}: types {types}")
    for row in failed:
        click.echo(
            f"{row['name']} {row['version'] or '?'} ({row['distribution'] or '?'}): "
            f"FAILED TO LOAD: {row['error']}",
        )


@cli.command()
@click.argument("plugin")
@click.option("--markdown", is_flag=True, help="Print markdown tables instead of JSON Schema.")
def schema(plugin: str, markdown: bool) -> None:
    """Print the options schema of PLUGIN (a plugin name, or `host` for the config file)."""
    if plugin == "host":
        click.echo(json.dumps(HOST_SCHEMA, indent=2))
        return
    loaded = load_plugins()
    if plugin not in loaded.info:
        known = ", ".join(sorted(loaded.info))
        raise click.BadParameter(f"unknown plugin {plugin!r}; installed: {known}", param_hint="PLUGIN")
    types = {n: t.schema for n, t in loaded.types.items() if t.plugin == plugin}
    settings = loaded.settings_schema(plugin)
    if markdown:
        click.echo(schemadoc.plugin_markdown(plugin, settings, types), nl=False)
        return
    out: dict[str, Any] = {"ioserver_types": types}
    if settings is not None:
        out["settings"] = settings
    click.echo(json.dumps(out, indent=2))


def main() -> None:
    cli()


__all__ = ["cli", "main", "Plugins"]
