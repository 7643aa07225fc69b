"""One data logger: what it records and how to query it (``host.loggers["energy"]``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from ..points import PointEvent, Quality, Value, check_name
from ..registry import Listener
from .calendar import Calendar
from .rows import Interval, Sample, TariffInterval
from .settings import LoggerSettings
from .store import LoggerState

if TYPE_CHECKING:
    from .replication import Feed
    from .service import DataLoggers

TimeArg = float | int | datetime | None
EVENT_FIELDS = 5
"""A PointEvent's fields: name, value, old_value, time, quality."""


def _seconds(value: TimeArg, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name}: a naive datetime is ambiguous; give it a tzinfo")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected seconds since the epoch or a datetime, got {value!r}")
    return float(value)


class DataLogger:
    """A named series of point values with its own consolidation levels and retention.

    While the host runs, every change of a point matching `points` is queued here and written
    by the service in the next batch (within about a second). Queries read what is committed:
    raw samples at once, consolidated intervals a few seconds later (the consolidation pass).
    """

    def __init__(self, settings: LoggerSettings, owner: DataLoggers) -> None:
        self.settings = settings
        self.id = settings.id
        self.calendar = Calendar(settings.timezone)
        """The logger's time zone (its own, the host's or the system's) and intervals."""
        self.feeds: list[Feed] = []
        """The replication feeds writing into this logger (config ``source`` and `add_feed`)."""
        self.recorded = 0
        """Samples committed since the host started (local and replicated)."""
        self.dropped = 0
        """Samples dropped because more than `DataLoggers.max_pending` waited to be written."""
        self._owner = owner
        self._pending: list[Any] = []
        self._threshold = owner._batch_fields
        self._state: LoggerState | None = None
        self._listener: Listener | None = None

    def __repr__(self) -> str:
        return f"<DataLogger {self.id} ({self.kind})>"

    @property
    def kind(self) -> str:
        """``range`` or ``counter``."""
        return self.settings.kind

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels this logger keeps, finest first: ``raw`` and some of minute, hour,
        day, month."""
        return self.settings.levels

    @property
    def points(self) -> tuple[str, ...]:
        """The point names and glob patterns it records."""
        return self.settings.points

    @property
    def pending(self) -> int:
        """Samples waiting for the next batch."""
        return len(self._pending) // EVENT_FIELDS

    # -- recording ---------------------------------------------------------------------------
    # Queued samples are kept as one flat list of the events' fields, five per sample, not as
    # a list of event tuples: at thousands of changes a second, a million live tuples would
    # make Python's cyclic garbage collector rescan them over and over (it halved recording
    # speed in bench/bench_loggers.py). `extend` copies the fields in one C call.
    def _on_change(self, event: PointEvent) -> None:
        """The registry listener, on the hot path: queue only; the service writes batches.

        A point that has no value yet and never had one (declared while its instance is
        offline) has nothing to record: its "bad" is not a sample."""
        if event[1] is None and event[2] is None and event[4] is Quality.BAD:
            return
        pending = self._pending
        pending.extend(event)
        if len(pending) >= self._threshold:
            self._owner._full(self)

    def record(
        self,
        point: str,
        value: Value,
        *,
        time: float | None = None,
        quality: Quality | str = Quality.GOOD,
    ) -> None:
        """Queue one sample of `point` as if it had changed, at `time` (default: now on the
        host clock): for importing history, and for values no point holds."""
        check_name(point, min_segments=1)  # what the registry would refuse, refused here too
        stamp = self._owner.clock() if time is None else float(time)
        self._on_change(PointEvent(point, value, None, stamp, Quality(quality)))

    def _take(self) -> list[Any]:
        """The queued samples' fields (name, value, old value, time, quality, name, ...)."""
        batch, self._pending = self._pending, []
        self._threshold = self._owner._batch_fields
        return batch

    def _give_back(self, batch: list[Any]) -> None:
        """Requeue a batch whose write failed, ahead of what arrived since, within the cap."""
        merged = batch + self._pending
        excess = len(merged) - self._owner._max_fields
        if excess > 0:
            self.dropped += excess // EVENT_FIELDS
            merged = merged[excess:]
        self._pending = merged

    # -- querying ------------------------------------------------------------------------------
    def iter_query(
        self,
        start: TimeArg = None,
        end: TimeArg = None,
        level: str = "raw",
        points: str | Iterable[str] | None = None,
    ) -> Iterator[Sample] | Iterator[Interval]:
        """Like `query`, but yields rows as they are read (for exports of any size)."""
        if level not in self.levels:
            raise ValueError(
                f"data logger {self.id!r} does not keep level {level!r}; "
                f"it keeps {', '.join(self.levels)}"
            )
        return self._owner.reader.query(
            self.id, _seconds(start, "start"), _seconds(end, "end"), level, points, self.calendar
        )

    def query(
        self,
        start: TimeArg = None,
        end: TimeArg = None,
        level: str = "raw",
        points: str | Iterable[str] | None = None,
    ) -> list[Sample] | list[Interval]:
        """Committed rows with ``start <= time < end`` (seconds since the epoch, UTC; None:
        unbounded), in time order, for the points matching `points` (names or glob patterns;
        None: all).

        `level` ``raw`` gives `Sample` rows ``(seq, time, point, value, quality)``; a
        consolidation level (minute, hour, day, month) gives `Interval` rows
        ``(time, end, point, count, min, max, avg, delta)``, ``time`` being the interval's
        start. This is a blocking read on its own read-only connection: quick for small
        ranges; from the event loop prefer ``await aquery(...)``.
        """
        return list(self.iter_query(start, end, level, points))  # type: ignore[arg-type]

    async def aquery(
        self,
        start: TimeArg = None,
        end: TimeArg = None,
        level: str = "raw",
        points: str | Iterable[str] | None = None,
    ) -> list[Sample] | list[Interval]:
        """`query` in a worker thread, so the event loop never waits on the disk."""
        return await anyio.to_thread.run_sync(self.query, start, end, level, points)

    def tariff_query(
        self,
        start: TimeArg = None,
        end: TimeArg = None,
        level: str = "day",
        points: str | Iterable[str] | None = None,
    ) -> list[TariffInterval]:
        """A counter logger's increase and cost per tariff (time slot) and interval:
        `TariffInterval` rows ``(time, end, point, tariff, delta, cost)``, for the levels it
        keeps, in time order. Empty for a logger without tariffs."""
        if level == "raw" or level not in self.levels:
            raise ValueError(
                f"data logger {self.id!r} has tariffs per {', '.join(self.levels[1:])}, "
                f"not {level!r}"
            )
        return list(
            self._owner.reader.tariffs(
                self.id,
                _seconds(start, "start"),
                _seconds(end, "end"),
                level,
                points,
                self.calendar,
            )
        )

    def samples_after(self, seq: int, limit: int) -> list[Sample]:
        """Committed raw samples with ``seq`` greater than `seq`, ascending, at most `limit`:
        what a replicating peer asks for with its high-water mark. One index range scan."""
        if limit <= 0:
            return []
        return self._owner.reader.samples_after(self.id, seq, limit)

    async def asamples_after(self, seq: int, limit: int) -> list[Sample]:
        """`samples_after` in a worker thread."""
        return await anyio.to_thread.run_sync(self.samples_after, seq, limit)

    def describe(self) -> dict[str, Any]:
        """Settings and live counters, for listings."""
        return {
            "id": self.id,
            **self.settings.as_dict(),
            "recorded": self.recorded,
            "dropped": self.dropped,
            "pending": self.pending,
            "feeds": [feed.describe() for feed in self.feeds],
        }
