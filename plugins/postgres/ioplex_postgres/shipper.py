"""The shipping service: this host's data-logger rows into PostgreSQL, exactly once.

Raw samples: per logger, the mark (the highest local seq shipped) lives in ``<prefix>marks``
and moves in the same transaction as the rows it covers. A pass reads the mark (or knows it
from its own last commit), reads and encodes the samples after it from the local database
(the next batch in a worker thread while this one is copied), makes sure their partitions
exist (a short transaction of its own, so DDL never holds the rows' transaction), then in
one transaction locks the mark row, checks it has not moved (an older connection of the same
host), copies the rows in and moves the mark. A crash or an outage on either side before the
commit ships nothing; after it, the rows are in and the mark says so. Nothing is lost as
long as the local retention still holds the rows.

Consolidated intervals change after they are first written (the current interval, late
samples), so they are upserted: a pass re-sends the intervals from the earliest one that can
have changed since the last pass (the one holding the earliest newly consolidated sample, or
the one holding the local consolidation horizon) onward.

Failures (PostgreSQL down, a timeout) raise out of `run`; the host's supervisor logs each
distinct failure once (then once per 10 minutes), shows ``retrying`` at
``system.plugins.postgres`` and restarts the service with its backoff.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import anyio
import psycopg
from ioplex import FatalError
from ioplex.loggers import DataLogger, parse_duration
from ioplex.loggers.calendar import Calendar
from psycopg import sql

from . import copyformat, source
from .tables import (
    LIST_PARTITIONS,
    Names,
    create_partition,
    lock_key,
    partition_start,
    partitions_of,
    schema_statements,
)

log = logging.getLogger("ioplex.plugin.postgres")
MAINTENANCE_INTERVAL = 3600.0
"""Seconds between retention passes over the raw table's partitions."""


class ShippingError(Exception):
    """Shipping failed; the message names the plugin, what was being done and why (never the
    DSN's password)."""


class StoreMismatch(ShippingError, FatalError):
    """PostgreSQL holds marks of this host name from another local logger database: two
    hosts share a name, or the local database was replaced. Retrying cannot fix it, so the
    service stops (reported once) until the operator decides."""


def describe_dsn(dsn: str) -> str:
    """host:port/dbname of a DSN, for logs: never its password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable dsn)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"


@dataclass
class Mark:
    """One row of ``<prefix>marks``."""

    store: str
    seq: int
    horizon: float
    resume: float | None
    walking: bool
    rows: int


class RawBatch(NamedTuple):
    """One batch of raw samples, read and encoded in a worker thread."""

    after: int
    rows: list[source.RawRow]
    keep: list[source.RawRow]
    """The rows within the PostgreSQL retention (all of them without one)."""
    points: set[str]
    partitions: set[datetime]
    payload: bytes | None
    """The COPY data, when every point's series id was known when it was read."""


@dataclass
class LevelStatus:
    """What `Shipper.status` reports for one logger and level."""

    mark: int = 0
    rows: int = 0
    """Rows shipped (raw) or upserted (intervals) since PostgreSQL first saw this logger."""
    behind: int = 0
    """Raw: 0 when the last pass shipped everything; else the size of its full batch (at
    least that many samples wait)."""


