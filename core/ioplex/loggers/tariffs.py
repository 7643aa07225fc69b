"""Tariffs of counter loggers: named time slots of the week, each with a rate, as HSYCO's
counter data loggers have ("time slots and the relative rates to calculate the costs").

    [loggers.energy.tariffs]
    peak = { rate = 0.32, when = ["mon-fri 08:00-19:00"] }
    mid = { rate = 0.27, when = ["mon-fri 07:00-08:00", "mon-fri 19:00-23:00", "sat 07:00-23:00"] }
    offpeak = { rate = 0.21 }       # no `when`: every other minute of the week

A ``when`` entry is ``[DAYS] [HH:MM-HH:MM]``: days are ``mon`` .. ``sun``, comma lists and
ranges (``mon-fri``, ``sat,sun``, ``fri-mon``), default every day; the time range is local time
in the logger's zone, end exclusive, ``24:00`` allowed, and an end not after the start runs past
midnight into the next day (``22:00-06:00``); default the whole day. Slots are whole minutes.
The slots must not overlap and, with the default tariff, cover the week: both are checked at
validation, with the minute where they fail.

The week is compiled into a table of 10,080 minutes, so finding a reading's tariff is a list
index (plus one local-time conversion per distinct minute, cached by the consolidator).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = 7 * 1440
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


class TariffError(ValueError):
    """A tariff table that cannot be used; the message says what and where."""


@dataclass(frozen=True)
class Tariff:
    name: str
    rate: float


@dataclass(frozen=True)
class Tariffs:
    """The tariffs of one logger and which one applies at each minute of the week."""

    tariffs: tuple[Tariff, ...]
    week: tuple[int, ...]
    """Index into `tariffs` for each minute of the week, Monday 00:00 first."""

    def index(self, weekday: int, hour: int, minute: int) -> int:
        return self.week[weekday * 1440 + hour * 60 + minute]

    def as_dict(self) -> dict[str, Any]:
        return {t.name: t.rate for t in self.tariffs}


def _days(text: str, where: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        ends = [p.strip() for p in part.split("-")]
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise TariffError(
                f"{where}: cannot read days {part.strip()!r}; expected mon, tue, wed, thu, fri, "
                "sat, sun, comma lists or ranges such as 'mon-fri'"
            )
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        out.extend((first + i) % 7 for i in range((last - first) % 7 + 1))
    return out


def _minutes(text: str, where: str) -> list[int]:
    """Minutes of the week a ``when`` entry covers."""
    text = text.strip().lower()
    m = _TIME_RE.search(text)
    days_text = (text[: m.start()] if m else text).strip()
    if m and text[m.end() :].strip():
        raise TariffError(f"{where}: unexpected {text[m.end() :].strip()!r} after the time range")
    days = _days(days_text, where) if days_text else list(range(7))
    if m:
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise TariffError(
                f"{where}: invalid time range {m.group(0)!r}; use HH:MM-HH:MM (00:00 to 24:00)"
            )
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            end += 1440  # runs past midnight
    else:
        start, end = 0, 1440
    return [(day * 1440 + minute) % WEEK for day in days for minute in range(start, end)]


def _at(minute: int) -> str:
    return f"{DAYS[minute // 1440]} {minute % 1440 // 60:02d}:{minute % 60:02d}"


def parse_tariffs(table: dict[str, Any], where: str) -> Tariffs:
    """Tariffs from a logger's ``tariffs`` table; raises TariffError naming the config path."""
    tariffs: list[Tariff] = []
    week: list[int | None] = [None] * WEEK
    default: int | None = None
    for name, spec in table.items():
        here = f"{where}.{name}"
        if not isinstance(spec, dict):
            raise TariffError(f"{here}: expected a table with rate and when, got {spec!r}")
        rate = spec.get("rate", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
            raise TariffError(f"{here}.rate: expected a number, got {rate!r}")
        index = len(tariffs)
        tariffs.append(Tariff(name, float(rate)))
        when = spec.get("when")
        if when is None:
            if default is not None:
                raise TariffError(
                    f"{here}: only one tariff may leave out 'when' (the rest of the week); "
                    f"{tariffs[default].name!r} already does"
                )
            default = index
            continue
        if isinstance(when, str) or not isinstance(when, list) or not when:
            raise TariffError(
                f"{here}.when: expected a non-empty list of strings such as "
                f'"mon-fri 08:00-19:00", got {when!r}'
            )
        for i, entry in enumerate(when):
            if not isinstance(entry, str):
                raise TariffError(f"{here}.when[{i}]: expected a string, got {entry!r}")
            for minute in _minutes(entry, f"{here}.when[{i}]"):
                other = week[minute]
                if other is not None and other != index:
                    raise TariffError(
                        f"{here}.when[{i}]: {entry!r} overlaps tariff {tariffs[other].name!r} "
                        f"at {_at(minute)}"
                    )
                week[minute] = index
    if not tariffs:
        raise TariffError(f"{where}: no tariffs; leave the table out for none")
    for minute, index in enumerate(week):
        if index is None:
            if default is None:
                raise TariffError(
                    f"{where}: no tariff covers {_at(minute)}; add one without 'when' for the "
                    "rest of the week"
                )
            week[minute] = default
    return Tariffs(tuple(tariffs), tuple(week))  # type: ignore[arg-type]
