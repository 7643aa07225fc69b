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

    ``count`` numeric samples were seen (0 for an interval a held value spans without a
    sample); ``avg`` is time-weighted (each value counts for as long as it was held), or the
    samples' mean where nothing was held yet. ``min`` and ``max`` include the value held
    into the interval. ``delta`` is the counter's increase over the interval for counter
    loggers, None for range loggers (a counter's min/max/avg are of its readings).
    """

    time: float
    end: float
    point: str
    count: int
    min: float
    max: float
    avg: float
    delta: float | None


class TariffInterval(NamedTuple):
    """A counter's increase and its cost over one interval ``[time, end)`` within one tariff
    (time slot): the interval's ``delta`` split by the tariff in force at each reading."""

    time: float
    end: float
    point: str
    tariff: str
    delta: float
    cost: float
