"""Exporting a logger's rows (``ioplex logger export``): reading the time bounds people type,
and writing rows as CSV or JSON, streamed, so an export of any size runs in constant memory."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from .calendar import Calendar
from .rows import Interval, Sample, TariffInterval
from .settings import DurationError, parse_duration

FORMATS = ("csv", "json")


class TimeError(ValueError):
    """A time bound that cannot be read."""


def parse_time(text: str, calendar: Calendar, now: float) -> float:
    """Seconds since the epoch for a time bound given as:

    - an ISO 8601 date or date-time (``2024-05-01``, ``2024-05-01T08:00``, ``...+02:00``,
      ``...Z``); without an offset it is in the logger's time zone;
    - seconds since the epoch (``1714550400``);
    - a duration ago (``7d``, ``-36h``: see retention units), or ``now``.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    if re.fullmatch(r"\d{9,}(\.\d+)?", value):  # 9+ digits: epoch seconds, not a year
        return float(value)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=calendar.tz)
        return dt.timestamp()
    try:
        ago = parse_duration(value.removeprefix("-"))
    except DurationError:
        ago = None
    if ago is not None:
        return now - ago
    raise TimeError(
        f"cannot read time {text!r}: expected an ISO 8601 date or date-time "
        "(2024-05-01, 2024-05-01T08:00+02:00), seconds since the epoch, a duration ago "
        "(7d, 36h) or 'now'"
    )


SAMPLE_FIELDS = ("seq", "time", "datetime", "point", "value", "quality")
INTERVAL_FIELDS = ("time", "end", "datetime", "point", "count", "min", "max", "avg", "delta")
TARIFF_FIELDS = ("time", "end", "datetime", "point", "tariff", "delta", "cost")

Row = Sample | Interval | TariffInterval


def csv_text(value: Any) -> str:
    """A CSV cell: floats in their shortest form that reads back as the same double
    (``repr``: 0.1, not 0.1000000000000000055; 1e+16), never rounded to fewer digits,
    never locale-formatted; None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def as_record(row: Row, calendar: Calendar) -> dict[str, Any]:
    """A row as a flat dict with a readable local ``datetime`` beside the epoch ``time``."""
    record = row._asdict()
    record["datetime"] = calendar.isoformat(row.time)
    if isinstance(row, Sample):
        record["quality"] = row.quality.value
    return record


def write_rows(
    rows: Iterable[Row],
    out: IO[str],
    fmt: str,
    level: str,
    calendar: Calendar,
    tariffs: bool = False,
) -> int:
    """Write `rows` to `out` as CSV (with a header) or as one JSON array; return the count.
    `tariffs`: the rows are `TariffInterval` rows."""
    fields = TARIFF_FIELDS if tariffs else SAMPLE_FIELDS if level == "raw" else INTERVAL_FIELDS
    n = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            record = as_record(row, calendar)
            writer.writerow([csv_text(record[k]) for k in fields])
            n += 1
        return n
    if fmt != "json":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out.write("[")
    for row in rows:
        record = {k: _json_number(v) for k, v in as_record(row, calendar).items()}
        out.write(("\n" if n == 0 else ",\n") + json.dumps({k: record[k] for k in fields}))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
