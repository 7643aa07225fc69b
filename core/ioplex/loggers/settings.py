"""What a ``[loggers.<id>]`` table means: one data logger's settings, parsed and checked.

The host schema (schemas/host.schema.json) checks the shape of each table and fills in its
defaults; `check_loggers` (registered in `ioplex.config.LOGGER_VALIDATORS`) then checks what a
schema cannot express: point pattern syntax, retention durations, time zone names and that a
``source`` names a configured I/O server. Every problem carries its dotted config path.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import join_path
from ..errors import PointNameError, Problem
from ..points import check_pattern
from .tariffs import TariffError, Tariffs, parse_tariffs

if TYPE_CHECKING:
    from ..config import Config

LEVELS = ("raw", "minute", "hour", "day", "month")
"""Every level a logger can keep, finest first. ``raw`` is always kept."""
KINDS = ("range", "counter")

FOREVER = "forever"
DURATION_UNITS: dict[str, int] = {
    "s": 1,
    "min": 60,
    "h": 3600,
    "d": 86_400,
    "w": 7 * 86_400,
    "mo": 30 * 86_400,
    "y": 365 * 86_400,
}
"""Units of retention durations. A month is 30 days and a year 365 days: retention is a
length of time, not a calendar position, so it needs no time zone."""
_DURATION_RE = re.compile(r"\s*([+-]?\d+(?:\.\d+)?)\s*([a-z]+)\s*")


class DurationError(ValueError):
    """A retention duration that is malformed, zero or negative."""


def parse_duration(value: Any) -> float | None:
    """Seconds for a retention value: an integer number of seconds, a string like ``"7d"``,
    ``"36h"``, ``"2y"`` (units s, min, h, d, w, mo, y) or ``"forever"`` (None: never delete).

    Raises DurationError saying what is wrong and what is expected.
    """
    expected = (
        "expected a positive number of seconds, a number with a unit "
        f'({", ".join(DURATION_UNITS)}) such as "7d", or "forever"'
    )
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(f"invalid duration {value!r}: {expected}")
    if isinstance(value, str):
        if value.strip().lower() == FOREVER:
            return None
        m = _DURATION_RE.fullmatch(value.lower())
        if m is None:
            raise DurationError(f"invalid duration {value!r}: {expected}")
        number, unit = float(m.group(1)), m.group(2)
        if unit not in DURATION_UNITS:
            hint = " (use 'min' for minutes or 'mo' for months)" if unit == "m" else ""
            raise DurationError(
                f"invalid duration {value!r}: unknown unit {unit!r}{hint}; {expected}"
            )
        seconds = number * DURATION_UNITS[unit]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise DurationError(
            f'retention must be positive, got {value!r}; use "forever" to keep rows for good'
        )
    return seconds


@dataclass(frozen=True)
class LoggerSettings:
    """One data logger's validated settings (see docs/loggers.md, "Configuration")."""

    id: str
    kind: str = "range"
    points: tuple[str, ...] = ()
    levels: tuple[str, ...] = ("raw", "hour", "day", "month")
    """The levels kept, finest first; always starts with ``raw``."""
    retention: dict[str, float | None] = field(default_factory=dict)
    """Seconds each level is kept, None for ever; one entry per level in LEVELS."""
    timezone: str | None = "UTC"
    """IANA zone of the intervals; None: the system's (`calendar.system_zone`)."""
    wrap: float | None = None
    reset_below: float = 0.5
    """Counters: a lower reading is a reset only below this fraction of the previous one."""
    tariffs: Tariffs | None = None
    """Counters: time slots with rates (see `tariffs`)."""
    every: float | None = None
    """Seconds between periodic samples of every matching point; None: none."""
    on_change: bool = True
    """Record every change (besides any periodic samples)."""
    hold: float | None = None
    """The longest a value is held without a new sample, in seconds; None: until the next."""
    source: str | None = None
    source_id: str | None = None
    pollinterval: float = 60.0
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "points": list(self.points),
            "levels": list(self.levels),
            "retention": self.retention,
            "timezone": self.timezone,
            "wrap": self.wrap,
            "reset_below": self.reset_below,
            "tariffs": self.tariffs.as_dict() if self.tariffs else None,
            "every": self.every,
            "on_change": self.on_change,
            "hold": self.hold,
            "source": self.source,
            "source_id": self.source_id,
            "pollinterval": self.pollinterval,
            "description": self.description,
        }


DEFAULT_RETENTION: dict[str, str] = {
    "raw": "7d",
    "minute": "7d",
    "hour": "2y",
    "day": "10y",
    "month": FOREVER,
}
"""Mirrors the defaults in the host schema, for tables built without it (tests, scripts)."""


MIN_EVERY = 1.0
"""The shortest periodic sampling interval, in seconds."""


