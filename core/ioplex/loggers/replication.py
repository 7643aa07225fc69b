"""Replicated loggers: feeding a local logger from an I/O server's `replicate` hook.

A feed polls ``ioserver.replicate(logger, source_id, since=<high-water mark>, limit)`` every
interval while the instance is online, again at once while a full batch comes back, and
stores the rows idempotently (`Store.write_replicated`). The high-water mark lives in the
database (``feeds.hwm``) and moves in the transaction that stores the rows, so it survives
restarts and never passes a row that was not committed.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import IoplexError
from ..points import Quality
from ..supervisor import describe

if TYPE_CHECKING:
    from .logger import DataLogger
    from .service import DataLoggers

log = logging.getLogger("ioplex.loggers")

MAX_RETRY_DELAY = 600.0
"""Failed polls back off from the poll interval, doubling, up to this many seconds (or the
interval itself, if longer)."""

Row = tuple[int, float, str, Any, str]


class ReplicatedRows(list):
    """What a `replicate` hook may return instead of a plain list: the rows, plus the
    identity of the remote logger database they come from (its ``store_id``).

    When the identity changes, the remote database was replaced or restored and its seqs
    started again: the feed logs it once, replicates that database from its beginning and
    skips the samples it already holds, so there is neither a gap nor a duplicate.
    """

    def __init__(self, rows: Any = (), store: str | None = None) -> None:
        super().__init__(rows)
        self.store = store


class ReplicationError(IoplexError):
    """A `replicate` hook returned something that is not a batch of rows."""


def check_rows(rows: Any, since: int, limit: int) -> tuple[list[Row], int]:
    """Validate a `replicate` result; return (rows newer than `since`, rows returned).

    Raises ReplicationError naming the first bad row and what is wrong with it; nothing of a
    batch with a bad row is stored.
    """
    if rows is None:
        return [], 0
    if isinstance(rows, str | bytes | dict) or not hasattr(rows, "__iter__"):
        raise ReplicationError(
            f"replicate returned {type(rows).__name__}; expected a sequence of rows "
            "(seq, time, point, value, quality)"
        )
    rows = list(rows)
    if len(rows) > limit:
        raise ReplicationError(f"replicate returned {len(rows)} rows, more than limit={limit}")
    out: list[Row] = []
    for i, row in enumerate(rows):
        try:
            seq, t, point, value, quality = row
        except (TypeError, ValueError):
            raise ReplicationError(
                f"row {i}: expected (seq, time, point, value, quality), got {row!r}"
            ) from None
        if isinstance(seq, bool) or not isinstance(seq, int) or seq <= 0:
            raise ReplicationError(f"row {i}: seq must be a positive integer, got {seq!r}")
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise ReplicationError(
                f"row {i} (seq {seq}): time must be seconds since the epoch, got {t!r}"
            )
        if not isinstance(point, str) or not point:
            raise ReplicationError(
                f"row {i} (seq {seq}): point must be a non-empty string, got {point!r}"
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ReplicationError(f"row {i} (seq {seq}): value must be a scalar, got {value!r}")
        try:
            quality = Quality(quality).value
        except ValueError:
            raise ReplicationError(
                f"row {i} (seq {seq}): quality must be one of "
                f"{', '.join(q.value for q in Quality)}, got {quality!r}"
            ) from None
        if seq > since:  # rows at or below the mark are already stored
            out.append((seq, float(t), point, value, quality))
    return out, len(rows)


class Feed:
    """One source replicating into one local logger."""

    def __init__(self, logger: DataLogger, source: str, source_id: str, interval: float) -> None:
        self.logger = logger
        self.source = source
        """The I/O server instance that replicates."""
        self.source_id = source_id
        """The remote logger's id."""
        self.interval = interval
        self.id: int | None = None
        """The ``feeds`` row id, once the feed has run."""
        self.hwm: int | None = None
        """The high-water mark: the largest remote seq stored, once known."""
        self.store: str | None = None
        """The remote database's identity, when the source reports one."""
        self.generation = 0
        """How many times the remote database was seen replaced (see `ReplicatedRows`)."""
        self.stored = 0
        self.polls = 0
        self.failures = 0
        self.last_error: str | None = None
        self.running = False

    def __repr__(self) -> str:
        return f"<Feed {self.source}:{self.source_id} -> {self.logger.id} hwm={self.hwm}>"

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_id": self.source_id,
            "interval": self.interval,
            "hwm": self.hwm,
            "store": self.store,
            "generation": self.generation,
            "stored": self.stored,
            "polls": self.polls,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def retry_delay(self) -> float:
        """After `failures` consecutive failures: the interval, doubling, capped."""
        cap = max(self.interval, MAX_RETRY_DELAY)
        return min(cap, self.interval * 2 ** min(self.failures - 1, 30))

    def _what(self) -> str:
        return (
            f"data logger {self.logger.id!r}: replication from I/O server {self.source!r} "
            f"(remote logger {self.source_id!r})"
        )

    async def run(self, loggers: DataLoggers) -> None:
        """Poll until cancelled. Ends early only when the source can never replicate."""
        self.running = True
        try:
            await self._run(loggers)
        finally:
            self.running = False

    async def _run(self, loggers: DataLoggers) -> None:
        state = self.logger._state
        assert state is not None
        self.id, self.hwm, self.store, self.generation = await loggers._write(
            loggers._store.register_feed, state, self.source, self.source_id
        )
        io = loggers.host.ioservers.get(self.source) if loggers.host is not None else None
        if io is None:
            self.last_error = f"unknown I/O server {self.source!r}"
            log.error("%s cannot start: %s", self._what(), self.last_error)
            return
        if io.driver is None:  # its factory failed: it will not come back while the host runs
            self.last_error = f"I/O server {self.source!r} failed to start ({io.detail})"
            log.error("%s cannot start: %s", self._what(), self.last_error)
            return
        if not io.implements("replicate"):
            self.last_error = f"I/O server {self.source!r} ({io.type}) does not implement replicate"
            log.error("%s cannot start: %s", self._what(), self.last_error)
            return
        while True:
            await io.wait_online()
            try:
                await self.poll(loggers, io)
            except Exception as exc:  # noqa: BLE001 - retried with backoff
                self.failures += 1
                self.last_error = describe(exc)
                delay = self.retry_delay()
                log.warning(
                    "%s failed: %s; retry %d in %.1f s",
                    self._what(),
                    self.last_error,
                    self.failures,
                    delay,
                )
            else:
                if self.failures:
                    log.info("%s works again", self._what())
                self.failures = 0
                self.last_error = None
                delay = self.interval
            await anyio.sleep(delay)

    async def poll(self, loggers: DataLoggers, io: Any) -> int:
        """Fetch and store until a batch comes back short; return how many rows were new."""
        state = self.logger._state
        assert state is not None and self.id is not None and self.hwm is not None
        limit = loggers.replicate_limit
        new = 0
        while True:
            since = self.hwm
            answer = await io.replicate(self.logger.id, self.source_id, since, limit)
            store = getattr(answer, "store", None)
            if store is not None and store != self.store:
                restart = self.store is not None
                if restart:
                    log.warning(
                        "%s: the remote logger database was replaced or restored (store %s, "
                        "was %s); replicating it again from its beginning, skipping samples "
                        "already held",
                        self._what(),
                        store,
                        self.store,
                    )
                self.generation = await loggers._write(
                    loggers._store.set_feed_store, self.id, store, restart
                )
                self.store = store
                if restart:
                    self.hwm = 0
                    continue  # this batch was asked after the old mark: ask again from 0
            rows, returned = check_rows(answer, since, limit)
            if rows:
                stored, self.hwm = await loggers._write(
                    loggers._store.write_replicated, state, self.id, rows, self.generation
                )
                new += stored
                self.stored += stored
                self.logger.recorded += stored
            self.polls += 1
            if returned < limit or self.hwm <= since:  # short batch, or no progress
                return new
