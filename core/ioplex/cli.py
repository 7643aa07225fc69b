"""The `ioplex` command line."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import anyio
import click

from . import schemadoc, systemd
from .config import HOST_SCHEMA
from .errors import ConfigError, IoplexError, PointNameError
from .host import Host
from .loggers import LEVELS, DatabaseMissing, UnknownLoggerError
from .loggers.calendar import Calendar
from .loggers.export import FORMATS, TimeError, parse_time, write_rows
from .loggers.offline import loggers_from_config
from .loggers.settings import format_duration
from .plugins import ENV_LOAD, Plugins, call_impl, load_plugins
from .points import Point, Value, check_pattern, printable

EXIT_CONFIG = 2

config_argument = click.argument(
    "config", type=click.Path(dir_okay=False, path_type=Path), metavar="CONFIG"
)


def _load(config: Path) -> Host:
    try:
        return Host.from_config(config, plugins=installed_plugins())
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
    """Run the host described by CONFIG until SIGINT or SIGTERM; SIGHUP reloads CONFIG.

    On SIGHUP the file is read and validated again: if anything is wrong the errors are
    logged and the running configuration stays; otherwise only what changed is stopped,
    started or restarted. Exit status: 0 after a clean stop, 2 for a configuration problem,
    1 for any other start-up failure.
    """
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for pattern in watch:
        try:
            check_pattern(pattern)
        except PointNameError as exc:
            _fail(f"--watch: {exc}", EXIT_CONFIG)
    host = _load(config)
    hostlog = logging.getLogger("ioplex")

    async def reload() -> None:
        systemd.notify("RELOADING=1")
        try:
            result = await host.reload(config)
        except ConfigError as exc:
            for problem in exc.problems:
                hostlog.error(
                    "reload refused, the running configuration stays: %s: %s", config, problem
                )
        except IoplexError as exc:
            hostlog.error("reload failed: %s", exc)
        else:
            hostlog.info("SIGHUP: %s reloaded: %s", config, result)
        finally:
            systemd.notify("READY=1")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            with anyio.open_signal_receiver(
                signal.SIGINT, signal.SIGTERM, signal.SIGHUP
            ) as signals:

                async def on_signals() -> None:
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            await reload()
                            continue
                        hostlog.info("%s received: stopping", signal.Signals(signum).name)
                        tg.cancel_scope.cancel()
                        return

                tg.start_soon(on_signals)
                async with host:
                    systemd.notify(
                        f"READY=1\nSTATUS=host {host.name} running\nMAINPID={os.getpid()}"
                    )
                    interval = systemd.watchdog_interval()
                    if interval:
                        tg.start_soon(systemd.feed_watchdog, interval)
                    if watch:
                        tg.start_soon(print_changes, host, watch)
                    try:
                        await anyio.sleep_forever()
                    finally:
                        systemd.notify("STOPPING=1")

    try:
        anyio.run(main)
    except (IoplexError, OSError) as exc:
        _fail(str(exc), 1)
    except BaseExceptionGroup as group:
        leaf = _leaf(group)
        if isinstance(leaf, IoplexError | OSError):
            _fail(str(leaf), 1)
        raise


def _leaf(group: BaseExceptionGroup) -> BaseException:
    """The one exception inside nested single-exception groups (anyio task groups wrap)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def format_value(point: Point | None, value: Value) -> str:
    """A value as --watch prints it: strings escaped and cut, epoch-millisecond timestamps
    (``meta["format"] == "epoch-ms"``, like ``system.time``) as local ISO time."""
    meta = point.meta if point is not None and point.meta else {}
    if meta.get("format") == "epoch-ms" and isinstance(value, int) and not isinstance(value, bool):
        try:
            return (
                datetime.fromtimestamp(value / 1000).astimezone().isoformat(timespec="milliseconds")
            )
        except (OverflowError, OSError, ValueError):
            pass
    if isinstance(value, str):
        return repr(printable(value, 200))
    unit = meta.get("unit")
    return f"{value!r} {printable(str(unit), 20)}" if unit and value is not None else repr(value)


async def print_changes(host: Host, patterns: tuple[str, ...]) -> None:
    """Print the current value of every matching point, then each change as it happens."""
    async with host.subscribe(*patterns) as events:
        for point in sorted(host.points.match(*patterns), key=lambda p: p.name):
            _print(host, point.name, point.value, point.quality, point.last_changed)
        async for event in events:
            _print(host, event.name, event.value, event.quality, event.time)


