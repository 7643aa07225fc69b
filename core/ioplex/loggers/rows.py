"""The rows data logger queries return. Times are seconds since the epoch (float, UTC)."""

from __future__ import annotations

from typing import NamedTuple

from ..points import Quality


class Sample(NamedTuple):
    """One raw sample: a recorded change of one point.

    ``seq`` is the logger's sequence number (it only grows and is never reused, even after
    retention deletes rows; it may have gaps). ``value`` is None for a non-numeric value.
    """

    seq: int
    time: float
    point: str
    value: float | None
    quality: Quality


class Interval(NamedTuple):
    """One point's aggregate over one consolidation interval ``[time, end)``.

    ``count`` numeric samples were seen; ``avg`` is ``sum / count``. ``delta`` is the
    counter's increase over the interval for counter loggers, None for range loggers (whose
    min/max/avg are the point's; a counter's min/max/avg are of its readings).
    """

    time: float
    end: float
    point: str
    count: int
    min: float
    max: float
    avg: float
    delta: float | None
