"""The host's data loggers (``host.loggers``) and the service that keeps them: batched
recording, incremental consolidation, chunked retention and replication feeds.

Threading: SQLite calls block, so every write runs in a worker thread through
``anyio.to_thread.run_sync`` with a ``CapacityLimiter(1)``: one writer at a time on the one
connection, the event loop never waits on the disk, cancellation and errors flow through
anyio like any other await, and there is no thread or queue of our own to start and stop. A
dedicated writer thread would save a thread hop per batch, which at one batch a second (or
one per consolidation chunk) is not worth its own life cycle.
"""

from __future__ import annotations

import difflib
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
from anyio.abc import TaskGroup

from ..errors import IoplexError
from ..points import PointEvent, printable
from ..serving.ratelog import RateLimitedLog
from .logger import EVENT_FIELDS, DataLogger
from .reader import Reader
from .replication import Feed
from .settings import LoggerSettings, parse, unmatched_patterns
from .store import DATABASE, Store

if TYPE_CHECKING:
    from ..host import Host

log = logging.getLogger("ioplex.loggers")
T = TypeVar("T")

MAX_RETRY_PAUSE = 60.0
"""The longest pause between retries of a failing write, in seconds."""


class UnknownLoggerError(IoplexError, KeyError):
    """No data logger has this id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataLoggers(Mapping[str, DataLogger]):
    """The host's data loggers: a read-only mapping of logger id to `DataLogger`.

    As an async context manager (the host enters it before creating I/O servers and leaves it
    after they have stopped) it opens the database, records changes of the loggers' points in
    batches, consolidates and expires in the background, runs replication feeds, and on the
    way out writes whatever is still queued, shielded from cancellation.
    """

    flush_interval: float = 1.0
    """Seconds between batches: about how much a SIGKILL loses (a clean stop loses nothing)."""
    _batch_size = 20_000
    _max_pending = 1_000_000
    consolidate_interval: float = 5.0
    """Seconds between consolidation passes."""
    stop_consolidate_time: float = 5.0
    """At most this many seconds of consolidation on a clean stop."""
    consolidate_chunk: int = 50_000
    """Raw samples consolidated per transaction."""
    retention_interval: float = 60.0
    """Seconds between retention passes."""
    expire_chunk: int = 5_000
    """Rows deleted per transaction: retention never holds the writer for long."""
    replicate_limit: int = 1000
    """Rows asked of a `replicate` hook per call."""

    def __init__(
        self,
        settings: Mapping[str, LoggerSettings] | None = None,
        *,
        data_dir: Path | str = ".",
        clock: Callable[[], float] | None = None,
        host: Host | None = None,
    ) -> None:
        self.host = host
        self.path = Path(data_dir) / DATABASE
        """The database file."""
        self.clock: Callable[[], float] = clock or time.time
        self.reader = Reader(self.path)
        self._loggers: dict[str, DataLogger] = {
            id: DataLogger(s, self) for id, s in (settings or {}).items()
        }
        self._store = Store(self.path)
        self._limiter: anyio.CapacityLimiter | None = None
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self._wakeup: anyio.Event | None = None
        self._flush_lock: anyio.Lock | None = None
        self._feeds_started = False
        self._feeds_wanted = False
        self._opened = False
        self._reported_drops: dict[str, int] = {}
        self.batch_observers: list[Callable[[float, int], None]] = []
        """Called as ``(seconds, rows)`` after each committed batch (for metrics: the web
        plugin's ``ioplex_logger_batch_seconds``). Must be quick and must not raise."""
        self.set_aside = 0
        """Samples that could not be stored (a value no column can hold), since the start."""
        self._set_aside_log = RateLimitedLog(log, interval=60.0)
        self.health = "ok"
        """``ok``, or why the last write failed (shown as ``system.loggers``)."""
        self._flushed_until: float | None = None
        """Every sample stamped before this time is committed (or set aside): where local
        loggers' held values are credited up to."""
        for logger in self._loggers.values():
            s = logger.settings
            if s.source is not None:
                logger.feeds.append(Feed(logger, s.source, s.source_id or s.id, s.pollinterval))

    @classmethod
    def for_host(cls, host: Host) -> DataLoggers:
        """The loggers of `host`'s configuration (already validated), in its data directory,
        timed by its clock."""
        settings: dict[str, LoggerSettings] = {}
        zone = host.config.host.timezone
        for id, table in host.config.loggers.items():
            parsed, problems = parse(id, table, default_timezone=zone)
            if parsed is None:  # config.load reports these; a hand-made Config may not have
                raise IoplexError("; ".join(str(p) for p in problems))
            settings[id] = parsed
            for warning in unmatched_patterns(parsed, host.config.ioservers):
                log.warning("%s", warning)
        return cls(settings, data_dir=host.data_dir, clock=host.clock.time, host=host)

    @property
    def batch_size(self) -> int:
        """A logger with this many queued samples triggers a batch before the interval is
        up."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = value
        self._thresholds()

    @property
    def max_pending(self) -> int:
        """Queued samples per logger beyond which new ones are dropped (and counted in
        `DataLogger.dropped`): memory stays bounded if the disk cannot keep up."""
        return self._max_pending

    @max_pending.setter
    def max_pending(self, value: int) -> None:
        self._max_pending = value
        self._thresholds()

    @property
    def _batch_fields(self) -> int:
        return min(self._batch_size, self._max_pending) * EVENT_FIELDS

    @property
    def _max_fields(self) -> int:
        return self._max_pending * EVENT_FIELDS

    def _thresholds(self) -> None:
        for logger in getattr(self, "_loggers", {}).values():
            logger._threshold = self._batch_fields

    def _full(self, logger: DataLogger) -> None:
        """A logger's queue reached its threshold: wake the writer, or, past `max_pending`,
        drop what came last. Until the next batch is taken only the cap is checked, so a
        writer that lags costs the hot path nothing more."""
        pending = logger._pending
        cap = self._max_fields
        if len(pending) > cap:
            logger.dropped += (len(pending) - cap) // EVENT_FIELDS
            del pending[cap:]
        else:
            self._wake()
        logger._threshold = cap + 1

    # -- the mapping ---------------------------------------------------------------------------
    def __getitem__(self, id: str) -> DataLogger:
        try:
            return self._loggers[id]
        except KeyError:
            raise UnknownLoggerError(self._unknown(id)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._loggers)

    def __len__(self) -> int:
        return len(self._loggers)

    def _unknown(self, id: str) -> str:
        hint = difflib.get_close_matches(id, list(self._loggers), n=1)
        msg = f"unknown data logger {id!r}"
        if hint:
            return msg + f"; did you mean {hint[0]!r}?"
        return msg + f"; defined: {', '.join(self._loggers) or 'none'}"

    @property
    def store_id(self) -> str | None:
        """The identity of this host's logger database (created with it), once running:
        replicas use it to notice a replaced or restored database."""
        return self._store.store_id

    @property
    def running(self) -> bool:
        return self._stack is not None

    # -- replication -------------------------------------------------------------------------
    def add_feed(self, local_id: str, source: str, source_id: str, interval: float) -> Feed:
        """Feed the local logger `local_id` from I/O server `source`'s remote logger
        `source_id`, polled every `interval` seconds. For drivers, typically from their
        factory. Adding the same feed twice returns the first (with the new interval).

        Raises UnknownLoggerError if `local_id` is not defined: a replicated logger is
        defined locally like any other (its levels and retention are its own).
        """
        if local_id not in self._loggers:
            raise UnknownLoggerError(
                f"cannot replicate {source}:{source_id} into data logger {local_id!r}: it is "
                f"not defined; add a [loggers.{_toml_key(local_id)}] table to the "
                f"configuration ({self._unknown(local_id).split('; ', 1)[1]})"
            )
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ValueError(f"replication interval must be positive seconds, got {interval!r}")
        if self.host is not None and source not in self.host.ioservers:
            raise IoplexError(
                f"cannot replicate into data logger {local_id!r}: unknown I/O server {source!r}"
            )
        logger = self._loggers[local_id]
        for feed in logger.feeds:
            if (feed.source, feed.source_id) == (source, source_id):
                feed.interval = float(interval)
                return feed
        feed = Feed(logger, source, source_id, float(interval))
        logger.feeds.append(feed)
        if self._feeds_started and self._tg is not None:
            self._tg.start_soon(feed.run, self, name=f"ioplex logger feed {local_id}")
        return feed

    def start_feeds(self) -> None:
        """Start every feed; the host calls this once its I/O servers exist, so a feed always
        finds its source. Feeds added later start at once."""
        self._feeds_wanted = True
        if self._tg is None or self._feeds_started or not self._opened:
            return  # started once the database is open
        self._feeds_started = True
        for logger in self._loggers.values():
            for feed in logger.feeds:
                if not feed.running:
                    self._tg.start_soon(feed.run, self, name=f"ioplex logger feed {logger.id}")

    # -- life cycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise IoplexError("the data loggers are already running")
        if not self._loggers:
            self._stack = AsyncExitStack()  # nothing to record: no database either
            return self
        self._limiter = anyio.CapacityLimiter(1)
        self._wakeup = anyio.Event()
        self._flush_lock = anyio.Lock()
        self._feeds_started = self._feeds_wanted = self._opened = False
        opened = await self._open()
        stack = AsyncExitStack()
        await stack.__aenter__()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        for logger in self._loggers.values():
            if logger.points and self.host is not None:
                if logger.settings.on_change:
                    logger._listener = self.host.points.listen(logger._on_change, *logger.points)
                if logger.settings.every is not None:
                    self._tg.start_soon(
                        self._sample_loop,
                        logger,
                        name=f"ioplex logger {logger.id}: periodic samples",
                    )
        if opened:
            self._start_work()
        else:
            self._tg.start_soon(self._open_loop, name="ioplex loggers: opening the database")
        self._stack = stack
        if opened:
            log.info("data loggers started: %s (%s)", ", ".join(self._loggers), self.path)
        return self

    async def _open(self) -> bool:
        """Open the database and register the loggers; False (logged, `health` says why)
        when the disk refuses: a full or read-only disk must not keep the host from
        starting, and its samples queue (within `max_pending`) until the database opens."""
        try:
            await self._write(self._store.open)
            try:
                for logger in self._loggers.values():
                    logger._state = await self._write(
                        self._store.register, logger.settings, logger.settings.source is None
                    )
                    logger.recorded = 0
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._write(self._store.close)
                raise
        except (sqlite3.Error, OSError) as exc:
            damaged = isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                exc, sqlite3.OperationalError
            )
            self.health = f"failing: cannot open {self.path}: {exc}"
            self._set_aside_log.error(
                "open",
                "data loggers: cannot open %s, samples are queued and it is retried: %s%s",
                self.path,
                exc,
                " (the file is damaged or not a logger database: move it aside and a new one "
                "is created)"
                if damaged
                else "",
            )
            return False
        self._opened = True
        self.health = "ok"
        return True

    async def _open_loop(self) -> None:
        pause = 1.0
        while True:
            await anyio.sleep(pause)
            if await self._open():
                log.warning("data loggers: %s is open now; recording resumes", self.path)
                self._start_work()
                return
            pause = min(MAX_RETRY_PAUSE, pause * 2)

    def _start_work(self) -> None:
        """The database is open: record, maintain, and run the feeds if the host asked."""
        assert self._tg is not None
        self._tg.start_soon(self._flush_loop, name="ioplex loggers: recording")
        self._tg.start_soon(self._maintain_loop, name="ioplex loggers: consolidation, retention")
        if self._feeds_wanted:
            self.start_feeds()

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is None or self._tg is None:
            return
        try:
            self._tg.cancel_scope.cancel()
            await stack.__aexit__(None, None, None)
        finally:
            self._tg = None
            self._feeds_started = False
            # Whatever is queued is written even when the host is being cancelled.
            with anyio.CancelScope(shield=True):
                for logger in self._loggers.values():
                    if logger._listener is not None:
                        logger._listener.close()
                        logger._listener = None
                if self._opened or await self._open():
                    await self._final_flush()
                else:
                    lost = sum(logger.pending for logger in self._loggers.values())
                    log.error("data loggers: %s never opened: %d samples lost", self.path, lost)
                self._opened = False
                self.reader.close()
                log.info("data loggers stopped")

    async def _final_flush(self) -> None:
        try:
            await self.flush()
        except Exception:
            lost = sum(logger.pending for logger in self._loggers.values())
            log.exception("data loggers: the final batch failed: %d samples lost", lost)
        # Bring the intervals up to date for readers while the host is down; a long
        # backlog is left for the next start rather than holding up the stop.
        with anyio.move_on_after(self.stop_consolidate_time):
            try:
                await self.consolidate()
            except Exception as exc:  # noqa: BLE001 - the loggers retry; the host goes on
                log.error("data loggers: consolidation at stop failed: %s", exc)
        await self._write(self._store.close)

    # -- the work ------------------------------------------------------------------------------
    async def _write(self, func: Callable[..., T], *args: Any) -> T:
        """Run a Store method in a worker thread, one at a time."""
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def flush(self) -> int:
        """Write every queued sample now; return how many were written.

        All loggers' samples go in one transaction. If that fails, each logger is written
        on its own, so a failure that concerns one logger never holds up the others; the
        samples of a logger that still fails are queued again (within `max_pending`) and the
        first error is raised. A sample that no column can hold is set aside (counted and
        logged, at most once a minute per point) and its batch commits without it.
        """
        if self._flush_lock is None:
            raise IoplexError("the data loggers are not running")
        if not self._opened:
            raise IoplexError(f"the data loggers' database is not open ({self.health})")
        async with self._flush_lock:  # batches commit in the order they were taken
            taken_at = self.clock()
            batches = [(lg, lg._take()) for lg in self._loggers.values() if lg._pending]
            if not batches:
                self._flushed_until = taken_at
                return 0
            try:
                written = await self._write_batches(batches)
            except Exception as first:
                written, failed = 0, []
                for lg, batch in batches if len(batches) > 1 else ():
                    try:
                        written += await self._write_batches([(lg, batch)])
                    except Exception:  # noqa: BLE001 - the loggers retry; the host goes on
                        failed.append((lg, batch))
                for lg, batch in failed if len(batches) > 1 else batches:
                    lg._give_back(batch)
                self.health = f"failing: {first}"
                raise
            except BaseException:
                for lg, batch in batches:
                    lg._give_back(batch)
                raise
            self.health = "ok"
            self._flushed_until = taken_at
            return written

    async def _write_batches(self, batches: list[tuple[DataLogger, list[Any]]]) -> int:
        started = time.perf_counter()
        try:
            written = await self._write(
                self._store.write_samples, [(lg._state, batch) for lg, batch in batches]
            )
        finally:
            self._report_set_aside()
        for lg, batch in batches:
            lg.recorded += len(batch) // EVENT_FIELDS
        elapsed = time.perf_counter() - started
        for observer in self.batch_observers:
            observer(elapsed, written)
        return written

    def _report_set_aside(self) -> None:
        aside, self._store.set_aside = self._store.set_aside, []
        self.set_aside += len(aside)
        for logger, point, reason in aside:
            self._set_aside_log.warning(
                f"{logger}\0{point}",
                "data logger %r: a sample of %s cannot be stored and was set aside (%s)",
                logger,
                printable(point),
                reason,
            )

    async def _flush_loop(self) -> None:
        pause = 0.0
        while True:
            assert self._wakeup is not None
            with anyio.move_on_after(max(self.flush_interval, pause)):
                await self._wakeup.wait()
            self._wakeup = anyio.Event()
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the loggers retry; the host goes on
                # Retried with a growing pause (a full disk does not free itself in a
                # second); samples keep queuing within max_pending meanwhile.
                pause = min(MAX_RETRY_PAUSE, max(1.0, pause * 2))
                self._set_aside_log.error(
                    "flush",
                    "data loggers: writing a batch failed, retrying in %.0f s: %s",
                    pause,
                    exc,
                )
            else:
                pause = 0.0
            self._report_drops()

    def _report_drops(self) -> None:
        for logger in self._loggers.values():
            if logger.dropped != self._reported_drops.get(logger.id, 0):
                log.warning(
                    "data logger %r has dropped %d samples so far: more than %d were waiting "
                    "to be written (the disk cannot keep up)",
                    logger.id,
                    logger.dropped,
                    self.max_pending,
                )
                self._reported_drops[logger.id] = logger.dropped

    async def consolidate(self) -> int:
        """Consolidate every raw sample recorded since the last pass, in chunks of
        `consolidate_chunk` (one transaction each), then credit held values up to the
        horizon (see docs/loggers.md, "Consolidation"); return how many samples were taken.

        The horizon of a logger fed by this host's points is the time of the last flush
        (every sample before it is written); a replicated logger's is its newest sample.
        """
        total = 0
        for logger in self._loggers.values():
            if logger._state is None:
                continue
            # Not flushed yet: no time is known to be complete (0 credits nothing).
            horizon = None if logger.feeds else (self._flushed_until or 0.0)
            while True:
                n, more = await self._write(
                    self._store.consolidate,
                    logger._state,
                    logger.settings,
                    logger.calendar,
                    self.consolidate_chunk,
                    horizon,
                )
                total += n
                if n < self.consolidate_chunk and not more:
                    break
        return total

    async def _sample_loop(self, logger: DataLogger) -> None:
        """Periodic samples (``every``): each period, at multiples of it since the epoch, the
        current value and quality of every point matching the logger's patterns, whether or
        not it changed (openHAB's ``everyMinute`` strategy). Points declared later are
        included from the next period on."""
        assert self.host is not None and logger.settings.every is not None
        period = logger.settings.every
        patterns = logger.points
        registry = self.host.points
        while True:
            now = self.clock()
            due = (now // period + 1) * period
            await anyio.sleep(due - now)
            for point in registry.match(*patterns):  # stamped with the period's nominal time
                logger._on_change(
                    PointEvent(point.name, point.value, point.value, due, point.quality)
                )

    async def expire(self, now: float | None = None) -> int:
        """Delete rows older than each level's retention, at `now` (default: the host clock),
        `expire_chunk` rows per transaction; return how many."""
        now = self.clock() if now is None else now
        total = 0
        for logger in self._loggers.values():
            if logger._state is None:
                continue
            for level in logger.levels:
                keep = logger.settings.retention.get(level)
                if keep is None:
                    continue
                while True:
                    n = await self._write(
                        self._store.expire, logger._state, level, now - keep, self.expire_chunk
                    )
                    total += n
                    if n < self.expire_chunk:
                        break
        return total

    async def _maintain_loop(self) -> None:
        since_expire = float("inf")
        while True:
            await anyio.sleep(self.consolidate_interval)
            since_expire += self.consolidate_interval
            try:
                await self.consolidate()
                if since_expire >= self.retention_interval:
                    since_expire = 0.0
                    await self.expire()
            except Exception as exc:  # noqa: BLE001 - the loggers retry; the host goes on
                log.error("data loggers: consolidation or retention failed, will retry: %s", exc)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'