class Shipper:
    """Ships the loggers matching ``loggers`` to the database of ``dsn``; `run` until
    cancelled. One connection, one transaction at a time."""

    def __init__(self, host: Any, settings: dict[str, Any]) -> None:
        self.host = host
        self.settings = settings
        self.name: str = settings["host"] or host.name
        self.names = Names(settings["table_prefix"])
        self.where = describe_dsn(settings["dsn"])
        self.retention = parse_duration(settings["retention"])
        self.batch: int = settings["batch_size"]
        self.timeout: float = settings["timeout"]
        self.state = "starting"
        """starting, connecting, shipping (behind), idle (caught up)."""
        self.error: str | None = None
        """The last failure, until a pass succeeds again."""
        self.levels: dict[tuple[str, str], LevelStatus] = {}
        self.shipped = 0
        """Raw rows shipped by this process."""
        self.passes = 0
        self.idle_pass = -1
        """The number of the last pass that found nothing left to ship."""
        self.caught_up = anyio.Event()
        """Set at the end of a pass that found nothing left to ship."""
        self._partitions: set[datetime] = set()
        self._series: dict[str, dict[str, int]] = {}
        self._known: dict[tuple[str, str], int] = {}
        """Raw marks this connection committed: the next batch starts there without asking
        (the transaction still checks the mark under its row lock)."""
        self._ahead: dict[str, RawBatch] = {}
        self._level_marks: dict[tuple[str, str], Mark] = {}
        self._names: dict[str, dict[int, str]] = {}
        self._names_key = 0
        self._next_maintenance = 0.0
        self._wake = anyio.Event()

    def status(self) -> dict[str, Any]:
        """Where shipping stands: state, last error, marks and rows per logger and level."""
        return {
            "state": self.state,
            "error": self.error,
            "host": self.name,
            "database": self.where,
            "shipped": self.shipped,
            "passes": self.passes,
            "loggers": {f"{lg}/{lv}": vars(st) for (lg, lv), st in sorted(self.levels.items())},
        }

    def wake(self) -> None:
        """Start the next pass now instead of after `interval`."""
        self._wake.set()

    def loggers(self) -> list[DataLogger]:
        patterns = self.settings["loggers"]
        return [
            lg
            for lid, lg in self.host.loggers.items()
            if any(fnmatch.fnmatchcase(lid, p) for p in patterns)
        ]

    # -- the loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        self.state = "connecting"
        conn = await self._connect()
        async with conn:
            await self._transact(self._create_schema, conn, what="creating the tables")
            self._partitions.clear()
            self._series.clear()
            self._known.clear()
            self._ahead.clear()
            self._level_marks.clear()
            log.info(
                "postgres: shipping data loggers %s as host %r to %s",
                ", ".join(lg.id for lg in self.loggers()) or "(none yet)",
                self.name,
                self.where,
            )
            while True:
                busy = await self.ship_once(conn)
                self.error = None
                if self.retention is not None and self.host.time() >= self._next_maintenance:
                    await self._transact(self._expire, conn, what="dropping old partitions")
                    self._next_maintenance = self.host.time() + MAINTENANCE_INTERVAL
                if not busy:
                    self.state = "idle"
                    self.idle_pass = self.passes
                    self.caught_up.set()
                    with anyio.move_on_after(self.settings["interval"]):
                        await self._wake.wait()
                    self._wake = anyio.Event()
                else:
                    self.state = "shipping"
                    self.caught_up = anyio.Event() if self.caught_up.is_set() else self.caught_up

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            with anyio.fail_after(self.timeout + 1):
                return await psycopg.AsyncConnection.connect(self._conninfo())
        except TimeoutError:
            raise self._failed("connecting", f"no answer within {self.timeout:g} s") from None
        except psycopg.Error as exc:
            raise self._failed("connecting", _reason(exc)) from None

    def _conninfo(self) -> str:
        """The DSN with what the shipper needs where the DSN does not say otherwise: a
        connect timeout, TCP keepalives (a cut network is noticed in about a minute, by
        both sides, so a dead peer's transaction and row lock do not linger) and an
        application name (seen in pg_stat_activity)."""
        params = psycopg.conninfo.conninfo_to_dict(self.settings["dsn"])
        defaults = {
            "connect_timeout": max(2, math.ceil(self.timeout)),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "application_name": f"ioplex {self.name}"[:63],
        }
        for key, value in defaults.items():
            params.setdefault(key, value)
        return psycopg.conninfo.make_conninfo(**params)

    def _failed(self, what: str, reason: str) -> ShippingError:
        self.error = f"{what} (PostgreSQL at {self.where}): {reason}"
        self.state = "connecting"
        return ShippingError(f"postgres: {self.error}")

    async def _transact(self, func: Any, conn: Any, *args: Any, what: str) -> Any:
        """`func(conn, *args)` within the timeout; psycopg errors become `ShippingError`."""
        try:
            with anyio.fail_after(self.timeout):
                return await func(conn, *args)
        except Exception as exc:
            leaf = _leaf(exc)  # a task group (the read-ahead) wraps what fails within it
            if isinstance(leaf, TimeoutError):
                raise self._failed(what, f"no answer within {self.timeout:g} s") from None
            if isinstance(leaf, psycopg.Error):
                raise self._failed(what, _reason(leaf)) from None
            raise

    async def ship_once(self, conn: Any) -> bool:
        """One pass over every logger and level; True when a batch was full (more waits)."""
        store = self.host.loggers.store_id
        if store is None:  # the loggers have not opened their database yet
            return False
        busy = False
        for logger in self.loggers():
            levels = [lv for lv in self.settings["levels"] if lv in logger.levels]
            for level in levels:
                if level == "raw":
                    full = await self._transact(
                        self._ship_raw, conn, logger, store, what=f"shipping logger {logger.id!r}"
                    )
                else:
                    full = await self._transact(
                        self._ship_level,
                        conn,
                        logger,
                        level,
                        store,
                        what=f"shipping logger {logger.id!r} {level}",
                    )
                busy = busy or full
        self.passes += 1
        return busy

    # -- marks -----------------------------------------------------------------------------------
    async def _read_mark(
        self, conn: Any, logger: str, level: str, store: str, lock: bool = False
    ) -> Mark:
        query = sql.SQL(
            "SELECT store, seq, horizon, resume, walking, rows FROM {} "
            "WHERE host = %s AND logger = %s AND level = %s"
        ).format(self.names("marks"))
        if lock:
            query = query + sql.SQL(" FOR UPDATE")
        cur = await conn.execute(query, (self.name, logger, level))
        row = await cur.fetchone()
        if row is None:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (host, logger, level, store) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING"
                ).format(self.names("marks")),
                (self.name, logger, level, store),
            )
            cur = await conn.execute(query, (self.name, logger, level))
            row = await cur.fetchone()
        mark = Mark(*row)
        if mark.store != store:
            raise StoreMismatch(
                f"postgres: PostgreSQL at {self.where} holds history of host {self.name!r} "
                f"logger {logger!r} shipped from another logger database (store "
                f"{mark.store}; this host's is {store}). Either two hosts share the name "
                f"{self.name!r} (give each its own [plugins.postgres] host), or this host's "
                f"loggers.db was replaced: then delete its marks (DELETE FROM "
                f"{self.names.prefix}marks WHERE host = '{self.name}') to ship it anew; the "
                "rows already shipped stay"
            )
        status = self.levels.setdefault((logger, level), LevelStatus())
        status.mark, status.rows = mark.seq, mark.rows
        return mark

    async def _move_mark(
        self,
        conn: Any,
        logger: str,
        level: str,
        seq: int,
        rows: int,
        horizon: float = 0.0,
        resume: float | None = None,
        walking: bool = False,
    ) -> None:
        await conn.execute(
            sql.SQL(
                "UPDATE {} SET seq = %s, rows = rows + %s, horizon = %s, resume = %s, "
                "walking = %s, updated = now() "
                "WHERE host = %s AND logger = %s AND level = %s"
            ).format(self.names("marks")),
            (seq, rows, horizon, resume, walking, self.name, logger, level),
        )

    # -- raw -------------------------------------------------------------------------------------
    async def _ship_raw(self, conn: Any, logger: DataLogger, store: str) -> bool:
        key = (logger.id, "raw")
        after = self._known.get(key)
        if after is None:  # not shipped by this connection yet: read the mark
            async with conn.transaction():
                after = (await self._read_mark(conn, logger.id, "raw", store)).seq
        ahead = self._ahead.pop(logger.id, None)
        if ahead is not None and ahead.after == after:
            batch = ahead
        else:
            batch = await anyio.to_thread.run_sync(self._prepare, logger, after)
        status = self.levels[key]
        if not batch.rows:
            status.behind = 0
            return False
        needed = batch.partitions - self._partitions
        if needed:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (lock_key(self.names.prefix),)
                )
                for start in sorted(needed):
                    await conn.execute(
                        create_partition(self.names, start, self.settings["partition"])
                    )
            self._partitions |= needed
        full = len(batch.rows) >= self.batch
        last = batch.rows[-1].seq
        learned: dict[str, int] = {}
        async with anyio.create_task_group() as tg:
            if full:  # read the next batch from the local database while this one is copied
                tg.start_soon(self._read_ahead, logger, last)
            async with conn.transaction():
                now = await self._read_mark(conn, logger.id, "raw", store, lock=True)
                if now.seq != after:  # another process of this host name moved it
                    self._known.pop(key, None)
                    tg.cancel_scope.cancel()
                    return True
                payload = batch.payload
                if payload is None:  # points new to this connection: their series ids first
                    ids = await self._series_ids(conn, logger.id, batch.points, learned)
                    payload = await anyio.to_thread.run_sync(copyformat.raw_rows, batch.keep, ids)
                async with (
                    conn.cursor() as cur,
                    cur.copy(
                        sql.SQL(
                            "COPY {} (series, seq, time, value, quality) FROM STDIN (FORMAT BINARY)"
                        ).format(self.names("raw"))
                    ) as copy,
                ):
                    await copy.write(payload)
                await self._move_mark(conn, logger.id, "raw", last, len(batch.keep))
        self._known[key] = last
        self._series.setdefault(logger.id, {}).update(learned)
        self.shipped += len(batch.keep)
        status.mark, status.rows = last, now.rows + len(batch.keep)
        status.behind = len(batch.rows) if full else 0
        return full

    def _prepare(self, logger: DataLogger, after: int) -> RawBatch:
        """Read and encode the batch after `after` (in a worker thread): the samples, those
        within the retention, their partitions and points, and the COPY payload when every
        point's series id is known already (else it is built once they are)."""
        rows = source.raw_after(
            self.host.loggers.reader, logger, after, self.batch, self._local_names(logger)
        )
        cutoff = None if self.retention is None else self.host.time() - self.retention
        keep = rows if cutoff is None else [r for r in rows if r.time >= cutoff]
        points = {r.point for r in keep}
        known = dict(self._series.get(logger.id, {}))  # a copy: the loop may add to it
        payload = copyformat.raw_rows(keep, known) if points <= known.keys() else None
        return RawBatch(
            after,
            rows,
            keep,
            points,
            partitions_of((r.time for r in keep), self.settings["partition"]),
            payload,
        )

    async def _read_ahead(self, logger: DataLogger, after: int) -> None:
        self._ahead[logger.id] = await anyio.to_thread.run_sync(self._prepare, logger, after)

    def _local_names(self, logger: DataLogger) -> dict[int, str]:
        """The local database's point ids and names of one logger (filled by the reads),
        kept while the host's loggers and their database stay the same."""
        key = (id(self.host.loggers), logger.id)
        if self._names_key != key[0]:
            self._names.clear()
            self._names_key = key[0]
        return self._names.setdefault(logger.id, {})

    async def _series_ids(
        self, conn: Any, logger: str, points: set[str], learned: dict[str, int]
    ) -> dict[str, int]:
        """Series ids of the points, creating the missing ones in the current transaction
        (`learned` gets them; they join the cache only once it commits)."""
        known = self._series.setdefault(logger, {})
        missing = sorted(p for p in points if p not in known)
        if missing:
            # PostgreSQL text cannot hold NUL, which a point name recorded by hand may carry
            # (DataLogger.record takes any name): stored as U+FFFD, never a stalled batch.
            stored = {p.replace("\x00", "\ufffd"): p for p in missing}
            series = self.names("series")
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (host, logger, point) "
                    "SELECT %s, %s, unnest(%s::text[]) ON CONFLICT DO NOTHING"
                ).format(series),
                (self.name, logger, list(stored)),
            )
            cur = await conn.execute(
                sql.SQL(
                    "SELECT point, id FROM {} WHERE host = %s AND logger = %s AND point = ANY(%s)"
                ).format(series),
                (self.name, logger, list(stored)),
            )
            learned.update({stored[p]: i for p, i in await cur.fetchall()})
        return {**known, **learned}

    # -- consolidated levels -----------------------------------------------------------------
    async def _ship_level(self, conn: Any, logger: DataLogger, level: str, store: str) -> bool:
        key = (logger.id, level)
        mark = self._level_marks.get(key)
        if mark is None:  # not moved by this connection yet: read it
            async with conn.transaction():
                mark = await self._read_mark(conn, logger.id, level, store)
        progress = await anyio.to_thread.run_sync(source.progress, self.host.loggers.reader, logger)
        if progress is None:
            return False
        calendar: Calendar = logger.calendar
        if mark.resume is None:
            start = -math.inf
        elif (
            not mark.walking
            and progress.consolidated_seq == mark.seq
            and progress.carried_until == mark.horizon
        ):
            return False
        else:
            start = mark.resume
            earliest = await anyio.to_thread.run_sync(
                source.earliest_between,
                self.host.loggers.reader,
                logger,
                mark.seq,
                progress.consolidated_seq,
            )
            if earliest is not None:
                start = min(start, calendar.floor(level, earliest))
        rows, following = await anyio.to_thread.run_sync(
            source.intervals_from, logger, level, None if start == -math.inf else start, self.batch
        )
        learned: dict[str, int] = {}
        async with conn.transaction():
            now = await self._read_mark(conn, logger.id, level, store, lock=True)
            if (now.seq, now.horizon, now.resume) != (mark.seq, mark.horizon, mark.resume):
                self._level_marks.pop(key, None)
                return True
            if rows:
                ids = await self._series_ids(conn, logger.id, {r.point for r in rows}, learned)
                await self._upsert(conn, level, rows, ids)
            if following is not None:
                resume, walking = following, True
            elif progress.carried_until > 0:
                resume, walking = float(calendar.floor(level, progress.carried_until)), False
            else:
                resume = rows[-1].time if rows else (None if start == -math.inf else start)
                walking = False
            await self._move_mark(
                conn,
                logger.id,
                level,
                progress.consolidated_seq,
                len(rows),
                progress.carried_until,
                resume,
                walking,
            )
        self._level_marks[key] = Mark(
            store,
            progress.consolidated_seq,
            progress.carried_until,
            resume,
            walking,
            now.rows + len(rows),
        )
        self._series.setdefault(logger.id, {}).update(learned)
        status = self.levels[(logger.id, level)]
        status.mark, status.rows = progress.consolidated_seq, now.rows + len(rows)
        return following is not None

    async def _upsert(self, conn: Any, level: str, rows: list[Any], ids: dict[str, int]) -> None:
        def stamp(t: float) -> datetime:
            return datetime.fromtimestamp(t, UTC)

        def real(values: list[Any]) -> list[float | None]:
            return [None if v is None else float(v) for v in values]

        columns = (
            [ids[r.point] for r in rows],
            [stamp(r.time) for r in rows],
            [stamp(r.end) for r in rows],
            [int(r.count) for r in rows],
            real([r.min for r in rows]),
            real([r.max for r in rows]),
            real([r.avg for r in rows]),
            real([r.delta for r in rows]),
        )
        await conn.execute(
            sql.SQL(
                'INSERT INTO {} AS t (series, time, "end", count, min, max, avg, delta) '
                "SELECT * FROM unnest(%s::int8[], %s::timestamptz[], %s::timestamptz[], "
                "%s::int4[], %s::float8[], %s::float8[], %s::float8[], %s::float8[]) "
                'ON CONFLICT (series, time) DO UPDATE SET "end" = EXCLUDED."end", '
                "count = EXCLUDED.count, min = EXCLUDED.min, max = EXCLUDED.max, "
                "avg = EXCLUDED.avg, delta = EXCLUDED.delta "
                "WHERE (t.count, t.min, t.max, t.avg, t.delta) IS DISTINCT FROM "
                "(EXCLUDED.count, EXCLUDED.min, EXCLUDED.max, EXCLUDED.avg, EXCLUDED.delta)"
            ).format(self.names(level)),
            columns,
        )

    # -- schema and retention ----------------------------------------------------------------
    async def _create_schema(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.names.prefix),))
            for statement in schema_statements(self.names):
                await conn.execute(statement)

    async def _expire(self, conn: Any) -> None:
        """Drop the raw partitions wholly older than the retention."""
        assert self.retention is not None
        cutoff = self.host.time() - self.retention
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.names.prefix),))
            cur = await conn.execute(LIST_PARTITIONS, (self.names.prefix + "raw",))
            for name, bound in await cur.fetchall():
                end = _bound_end(bound)
                if end is not None and end.timestamp() <= cutoff:
                    await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                    self._partitions.discard(
                        partition_start(end.timestamp() - 1, self.settings["partition"])
                    )
                    log.info(
                        "postgres: dropped partition %s (rows before %s): older than the "
                        "retention of %s",
                        name,
                        end.isoformat(),
                        self.settings["retention"],
                    )


_TO = re.compile(r"TO \('([^']+)'\)")


def _bound_end(bound: str) -> datetime | None:
    """The upper bound of a partition, from ``pg_get_expr(relpartbound)``."""
    found = _TO.search(bound)
    if found is None:
        return None
    text = found.group(1)
    if re.search(r"[+-]\d\d$", text):
        text += ":00"
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        return None
    return end if end.tzinfo else end.replace(tzinfo=UTC)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _reason(exc: psycopg.Error) -> str:
    """A psycopg error as one line (libpq messages never include the password)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]
