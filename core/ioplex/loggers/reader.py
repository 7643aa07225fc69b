"""Reading the data logger database: queries, `samples_after`, the overview `ioplex logger
list` prints. Read-only connections only, so this works while a host writes (WAL readers never
block the writer) and from another process, such as the CLI.
"""

from __future__ import annotations

import fnmatch
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import IoplexError
from .calendar import Calendar
from .rows import Interval, Sample, TariffInterval
from .settings import LEVELS
from .store import QUALITIES, connect


class DatabaseMissing(IoplexError):
    """There is no data logger database yet (the host has never run with loggers)."""


class Reader:
    """Read-only access to one database file; one connection per thread, opened on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.path.exists()

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not self.path.exists():
                raise DatabaseMissing(
                    f"no data logger database at {self.path}: the host has not recorded yet"
                )
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this reader opened, in any thread."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # -- lookups ---------------------------------------------------------------------------------
    def logger_id(self, name: str) -> int | None:
        row = self.conn().execute("SELECT id FROM loggers WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def point_ids(self, lid: int, patterns: str | Iterable[str] | None) -> dict[int, str] | None:
        """The logger's points matching any of `patterns` (names or glob patterns), by id;
        None when `patterns` is None (every point)."""
        if patterns is None:
            return None
        if isinstance(patterns, str):
            patterns = [patterns]
        match = re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)").match
        return {
            pid: name
            for pid, name in self.conn().execute(
                "SELECT id, name FROM points WHERE logger = ?", (lid,)
            )
            if match(name)
        }

    # -- samples ---------------------------------------------------------------------------------
    def samples_after(self, name: str, seq: int, limit: int) -> list[Sample]:
        """Raw samples of logger `name` with ``seq`` greater than `seq`, ascending, at most
        `limit`: one range scan of the raw table's primary key (logger, seq)."""
        if not self.exists():
            return []
        lid = self.logger_id(name)
        if lid is None:
            return []
        rows = self.conn().execute(
            "SELECT raw.seq, raw.time, points.name, raw.value, raw.quality FROM raw "
            "JOIN points ON points.id = raw.point "
            "WHERE raw.logger = ? AND raw.seq > ? ORDER BY raw.seq LIMIT ?",
            (lid, seq, limit),
        )
        return [Sample(s, t, p, v, QUALITIES[q]) for s, t, p, v, q in rows]

    def _where(
        self,
        name: str,
        start: float | None,
        end: float | None,
        points: str | Iterable[str] | None,
    ) -> tuple[list[str], list[Any]] | None:
        """The WHERE terms and parameters of a query, None when nothing can match."""
        if not self.exists():
            return None
        lid = self.logger_id(name)
        if lid is None:
            return None
        wanted = self.point_ids(lid, points)
        if wanted is not None and not wanted:
            return None
        where = ["t.logger = ?"]
        params: list[Any] = [lid]
        if start is not None:
            where.append("t.time >= ?")
            params.append(start)
        if end is not None:
            where.append("t.time < ?")
            params.append(end)
        if wanted is not None:
            where.append(f"t.point IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        return where, params

    def query(
        self,
        name: str,
        start: float | None,
        end: float | None,
        level: str,
        points: str | Iterable[str] | None,
        calendar: Calendar,
    ) -> Iterator[Sample] | Iterator[Interval]:
        """Rows of logger `name` at `level` with ``start <= time < end``, in time order."""
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        found = self._where(name, start, end, points)
        if found is None:
            return iter(())
        where, params = found
        condition = " AND ".join(where)
        conn = self.conn()
        if level == "raw":
            cursor = conn.execute(
                "SELECT t.seq, t.time, points.name, t.value, t.quality FROM raw AS t "
                f"JOIN points ON points.id = t.point WHERE {condition} ORDER BY t.time, t.seq",
                params,
            )
            return (Sample(s, t, p, v, QUALITIES[q]) for s, t, p, v, q in cursor)
        cursor = conn.execute(
            "SELECT t.time, points.name, t.count, t.min, t.max, t.avg, t.delta "
            f"FROM {level} AS t JOIN points ON points.id = t.point WHERE {condition} "
            "ORDER BY t.time, points.name",
            params,
        )
        end_of = calendar.end
        return (
            Interval(float(t), float(end_of(level, t)), p, c, lo, hi, avg, d)
            for t, p, c, lo, hi, avg, d in cursor
        )

    def tariffs(
        self,
        name: str,
        start: float | None,
        end: float | None,
        level: str,
        points: str | Iterable[str] | None,
        calendar: Calendar,
    ) -> Iterator[TariffInterval]:
        """Per-tariff rows of logger `name` at `level` (not raw), in time order."""
        if level not in LEVELS[1:]:
            raise ValueError(f"tariffs are consolidated per {', '.join(LEVELS[1:])}, not {level!r}")
        found = self._where(name, start, end, points)
        if found is None:
            return iter(())
        where, params = found
        cursor = self.conn().execute(
            "SELECT t.time, points.name, t.tariff, t.delta, t.cost FROM tariffs AS t "
            f"JOIN points ON points.id = t.point WHERE {' AND '.join(where)} AND t.level = ? "
            "ORDER BY t.time, points.name, t.tariff",
            [*params, level],
        )
        end_of = calendar.end
        return (
            TariffInterval(float(t), float(end_of(level, t)), p, tariff, d, c)
            for t, p, tariff, d, c in cursor
        )

    # -- overview --------------------------------------------------------------------------------
    def overview(self) -> dict[str, dict[str, Any]]:
        """Per logger stored: sequence marks, first and last raw sample time, point count and
        feeds. Uses indexes only (no counting of raw rows, which could be millions)."""
        if not self.exists():
            return {}
        conn = self.conn()
        out: dict[str, dict[str, Any]] = {}
        for lid, name, kind, timezone, last_seq, consolidated in conn.execute(
            "SELECT id, name, kind, timezone, last_seq, consolidated_seq FROM loggers ORDER BY name"
        ).fetchall():
            # Two queries, not min() and max() in one: each alone is a single index lookup.
            (first,) = conn.execute("SELECT min(time) FROM raw WHERE logger = ?", (lid,)).fetchone()
            (last,) = conn.execute("SELECT max(time) FROM raw WHERE logger = ?", (lid,)).fetchone()
            (npoints,) = conn.execute(
                "SELECT count(*) FROM points WHERE logger = ?", (lid,)
            ).fetchone()
            feeds = [
                {"source": s, "source_id": sid, "hwm": hwm, "updated": upd}
                for s, sid, hwm, upd in conn.execute(
                    "SELECT source, source_id, hwm, updated FROM feeds WHERE logger = ?", (lid,)
                )
            ]
            out[name] = {
                "kind": kind,
                "timezone": timezone,
                "last_seq": last_seq,
                "consolidated_seq": consolidated,
                "first": first,
                "last": last,
                "points": npoints,
                "feeds": feeds,
            }
        return out
