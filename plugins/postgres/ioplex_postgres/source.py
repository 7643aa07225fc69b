"""What the shipper reads from the host's own data loggers (in worker threads).

Raw samples come from a range scan of the raw table's primary key (schema version 2), or
from the public `DataLogger.samples_after` on any other version. Consolidated intervals have no sequence numbers, so knowing which ones changed since the
last pass takes two facts of the local database that the public API does not expose yet,
read here from its documented schema (docs/loggers.md, "The database") with the host's
`Reader` (``host.loggers.reader``, read-only connections): ``loggers.consolidated_seq``
(samples up to it are in the intervals) and ``loggers.carried_until`` (held values are
credited up to it), and the earliest time among the samples consolidated since the last
pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple

from ioplex.loggers import DatabaseMissing, DataLogger, Interval, Reader

QUALITY_CODES = {"good": 0, "stale": 1, "bad": 2}


class RawRow(NamedTuple):
    """A raw sample as the shipper copies it (the series id comes from PostgreSQL)."""

    point: str
    seq: int
    time: float
    value: float | None
    quality: int


KNOWN_SCHEMA = 2
"""The local database's ``PRAGMA user_version`` whose raw table `raw_after` reads directly."""


def raw_after(
    reader: Reader, logger: DataLogger, after: int, limit: int, names: dict[int, str] | None = None
) -> list[RawRow]:
    """Up to `limit` raw samples after seq `after` (in a worker thread, overlapping the
    previous batch's COPY).

    On the schema it knows (docs/loggers.md, version 2) it reads the raw table's primary key
    range alone and names points from `names` (local point id -> name, filled as needed),
    which is twice as fast as `samples_after`'s join; on any other version it uses
    `samples_after`.
    """
    try:
        conn = reader.conn()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except DatabaseMissing:
        return []
    if version != KNOWN_SCHEMA or names is None:
        return [
            RawRow(
                s.point,
                s.seq,
                s.time,
                None if s.value is None else float(s.value),
                QUALITY_CODES[s.quality],
            )
            for s in logger.samples_after(after, limit)
        ]
    lid = reader.logger_id(logger.id)
    if lid is None:
        return []
    found = conn.execute(
        "SELECT seq, time, point, value, quality FROM raw WHERE logger = ? AND seq > ? "
        "ORDER BY seq LIMIT ?",
        (lid, after, limit),
    ).fetchall()
    unknown = {row[2] for row in found} - names.keys()
    if unknown:
        marks = ", ".join("?" * len(unknown))
        names.update(
            conn.execute(
                f"SELECT id, name FROM points WHERE id IN ({marks})", sorted(unknown)
            ).fetchall()
        )
    return [
        RawRow(names[point], seq, t, None if value is None else float(value), quality)
        for seq, t, point, value, quality in found
    ]


@dataclass(frozen=True)
class Progress:
    """How far one logger's consolidation has gone."""

    consolidated_seq: int
    carried_until: float


def progress(reader: Reader, logger: DataLogger) -> Progress | None:
    """The logger's consolidation progress; None before its first row exists."""
    try:
        row = (
            reader.conn()
            .execute(
                "SELECT consolidated_seq, carried_until FROM loggers WHERE name = ?", (logger.id,)
            )
            .fetchone()
        )
    except DatabaseMissing:
        return None
    if row is None:
        return None
    return Progress(int(row[0] or 0), float(row[1] or 0.0))


def earliest_between(reader: Reader, logger: DataLogger, after: int, upto: int) -> float | None:
    """The earliest time of the logger's raw samples with ``after < seq <= upto``: what the
    consolidation passes since the last shipping pass can have changed (a primary-key range
    scan)."""
    if upto <= after:
        return None
    lid = reader.logger_id(logger.id)
    if lid is None:
        return None
    (found,) = (
        reader.conn()
        .execute(
            "SELECT min(time) FROM raw WHERE logger = ? AND seq > ? AND seq <= ?",
            (lid, after, upto),
        )
        .fetchone()
    )
    return found


def intervals_from(
    logger: DataLogger, level: str, start: float, limit: int
) -> tuple[list[Interval], float | None]:
    """The logger's `level` intervals starting at or after `start`, in time order: at most
    `limit` rows plus the rest of the last interval start (rows of one start are never split
    between two batches), and the start of the rows that follow (None: none do)."""
    rows: list[Interval] = []
    following = None
    query: Any = logger.iter_query(start=start, level=level)
    try:
        rows = list(itertools.islice(query, limit))
        if len(rows) == limit:
            last = rows[-1].time
            for row in query:
                if row.time != last:
                    following = row.time
                    break
                rows.append(row)
    finally:
        close = getattr(query, "close", None)
        if close is not None:
            close()
    return rows, following
