"""The data loggers' SQLite database: its schema and every write to it.

One database, ``<data_dir>/loggers.db``, holds every logger (docs/loggers.md describes each
table). Exactly one `Store` writes to it, through one connection that is only ever used by one
thread at a time: the service runs every method here through
``anyio.to_thread.run_sync(..., limiter=CapacityLimiter(1))``. Readers (queries, the CLI,
any SQLite tool) use their own connections; WAL lets them read while the host writes.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A committed transaction survives
the process being killed (its WAL frames are in the OS's cache); a power cut may lose the last
few transactions but never corrupts the file.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import IoplexError
from ..points import Quality
from .calendar import Calendar
from .consolidate import Consolidator, PointState
from .settings import LEVELS, LoggerSettings

try:  # a lock file keeps a second host from writing the same database
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("ioplex.loggers")

DATABASE = "loggers.db"
SCHEMA_VERSION = 2
"""1: the first release. 2: time-weighted intervals (area, covered), nullable min/max, point
holds and counter suspects, tariffs."""
QUALITIES: tuple[Quality, ...] = (Quality.GOOD, Quality.STALE, Quality.BAD)
"""Qualities by their code in the database (``raw.quality``; the ``qualities`` table)."""
QUALITY_CODES: dict[str, int] = {q.value: i for i, q in enumerate(QUALITIES)}
INTERVAL_LEVELS = LEVELS[1:]

# raw and the interval tables are written with explicit DDL rather than sqlite-utils'
# `create`, which cannot declare WITHOUT ROWID tables or generated columns:
# - raw is clustered on (logger, seq): recording appends at the end of each logger's range,
#   and `samples_after` (what replication serves) and consolidation (which resumes after a
#   seq) are single range scans, with no separate rowid b-tree to maintain on every insert.
# - an interval table is clustered on (point, time), the key every consolidation upsert
#   looks up; `avg` is a generated column so SQL tools see it without storing it.
RAW_DDL = """
CREATE TABLE IF NOT EXISTS raw (
    logger INTEGER NOT NULL REFERENCES loggers(id),
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    point INTEGER NOT NULL REFERENCES points(id),
    value REAL,
    quality INTEGER NOT NULL DEFAULT 0 REFERENCES qualities(code),
    feed INTEGER REFERENCES feeds(id),
    origin INTEGER,
    PRIMARY KEY (logger, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS raw_logger_time ON raw (logger, time);
CREATE UNIQUE INDEX IF NOT EXISTS raw_feed_origin ON raw (feed, origin) WHERE feed IS NOT NULL;
"""
INTERVAL_DDL = """
CREATE TABLE IF NOT EXISTS {level} (
    logger INTEGER NOT NULL REFERENCES loggers(id),
    point INTEGER NOT NULL REFERENCES points(id),
    time INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL,
    max REAL,
    delta REAL,
    area REAL NOT NULL DEFAULT 0,
    covered REAL NOT NULL DEFAULT 0,
    avg REAL GENERATED ALWAYS AS (
        CASE WHEN covered > 0 THEN area / covered WHEN count > 0 THEN sum / count END
    ) VIRTUAL,
    PRIMARY KEY (point, time)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {level}_logger_time ON {level} (logger, time);
"""
TARIFFS_DDL = """
CREATE TABLE IF NOT EXISTS tariffs (
    logger INTEGER NOT NULL REFERENCES loggers(id),
    level TEXT NOT NULL,
    point INTEGER NOT NULL REFERENCES points(id),
    time INTEGER NOT NULL,
    tariff TEXT NOT NULL,
    delta REAL NOT NULL,
    cost REAL NOT NULL,
    PRIMARY KEY (point, level, time, tariff)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tariffs_logger_level_time ON tariffs (logger, level, time);
"""
UPSERT_TARIFF = """
INSERT INTO tariffs (logger, level, point, time, tariff, delta, cost) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (point, level, time, tariff) DO UPDATE SET
    delta = delta + excluded.delta, cost = cost + excluded.cost
"""
ISO_TIME = "strftime('%Y-%m-%dT%H:%M:%fZ', {}, 'unixepoch')"
SAMPLES_VIEW = f"""
SELECT loggers.name AS logger, raw.seq, raw.time, {ISO_TIME.format("raw.time")} AS utc,
       points.name AS point, raw.value, qualities.name AS quality, feeds.source AS source,
       raw.origin
FROM raw
JOIN loggers ON loggers.id = raw.logger
JOIN points ON points.id = raw.point
JOIN qualities ON qualities.code = raw.quality
LEFT JOIN feeds ON feeds.id = raw.feed
"""
INTERVAL_VIEW = """
SELECT loggers.name AS logger, {level}.time, {iso} AS utc, points.name AS point,
       {level}.count, {level}.min, {level}.max, {level}.avg, {level}.delta, {level}.covered
FROM {level}
JOIN loggers ON loggers.id = {level}.logger
JOIN points ON points.id = {level}.point
"""
VIEWS = {"raw": "samples", "minute": "minutes", "hour": "hours", "day": "days", "month": "months"}
"""The view over each level's table that shows names and ISO times instead of ids."""

INSERT_RAW = "INSERT INTO raw (logger, seq, time, point, value, quality) VALUES (?, ?, ?, ?, ?, ?)"
ORIGIN_SPAN = 1 << 40
"""Replicated rows keep their remote seq in ``raw.origin`` as ``generation * ORIGIN_SPAN +
seq``: each replaced or restored remote database (a new store id) opens a new generation, so
its seqs, which start again at 1, never collide with the ones already held."""
HAS_SAMPLE = "SELECT 1 FROM raw WHERE logger = ? AND time = ? AND point = ? LIMIT 1"
INSERT_REPLICATED = (
    "INSERT OR IGNORE INTO raw (logger, seq, time, point, value, quality, feed, origin) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_INTERVAL = """
INSERT INTO {level} (logger, point, time, count, sum, min, max, delta, area, covered)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (point, time) DO UPDATE SET
    count = count + excluded.count,
    sum = sum + excluded.sum,
    min = CASE WHEN min IS NULL OR excluded.min < min THEN excluded.min ELSE min END,
    max = CASE WHEN max IS NULL OR excluded.max > max THEN excluded.max ELSE max END,
    delta = delta + excluded.delta,
    area = area + excluded.area,
    covered = covered + excluded.covered
"""
POINT_COLUMNS = {"held": float, "held_time": float, "suspect": float, "suspect_time": float}
"""Added to ``points`` in version 2: consolidation's memory of each point (`PointState`)."""


ROWS_PER_INSERT = 4096
"""Rows per multi-row INSERT at most; fewer when the SQLite build allows fewer than 6 times as
many bound parameters (the default limit is 32766, 999 before SQLite 3.32)."""


@functools.lru_cache(maxsize=64)
def _insert_statement(rows: int) -> str:
    return "INSERT INTO raw (logger, seq, time, point, value, quality) VALUES " + ",".join(
        ["(?,?,?,?,?,?)"] * rows
    )


def to_number(value: Any) -> float | None:
    """What a logger records for a point value: numbers as they are, bool as 0/1, a string
    that reads as a number (``"21.5"``) as that number, and None for anything else (other
    strings, None, NaN, infinities)."""
    cls = value.__class__
    if cls is float:
        return value if value - value == 0.0 else None  # NaN and ±inf give NaN here
    if cls is int or cls is bool:
        return float(value)
    if cls is str or isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number - number == 0.0 else None
    if isinstance(value, int | float):
        return to_number(float(value))
    return None


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the database. Read-only ones never create or change anything."""
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0, check_same_thread=False
        )
        conn.execute("PRAGMA query_only = ON")
        return conn
    # check_same_thread=False: the store's calls run in anyio's worker threads, one at a time
    # (the service's CapacityLimiter(1)), not always in the same thread.
    return sqlite3.connect(path, timeout=30.0, check_same_thread=False)


@dataclass
class LoggerState:
    """What the writer keeps in memory about one logger between transactions."""

    id: int
    name: str
    last_seq: int
    consolidated_seq: int
    points: dict[str, int] = field(default_factory=dict)
    """Point name -> ``points.id``."""
    point_states: dict[int, PointState] = field(default_factory=dict)
    """Consolidation's memory of each point (held value, counter baseline and suspect)."""
    carried: float = 0.0
    """Held values are credited up to here (``loggers.carried_until``)."""
    newest: float = 0.0
    """The newest sample time seen: the horizon of loggers fed by replication."""
    restart_seq: int | None = None
    """Local loggers: the last seq before this start. Holds end once consolidation passes it:
    the time the host was down is not averaged."""


class Store:
    """The writer. Every method is blocking; call them in a worker thread, one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite_utils.Database | None = None
        self._lock_file: Any = None
        self._rows_per_insert = ROWS_PER_INSERT
        self.store_id: str | None = None
        """This database's identity, created with it: a replica that sees a different one
        knows the database was replaced or restored (see `Feed`)."""
        self.set_aside: list[tuple[str, str, str]] = []
        """Samples that could not be stored, as (logger, point, reason), since the caller
        last took them: their batches committed without them."""

    # -- opening -------------------------------------------------------------------------------
    def open(self) -> None:
        """Open (creating if needed) the database, take the writer's lock, create the schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            conn = connect(self.path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self.db = sqlite_utils.Database(conn, execute_plugins=False)
            params = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._rows_per_insert = max(1, min(ROWS_PER_INSERT, params // 6))
            self._create_schema()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_file = open(lock_path, "a+")  # noqa: SIM115 - held open: the lock
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise IoplexError(
                f"{self.path} is already being written by another ioplex host "
                f"(lock {lock_path} is held); two hosts cannot share a data_dir"
            ) from None

    def _migrate(self) -> None:
        """Bring a version 1 database to version 2 in one transaction: the interval tables
        are rebuilt with the time-weighting columns (rows already consolidated keep their
        sample mean as their average: they have no time weighting to show)."""
        conn = self.conn
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version != 1:
            if version > SCHEMA_VERSION:
                raise IoplexError(
                    f"{self.path} has schema version {version}, newer than this ioplex knows "
                    f"({SCHEMA_VERSION}); upgrade ioplex"
                )
            return
        log.info(
            "data loggers: upgrading %s from schema version 1 to %d", self.path, SCHEMA_VERSION
        )
        try:
            conn.execute("BEGIN")
            for view in VIEWS.values():  # views follow renamed tables: drop, recreate after
                conn.execute(f"DROP VIEW IF EXISTS {view}")
            for level in INTERVAL_LEVELS:
                conn.execute(f"DROP INDEX IF EXISTS {level}_logger_time")
                conn.execute(f"ALTER TABLE {level} RENAME TO {level}_v1")
                for statement in INTERVAL_DDL.format(level=level).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {level} (logger, point, time, count, sum, min, max, delta) "
                    f"SELECT logger, point, time, count, sum, min, max, delta FROM {level}_v1"
                )
                conn.execute(f"DROP TABLE {level}_v1")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _create_schema(self) -> None:
        db = self.db
        assert db is not None
        self._migrate()
        db["loggers"].create(
            {
                "id": int,
                "name": str,
                "kind": str,
                "timezone": str,
                "levels": str,
                "settings": str,
                "last_seq": int,
                "consolidated_seq": int,
                "created": float,
                "updated": float,
            },
            pk="id",
            not_null={"name", "kind", "timezone", "last_seq", "consolidated_seq"},
            defaults={"last_seq": 0, "consolidated_seq": 0},
            if_not_exists=True,
        )
        db["loggers"].create_index(["name"], "loggers_name", unique=True, if_not_exists=True)
        db["points"].create(
            {"id": int, "logger": int, "name": str, "last_value": float},
            pk="id",
            not_null={"logger", "name"},
            foreign_keys=[("logger", "loggers", "id")],
            if_not_exists=True,
        )
        db["points"].create_index(
            ["logger", "name"], "points_logger_name", unique=True, if_not_exists=True
        )
        db["feeds"].create(
            {
                "id": int,
                "logger": int,
                "source": str,
                "source_id": str,
                "hwm": int,
                "updated": float,
            },
            pk="id",
            not_null={"logger", "source", "source_id", "hwm"},
            defaults={"hwm": 0},
            foreign_keys=[("logger", "loggers", "id")],
            if_not_exists=True,
        )
        db["feeds"].create_index(
            ["logger", "source", "source_id"],
            "feeds_logger_source",
            unique=True,
            if_not_exists=True,
        )
        db["qualities"].create({"code": int, "name": str}, pk="code", if_not_exists=True)
        db["qualities"].insert_all(
            ({"code": i, "name": q.value} for i, q in enumerate(QUALITIES)), replace=True
        )
        db.executescript(RAW_DDL)
        db.executescript(TARIFFS_DDL)
        for level in INTERVAL_LEVELS:
            db.executescript(INTERVAL_DDL.format(level=level))
        db.create_view(VIEWS["raw"], SAMPLES_VIEW, ignore=True)
        for level in INTERVAL_LEVELS:
            sql = INTERVAL_VIEW.format(level=level, iso=ISO_TIME.format(f"{level}.time"))
            db.create_view(VIEWS[level], sql, ignore=True)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Added after version 1 shipped: created in place in older databases.
        feeds = db["feeds"]
        if "store" not in feeds.columns_dict:
            feeds.add_column("store", str)
        if "generation" not in feeds.columns_dict:
            feeds.add_column("generation", int, not_null_default=0)
        points = db["points"]
        for column, kind in POINT_COLUMNS.items():
            if column not in points.columns_dict:
                points.add_column(column, kind)
        if "carried_until" not in db["loggers"].columns_dict:
            db["loggers"].add_column("carried_until", float, not_null_default=0)
        db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
        row = db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        if row is None:
            self.store_id = str(uuid.uuid4())
            db["meta"].insert({"key": "store_id", "value": self.store_id})
        else:
            self.store_id = row[0]

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.conn.close()  # the last connection out checkpoints the WAL
            finally:
                self.db = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self.db is None:
            raise IoplexError("the data logger database is not open")
        return self.db.conn

    # -- loggers, points, feeds ----------------------------------------------------------------
    def register(self, settings: LoggerSettings, local: bool = True) -> LoggerState:
        """Find or create the logger's row, store its current settings, load its state.
        `local`: fed by this host's points only (not replication): holds end at the
        restart."""
        assert self.db is not None
        table = self.db["loggers"]
        now = time.time()
        record = {
            "kind": settings.kind,
            "timezone": Calendar(settings.timezone).name,
            "levels": json.dumps(list(settings.levels)),
            "settings": json.dumps(settings.as_dict()),
            "updated": now,
        }
        found = list(table.rows_where("name = ?", [settings.id]))
        if found:
            row = found[0]
            if row["kind"] != settings.kind:
                log.warning(
                    "data logger %r changed kind from %s to %s: intervals consolidated before "
                    "the change keep the old meaning",
                    settings.id,
                    row["kind"],
                    settings.kind,
                )
            table.update(row["id"], record)
            lid = row["id"]
        else:
            lid = table.insert({"name": settings.id, "created": now, **record}).last_pk
        state = self._load(lid, settings.id)
        if local:
            state.restart_seq = state.last_seq
        return state

    def _load(self, lid: int, name: str) -> LoggerState:
        conn = self.conn
        last_seq, consolidated, carried = conn.execute(
            "SELECT last_seq, consolidated_seq, carried_until FROM loggers WHERE id = ?", (lid,)
        ).fetchone()
        state = LoggerState(lid, name, last_seq, consolidated, carried=carried or 0.0)
        (newest,) = conn.execute("SELECT max(time) FROM raw WHERE logger = ?", (lid,)).fetchone()
        state.newest = newest or 0.0
        for pid, pname, base, held, held_time, suspect, suspect_time in conn.execute(
            "SELECT id, name, last_value, held, held_time, suspect, suspect_time FROM points "
            "WHERE logger = ?",
            (lid,),
        ):
            state.points[pname] = pid
            if base is not None or held is not None or suspect is not None:
                state.point_states[pid] = PointState(
                    held, held_time or 0.0, base, suspect, suspect_time or 0.0
                )
        return state

    def reload(self, state: LoggerState) -> None:
        """Reset `state` from the database, after a failed transaction left it ahead."""
        if self.conn.execute("SELECT 1 FROM loggers WHERE id = ?", (state.id,)).fetchone() is None:
            return  # not a row of ours (a damaged state): nothing to reset it from
        fresh = self._load(state.id, state.name)
        state.last_seq, state.consolidated_seq = fresh.last_seq, fresh.consolidated_seq
        state.points, state.point_states = fresh.points, fresh.point_states
        state.carried, state.newest = fresh.carried, fresh.newest

    def _point_id(self, state: LoggerState, name: str) -> int:
        pid = state.points.get(name)
        if pid is None:
            pid = self.conn.execute(
                "INSERT INTO points (logger, name) VALUES (?, ?)", (state.id, name)
            ).lastrowid
            state.points[name] = pid  # type: ignore[assignment]
        return pid  # type: ignore[return-value]

    def register_feed(
        self, state: LoggerState, source: str, source_id: str
    ) -> tuple[int, int, str | None, int]:
        """The feed's id, high-water mark, remote store id and generation, creating its row
        at mark 0 the first time."""
        assert self.db is not None
        found = list(
            self.db["feeds"].rows_where(
                "logger = ? AND source = ? AND source_id = ?", [state.id, source, source_id]
            )
        )
        if found:
            row = found[0]
            return row["id"], row["hwm"], row["store"], row["generation"] or 0
        pk = (
            self.db["feeds"]
            .insert(
                {
                    "logger": state.id,
                    "source": source,
                    "source_id": source_id,
                    "hwm": 0,
                    "updated": time.time(),
                    "generation": 0,
                }
            )
            .last_pk
        )
        return pk, 0, None, 0

    def set_feed_store(self, feed: int, store: str, restart: bool) -> int:
        """Remember the remote store id of a feed; with `restart` (the id changed) start a new
        generation at mark 0. Returns the generation."""
        conn = self.conn
        with conn:
            if restart:
                conn.execute(
                    "UPDATE feeds SET store = ?, hwm = 0, generation = generation + 1, "
                    "updated = ? WHERE id = ?",
                    (store, time.time(), feed),
                )
            else:
                conn.execute("UPDATE feeds SET store = ? WHERE id = ?", (store, feed))
            (generation,) = conn.execute(
                "SELECT generation FROM feeds WHERE id = ?", (feed,)
            ).fetchone()
        return generation or 0

    # -- recording -------------------------------------------------------------------------------
    def write_samples(self, batches: Sequence[tuple[LoggerState, Sequence[Any]]]) -> int:
        """Record point changes, all in one transaction; return how many. Each batch is the
        flat list of its events' fields: name, value, old value, time, quality, name, ...

        Rows go in with the raw sqlite3 ``executemany`` rather than sqlite-utils'
        ``insert_all``, which builds dicts and multi-row statements per row: this is the hot
        path (bench/bench_loggers.py compares it with a bare executemany).
        """
        conn = self.conn
        good = Quality.GOOD
        codes = QUALITY_CODES
        number = to_number
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        try:
            conn.execute("BEGIN")
            for state, events in batches:
                lid = state.id
                ids = state.points
                seq = state.last_seq
                fields = iter(events)
                for name, value, _old, t, quality in zip(*[fields] * 5, strict=True):
                    pid = ids.get(name)
                    if pid is None:
                        pid = self._point_id(state, name)
                    try:
                        recorded = number(value)
                    except (OverflowError, ValueError, TypeError) as exc:
                        # One sample that cannot be stored never stops the batch.
                        self.set_aside.append((state.name, name, f"{type(exc).__name__}: {exc}"))
                        continue
                    seq += 1
                    append(
                        (
                            lid,
                            seq,
                            t,
                            pid,
                            recorded,
                            0 if quality is good else codes.get(quality, 2),
                        )
                    )
                state.last_seq = seq
                conn.execute("UPDATE loggers SET last_seq = ? WHERE id = ?", (seq, lid))
            self._insert_raw(rows)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback([state for state, _ in batches])
            raise
        return len(rows)

    def _insert_raw(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert raw rows with multi-row ``INSERT ... VALUES (...), (...)`` statements of up
        to `ROWS_PER_INSERT` rows.

        Why not ``executemany``: it releases and retakes the GIL around every row's
        ``sqlite3_step``, and while the event loop is busy each retake waits for the loop
        thread to drop the GIL (up to the 5 ms switch interval): recording slowed to a crawl
        exactly when changes poured in. One statement per few thousand rows releases the GIL
        once for all of them, binds the same exact doubles, and parses once (the statement
        stays in sqlite3's cache).
        """
        conn = self.conn
        size = self._rows_per_insert
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            conn.execute(_insert_statement(len(chunk)), list(chain.from_iterable(chunk)))

    def write_replicated(
        self,
        state: LoggerState,
        feed: int,
        rows: Iterable[tuple[int, float, str, Any, str]],
        generation: int = 0,
    ) -> tuple[int, int]:
        """Store replicated rows ``(remote seq, time, point, value, quality)`` once each.

        A row whose remote seq this feed already stored is skipped (the unique index on
        ``(feed, origin)``). From the second generation on (the remote database was replaced
        or restored), a row is also skipped when the logger already holds a sample of its
        point at its time: a restored database repeats rows held before. The feed's mark
        moves, in the same transaction, to the highest remote seq now stored. Returns (rows
        newly stored, high-water mark).
        """
        conn = self.conn
        now = time.time()
        stored = 0
        base = generation * ORIGIN_SPAN
        try:
            conn.execute("BEGIN")
            (hwm,) = conn.execute("SELECT hwm FROM feeds WHERE id = ?", (feed,)).fetchone()
            seq = state.last_seq
            for origin, t, point, value, quality in rows:
                hwm = max(hwm, origin)
                pid = self._point_id(state, point)
                if generation and conn.execute(HAS_SAMPLE, (state.id, t, pid)).fetchone():
                    continue
                try:
                    recorded = to_number(value)
                except (OverflowError, ValueError, TypeError) as exc:
                    self.set_aside.append((state.name, point, f"{type(exc).__name__}: {exc}"))
                    recorded = None  # kept as a row without a number: its seq stays in order
                cursor = conn.execute(
                    INSERT_REPLICATED,
                    (
                        state.id,
                        seq + 1,
                        t,
                        pid,
                        recorded,
                        QUALITY_CODES[quality],
                        feed,
                        base + origin,
                    ),
                )
                if cursor.rowcount:  # 0 when the row was a duplicate: no seq is spent
                    seq += 1
                    stored += 1
            state.last_seq = seq
            conn.execute("UPDATE loggers SET last_seq = ? WHERE id = ?", (seq, state.id))
            conn.execute("UPDATE feeds SET hwm = ?, updated = ? WHERE id = ?", (hwm, now, feed))
            conn.execute("COMMIT")
        except BaseException:
            self._rollback([state])
            raise
        return stored, hwm

    def _rollback(self, states: Iterable[LoggerState]) -> None:
        if self.db is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        for state in states:
            self.reload(state)

    def feed_mark(self, feed: int) -> int:
        (hwm,) = self.conn.execute("SELECT hwm FROM feeds WHERE id = ?", (feed,)).fetchone()
        return hwm

    # -- consolidation ---------------------------------------------------------------------------
    def consolidate(
        self,
        state: LoggerState,
        settings: LoggerSettings,
        calendar: Calendar,
        limit: int,
        horizon: float | None = None,
    ) -> tuple[int, bool]:
        """Consolidate the next `limit` raw samples after the logger's consolidation mark, in
        one transaction that also moves the mark. Once caught up, credit held values up to
        `horizon` (None: the newest sample's time, for replicated loggers), at most about
        `limit` interval rows per pass.

        Returns (raw samples taken, whether more holds remain to be credited).
        """
        conn = self.conn
        levels = [level for level in settings.levels if level != "raw"]
        if not levels:  # nothing to consolidate; the mark still guards retention
            if state.consolidated_seq != state.last_seq:
                conn.execute(
                    "UPDATE loggers SET consolidated_seq = ? WHERE id = ?",
                    (state.last_seq, state.id),
                )
                conn.commit()
                state.consolidated_seq = state.last_seq
            return 0, False
        if state.restart_seq is not None and state.consolidated_seq >= state.restart_seq:
            self._end_holds(state)
        upper = state.last_seq if state.restart_seq is None else state.restart_seq
        rows = conn.execute(
            "SELECT seq, point, time, value, quality FROM raw WHERE logger = ? AND seq > ? "
            "AND seq <= ? ORDER BY seq LIMIT ?",
            (state.id, state.consolidated_seq, upper, limit),
        ).fetchall()
        restart_done = (
            state.restart_seq is not None and bool(rows) and rows[-1][0] >= state.restart_seq
        )
        try:
            c = Consolidator(
                settings.kind,
                levels,
                calendar,
                state.point_states,
                carried=state.carried,
                wrap=settings.wrap,
                reset_below=settings.reset_below,
                hold=settings.hold,
                tariffs=settings.tariffs,
            )
            c.add(rows)
            if rows:
                newest = max(row[2] for row in rows)
                state.newest = max(state.newest, newest)
            more = False
            carried = state.carried
            if restart_done:
                # The host was down after the last sample: nothing is held across that time.
                for ps in state.point_states.values():
                    ps.held = None
                c.dirty.update(state.point_states)
            elif len(rows) < limit and state.restart_seq is None:
                edge = state.newest if horizon is None else horizon
                until = c.carry_bound(edge, limit)
                if until is not None:
                    c.carry(until)
                    carried = c.carried
                    more = c.floor(edge) > until
            if not rows and not c.buckets and not c.dirty:
                if carried != state.carried:
                    conn.execute(
                        "UPDATE loggers SET carried_until = ? WHERE id = ?", (carried, state.id)
                    )
                    conn.commit()
                    state.carried = carried
                return 0, more
            self._write_consolidated(state, settings, c, rows, carried)
        except BaseException:
            self._rollback([state])
            raise
        if rows:
            state.consolidated_seq = rows[-1][0]
        state.carried = carried
        if restart_done:
            state.restart_seq = None
        return len(rows), more or restart_done

    def _end_holds(self, state: LoggerState) -> None:
        """The samples from before this start are consolidated: the time the host was down
        is not averaged, so no value is held across it."""
        conn = self.conn
        conn.execute("UPDATE points SET held = NULL WHERE logger = ?", (state.id,))
        conn.commit()
        for ps in state.point_states.values():
            ps.held = None
        state.restart_seq = None

    def _write_consolidated(
        self,
        state: LoggerState,
        settings: LoggerSettings,
        c: Consolidator,
        rows: list[Any],
        carried: float,
    ) -> None:
        conn = self.conn
        lid = state.id
        conn.execute("BEGIN")
        for level, buckets in c.result().items():
            conn.executemany(
                UPSERT_INTERVAL.format(level=level),
                [(lid, point, start, *agg) for (point, start), agg in buckets.items()],
            )
        if settings.tariffs is not None:
            tariffs = settings.tariffs.tariffs
            for level, slots in c.tariff_result().items():
                conn.executemany(
                    UPSERT_TARIFF,
                    [
                        (
                            lid,
                            level,
                            point,
                            start,
                            tariffs[slot].name,
                            delta,
                            delta * tariffs[slot].rate,
                        )
                        for (point, start, slot), (delta,) in slots.items()
                    ],
                )
        states = state.point_states
        conn.executemany(
            "UPDATE points SET last_value = ?, held = ?, held_time = ?, suspect = ?, "
            "suspect_time = ? WHERE id = ?",
            [
                (ps.base, ps.held, ps.held_time, ps.suspect, ps.suspect_time, pid)
                for pid in c.dirty
                if (ps := states.get(pid)) is not None
            ],
        )
        mark = rows[-1][0] if rows else state.consolidated_seq
        conn.execute(
            "UPDATE loggers SET consolidated_seq = ?, carried_until = ? WHERE id = ?",
            (mark, carried, lid),
        )
        conn.execute("COMMIT")

    # -- retention -------------------------------------------------------------------------------
    def expire(self, state: LoggerState, level: str, cutoff: float, limit: int) -> int:
        """Delete at most `limit` rows of `level` older than `cutoff` (seconds since the
        epoch), in one transaction; return how many. Raw samples not yet consolidated are
        kept whatever their age."""
        conn = self.conn
        if level == "raw":
            cursor = conn.execute(
                "DELETE FROM raw WHERE logger = ? AND seq IN (SELECT seq FROM raw "
                "WHERE logger = ? AND time < ? AND seq <= ? LIMIT ?)",
                (state.id, state.id, cutoff, state.consolidated_seq, limit),
            )
        elif level in INTERVAL_LEVELS:
            cursor = conn.execute(
                f"DELETE FROM {level} WHERE (point, time) IN (SELECT point, time FROM {level} "
                "WHERE logger = ? AND time < ? LIMIT ?)",
                (state.id, cutoff, limit),
            )
            deleted = cursor.rowcount
            conn.execute(
                "DELETE FROM tariffs WHERE (point, level, time, tariff) IN (SELECT point, level, "
                "time, tariff FROM tariffs WHERE logger = ? AND level = ? AND time < ? LIMIT ?)",
                (state.id, level, cutoff, limit),
            )
            conn.commit()
            return deleted
        else:
            raise ValueError(f"unknown level {level!r}")
        conn.commit()
        return cursor.rowcount