def _print(host: Host, name: str, value: Value, quality: str, when: float) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime(when))
    shown = format_value(host.points.get(name), value)
    click.echo(f"{stamp} {printable(name, 255)} = {shown} ({quality})")


@cli.command()
@config_argument
def check(config: Path) -> None:
    """Validate CONFIG and the options of every plugin it uses; exit 0 if valid, 2 if not."""
    host = _load(config)
    counts = [(len(host.config.ioservers), "I/O server"), (len(host.config.loggers), "data logger")]
    summary = ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in counts)
    click.echo(f"{config}: valid ({summary})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions and I/O server types, and load errors."""
    loaded = installed_plugins()
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
@click.option(
    "--update",
    "readme",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Write the markdown tables into this file, between the lines "
    "'<!-- BEGIN ioplex schema -->' and '<!-- END ioplex schema -->'.",
)
def schema(plugin: str, markdown: bool, readme: Path | None) -> None:
    """Print the options schema of PLUGIN (a plugin name, or `host` for the config file)."""
    if plugin == "host":
        if readme is not None:
            raise click.BadParameter("the host schema has no README", param_hint="--update")
        if markdown:
            click.echo(schemadoc.host_markdown(HOST_SCHEMA), nl=False)
        else:
            click.echo(json.dumps(HOST_SCHEMA, indent=2))
        return
    loaded = installed_plugins()
    if plugin not in loaded.info:
        known = ", ".join(sorted(loaded.info))
        raise click.BadParameter(
            f"unknown plugin {plugin!r}; installed: {known}", param_hint="PLUGIN"
        )
    types = {n: t.schema for n, t in loaded.types.items() if t.plugin == plugin}
    settings = loaded.settings_schema(plugin)
    if readme is not None:
        try:
            text = schemadoc.replace_section(
                readme.read_text(), schemadoc.plugin_markdown(plugin, settings, types)
            )
        except ValueError as exc:
            raise click.BadParameter(f"{readme}: {exc}", param_hint="--update") from None
        readme.write_text(text)
        click.echo(f"{readme}: options of {plugin} updated")
        return
    if markdown:
        click.echo(schemadoc.plugin_markdown(plugin, settings, types), nl=False)
        return
    out: dict[str, Any] = {"ioserver_types": types}
    if settings is not None:
        out["settings"] = settings
    click.echo(json.dumps(out, indent=2))


@cli.group()
def logger() -> None:
    """Read data loggers (docs/loggers.md); works while the host runs."""


def _load_loggers(config: Path) -> Any:
    """The loggers of CONFIG, reading only [host] data_dir/timezone and [loggers]: no
    secrets, plugins or I/O servers are needed (ioplex.loggers.offline)."""
    try:
        return loggers_from_config(config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_CONFIG)


def _calendar(zone: str | None) -> Calendar:
    try:
        return Calendar(zone or "UTC")
    except ValueError:  # a zone this machine does not know
        return Calendar("UTC")


def _when(t: float | None, calendar: Calendar) -> str:
    if t is None:
        return "-"
    return calendar.local(t).isoformat(timespec="seconds")


@logger.command("list")
@config_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def logger_list(config: Path, as_json: bool) -> None:
    """List the data loggers of CONFIG with what their database holds."""
    loggers = _load_loggers(config)
    stored = loggers.reader.overview()
    loggers.reader.close()
    out: dict[str, Any] = {}
    calendars: dict[str, Calendar] = {}
    for id, lg in loggers.items():
        out[id] = {
            "configured": True,
            **lg.settings.as_dict(),
            "timezone": lg.calendar.name,
            "stored": stored.pop(id, None),
        }
        calendars[id] = lg.calendar
    for id, info in stored.items():
        out[id] = {"configured": False, "stored": info}
        calendars[id] = _calendar(info.get("timezone"))
    if as_json:
        click.echo(json.dumps({"database": str(loggers.path), "loggers": out}, indent=2))
        return
    click.echo(f"database: {loggers.path}")
    for id, info in out.items():
        db = info["stored"]
        if not info["configured"]:
            click.echo(f"{id} (no longer configured; {db['kind']})")
        else:
            retention = ", ".join(
                f"{level} {format_duration(info['retention'][level])}" for level in info["levels"]
            )
            what = ", ".join(info["points"]) or "no local points"
            click.echo(f"{id} ({info['kind']}): {what}; keeps {retention}")
            if info["source"]:
                click.echo(
                    f"  replicated from {info['source']}:{info['source_id']} "
                    f"every {info['pollinterval']:g} s"
                )
        if db is None:
            click.echo("  nothing stored yet")
            continue
        plural = "s" if db["points"] != 1 else ""
        click.echo(
            f"  {db['points']} point{plural}; raw samples {_when(db['first'], calendars[id])} .. "
            f"{_when(db['last'], calendars[id])}; last seq {db['last_seq']}, "
            f"consolidated to {db['consolidated_seq']}"
        )
        for feed in db["feeds"]:
            click.echo(
                f"  feed {feed['source']}:{feed['source_id']}: high-water mark {feed['hwm']}"
            )


@logger.command("export")
@config_argument
@click.argument("id", metavar="ID")
@click.option(
    "--since",
    help="Start (inclusive): ISO 8601 date/time (local to the logger's "
    "timezone unless it has an offset), epoch seconds, or a duration ago (7d).",
)
@click.option("--until", help="End (exclusive), same forms as --since.")
@click.option(
    "--level",
    type=click.Choice(LEVELS),
    default="raw",
    show_default=True,
    help="Raw samples or a consolidation level.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option(
    "--point",
    "points",
    multiple=True,
    metavar="PATTERN",
    help="Only these points (names or glob patterns); repeatable.",
)
@click.option(
    "--tariffs",
    is_flag=True,
    help="Counters with tariffs: the increase and cost per tariff of each interval.",
)
def logger_export(
    config: Path,
    id: str,
    since: str | None,
    until: str | None,
    level: str,
    fmt: str,
    points: tuple[str, ...],
    tariffs: bool,
) -> None:
    """Write the rows of data logger ID to stdout, oldest first."""
    loggers = _load_loggers(config)
    try:
        lg = loggers[id]
    except UnknownLoggerError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None
    if level not in lg.levels:
        raise click.BadParameter(
            f"data logger {id!r} does not keep level {level!r}; it keeps {', '.join(lg.levels)}",
            param_hint="--level",
        )
    if tariffs and level == "raw":
        raise click.BadParameter(
            "tariffs are per interval: add --level hour (or minute, day, month)",
            param_hint="--tariffs",
        )
    now = time.time()
    bounds = {}
    for name, text in (("--since", since), ("--until", until)):
        try:
            bounds[name] = None if text is None else parse_time(text, lg.calendar, now)
        except TimeError as exc:
            raise click.BadParameter(str(exc), param_hint=name) from None
    if not loggers.reader.exists():
        click.echo(
            f"error: {DatabaseMissing(f'no data logger database at {loggers.path}')}", err=True
        )
        sys.exit(1)
    query = lg.tariff_query if tariffs else lg.iter_query
    rows = query(bounds["--since"], bounds["--until"], level, points or None)
    try:
        write_rows(rows, sys.stdout, fmt, level, lg.calendar, tariffs=tariffs)
    finally:
        loggers.reader.close()


def installed_plugins() -> Plugins:
    """The plugins of this process, loaded once per ``IOPLEX_LOAD_PLUGINS`` value: the command
    line adds their subcommands before it runs, and `ioplex run` builds its host with the
    same ones instead of loading every plugin again."""
    return _load_plugins(os.environ.get(ENV_LOAD))


@functools.cache
def _load_plugins(allowed: str | None) -> Plugins:
    return load_plugins()


def _add_plugin_commands() -> None:
    """Let installed plugins add their subcommands (the register_commands hook)."""
    try:
        plugins = installed_plugins()
    except Exception as exc:  # noqa: BLE001 - the built-in commands must work whatever a plugin does
        click.echo(f"warning: plugins not loaded: {exc}", err=True)
        return
    for impl in plugins.impls("register_commands"):
        try:
            call_impl(impl, cli=cli)
        except Exception as exc:  # noqa: BLE001 - a plugin must not break the CLI
            click.echo(
                f"warning: plugin {impl.plugin_name} could not add its commands: {exc}", err=True
            )


def main() -> None:
    _add_plugin_commands()
    cli()


__all__ = ["cli", "main"]