def parse(
    id: str,
    table: dict[str, Any],
    where: str | None = None,
    default_timezone: str | None = "UTC",
) -> tuple[LoggerSettings | None, list[Problem]]:
    """Settings from one ``[loggers.<id>]`` table (defaults already filled by the schema).

    Returns (settings or None, problems); `where` is the table's config path.
    `default_timezone` is the host's zone (``[host] timezone``; None: the system's), used
    when the table names none.
    """
    where = where if where is not None else join_path("loggers", id)
    problems: list[Problem] = []

    def problem(message: str, *keys: str | int) -> None:
        path = where
        for key in keys:
            path = join_path(path, key)
        problems.append(Problem(path, message))

    points: list[str] = []
    for i, pattern in enumerate(table.get("points", [])):
        try:
            points.append(check_pattern(pattern))
        except PointNameError as exc:
            problem(str(exc), "points", i)

    kind = table.get("kind", "range")
    if kind not in KINDS:  # the schema says so too; kept for tables built without it
        problem(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}", "kind")

    levels = set(table.get("levels", ("hour", "day", "month"))) | {"raw"}
    unknown = levels - set(LEVELS)
    if unknown:
        problem(
            f"unknown levels {sorted(unknown)}; expected some of {', '.join(LEVELS[1:])}", "levels"
        )

    retention: dict[str, float | None] = {}
    for level, value in {**DEFAULT_RETENTION, **table.get("retention", {})}.items():
        if level not in LEVELS:
            problem(
                f"unknown level {level!r}; expected one of {', '.join(LEVELS)}", "retention", level
            )
            continue
        try:
            retention[level] = parse_duration(value)
        except DurationError as exc:
            problem(str(exc), "retention", level)

    timezone = table.get("timezone") or default_timezone
    if timezone is not None and timezone != "UTC":
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problem(
                f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Rome' or 'UTC'",
                "timezone",
            )

    wrap = table.get("wrap")
    if wrap is not None and kind != "counter":
        problem(f"wrap applies to counter loggers only; this logger's kind is {kind!r}", "wrap")
    if wrap is not None and (
        isinstance(wrap, bool) or not isinstance(wrap, int | float) or wrap <= 0
    ):
        problem(
            f"wrap must be a positive number (the counter's modulus, e.g. 65536), got {wrap!r}",
            "wrap",
        )

    reset_below = table.get("reset_below", 0.5)
    if (
        isinstance(reset_below, bool)
        or not isinstance(reset_below, int | float)
        or not 0 < reset_below <= 1
    ):
        problem(
            f"reset_below must be a fraction above 0 and at most 1, got {reset_below!r}",
            "reset_below",
        )
    tariffs = None
    if table.get("tariffs") is not None:
        if kind != "counter":
            problem(
                f"tariffs apply to counter loggers only; this logger's kind is {kind!r}", "tariffs"
            )
        else:
            try:
                tariffs = parse_tariffs(table["tariffs"], join_path(where, "tariffs"))
            except TariffError as exc:
                path, _, message = str(exc).partition(": ")
                problems.append(Problem(path, message))

    every = None
    if table.get("every") is not None:
        try:
            every = parse_duration(table["every"])
        except DurationError as exc:
            problem(str(exc).replace("retention", "every"), "every")
        else:
            if every is None or every < MIN_EVERY:
                problem(f"every must be at least {MIN_EVERY:g} s, got {table['every']!r}", "every")
                every = None
    on_change = table.get("on_change", True)
    if not on_change and every is None and not problems:
        problem(
            "on_change = false records nothing without 'every' (e.g. every = \"1min\")", "on_change"
        )
    hold = None
    if table.get("hold") is not None:
        try:
            hold = parse_duration(table["hold"])
        except DurationError as exc:
            problem(str(exc).replace("retention", "hold"), "hold")

    source = table.get("source")
    source_id = table.get("source_id") or (id if source else None)
    interval = table.get("pollinterval", 60.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        problem(
            f"pollinterval must be a positive number of seconds, got {interval!r}", "pollinterval"
        )

    if problems:
        return None, problems
    return LoggerSettings(
        id=id,
        kind=kind,
        points=tuple(points),
        levels=tuple(level for level in LEVELS if level in levels),
        retention=retention,
        timezone=timezone,
        wrap=float(wrap) if wrap is not None else None,
        reset_below=float(reset_below),
        tariffs=tariffs,
        every=every,
        on_change=bool(on_change),
        hold=hold,
        source=source,
        source_id=source_id,
        pollinterval=float(interval),
        description=table.get("description", ""),
    ), []


def check_loggers(tables: dict[str, Any], config: Config) -> list[Problem]:
    """The `LOGGER_VALIDATORS` check: every ``[loggers.<id>]`` table, after the schema."""
    problems: list[Problem] = []
    for id, table in tables.items():
        where = join_path("loggers", id)
        _, found = parse(id, table, where)
        problems.extend(found)
        source = table.get("source")
        if source is not None and source not in config.ioservers:
            known = list(config.ioservers)
            hint = difflib.get_close_matches(source, known, n=1)
            also = (
                f"did you mean {hint[0]!r}?"
                if hint
                else f"configured: {', '.join(known) or 'none'}"
            )
            problems.append(
                Problem(join_path(where, "source"), f"unknown I/O server {source!r}; {also}")
            )
    return problems


def format_duration(seconds: float | None) -> str:
    """A retention in the largest of y, d, h, min, s that divides it: 604800 -> "7d",
    None -> "forever"."""
    if seconds is None:
        return FOREVER
    for unit in ("y", "d", "h", "min"):
        size = DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def unmatched_patterns(settings: LoggerSettings, instances: Iterable[str]) -> list[str]:
    """Warnings for the logger's point patterns whose instance part (before the first dot)
    matches no I/O server instance: such a pattern can never record anything, which is
    almost always a typo. Not an error: an instance may be added later."""
    known = list(instances)
    out: list[str] = []
    for i, pattern in enumerate(settings.points):
        head = pattern.split(".", 1)[0]
        if any(fnmatch.fnmatchcase(name, head) for name in known):
            continue
        hint = difflib.get_close_matches(head, known, n=1)
        also = f"did you mean {hint[0]!r}?" if hint else f"configured: {', '.join(known) or 'none'}"
        out.append(
            f"data logger {settings.id!r}: {join_path(join_path('loggers', settings.id), 'points')}"
            f"[{i}] {pattern!r} matches "
            f"no I/O server instance ({head!r}); it will record nothing; {also}"
        )
    return out
