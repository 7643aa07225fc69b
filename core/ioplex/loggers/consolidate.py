"""Consolidation math: raw samples into per-interval aggregates, for range and counter loggers.

Consolidation is incremental: each pass takes the raw samples recorded since the last pass
(in ``seq`` order) and *merges* their aggregates into the stored ones. Everything stored is
therefore mergeable: a count, a sum (the average is sum / count), a minimum, a maximum and,
for counters, the increase (delta). Merging is commutative, so replicated samples that arrive
late, long after their interval was first consolidated, still land in the right interval.

The average is the mean of the recorded samples, not a time-weighted mean: samples are
recorded on change, and a time-weighted mean is not mergeable when samples arrive out of
order, which replication makes routine.

Counters (energy meters and the like) record their cumulative reading; an interval's delta is
the sum of the increases between consecutive readings of a point, each credited to the
interval of the later reading. A reading lower than the one before is a reset or a wrap,
never a negative step (see `counter_increase`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Aggregate = list  # [count, sum, min, max, delta]; delta is None for range loggers
Buckets = dict[tuple[int, int], Aggregate]
"""Aggregates by (point id, interval start)."""


def counter_increase(previous: float | None, value: float, wrap: float | None = None) -> float:
    """How much a counter grew from `previous` to `value`.

    - The first reading of a point (no `previous`) counts nothing.
    - A reading lower than the previous one is a *wrap* when the counter has a modulus `wrap`
      (e.g. 65536 for a 16-bit register) and going round it is the shorter way (the increase
      is less than half the modulus): the increase is ``wrap - previous + value``.
    - Otherwise a lower reading is a *reset* (a restarted device or a replaced meter counting
      from zero again): the increase is the new reading itself, as Prometheus does.
    """
    if previous is None:
        return 0.0
    if value >= previous:
        return value - previous
    if wrap is not None:
        wrapped = wrap - previous + value
        if 0 <= wrapped < wrap / 2:
            return wrapped
    return value if value > 0 else 0.0


def aggregate_minutes(
    rows: Iterable[tuple[int, int, float, float | None]],
    kind: str,
    last: dict[int, float] | None = None,
    wrap: float | None = None,
    bucket: Callable[[int], int] | None = None,
) -> Buckets:
    """Aggregate raw rows ``(seq, point id, time, value)`` (in seq order) into minutes, or,
    with `bucket`, into the intervals `bucket` maps each minute's start to (a minute always
    lies within one hour, day or month, in any time zone with whole-minute offsets; each
    distinct minute is mapped once).

    Rows whose value is None (non-numeric samples) are skipped. For counters `last` holds
    each point's previous reading and is updated in place: pass a copy and keep it only if the
    result is committed.
    """
    buckets: Buckets = {}
    get = buckets.get
    starts: dict[int, int] = {}
    counter = kind == "counter"
    if last is None:
        last = {}
    for _seq, point, t, value in rows:
        if value is None:
            continue
        start = int(t // 60) * 60
        if bucket is not None:
            mapped = starts.get(start)
            if mapped is None:
                mapped = starts[start] = bucket(start)
            start = mapped
        step: float | None = None
        if counter:
            previous = last.get(point)
            step = 0.0 if previous is None else (
                value - previous if value >= previous else counter_increase(previous, value, wrap)
            )
            last[point] = value
        key = (point, start)
        agg = get(key)
        if agg is None:
            buckets[key] = [1, value, value, value, step]
        else:
            agg[0] += 1
            agg[1] += value
            if value < agg[2]:
                agg[2] = value
            if value > agg[3]:
                agg[3] = value
            if counter:
                agg[4] += step
    return buckets


def merge(into: Aggregate, other: Aggregate) -> None:
    """Fold the aggregate `other` into `into` (same point, an interval containing both)."""
    into[0] += other[0]
    into[1] += other[1]
    if other[2] < into[2]:
        into[2] = other[2]
    if other[3] > into[3]:
        into[3] = other[3]
    if into[4] is not None and other[4] is not None:
        into[4] += other[4]


def roll_up(buckets: Buckets, floor: Callable[[int], int]) -> Buckets:
    """Aggregates of coarser intervals from finer ones: `floor` maps a finer interval's start
    to the start of the coarser interval holding it (intervals nest: minutes in hours, hours
    in days, days in months, in any time zone with whole-minute offsets)."""
    starts: dict[int, int] = {}
    out: Buckets = {}
    for (point, start), agg in buckets.items():
        coarse = starts.get(start)
        if coarse is None:
            coarse = starts[start] = floor(start)
        key = (point, coarse)
        have = out.get(key)
        if have is None:
            out[key] = list(agg)
        else:
            merge(have, agg)
    return out


ORDER = ("minute", "hour", "day", "month")
"""Consolidation levels, finest first; each nests in the next."""


def consolidate(
    rows: Iterable[tuple[int, int, float, float | None]],
    kind: str,
    levels: Iterable[str],
    floor: Callable[[str, float], int],
    last: dict[int, float] | None = None,
    wrap: float | None = None,
) -> dict[str, Buckets]:
    """Aggregates of `rows` for each of `levels` (minute, hour, day, month).

    `floor(level, t)` is the calendar (`Calendar.floor`). Raw rows are aggregated straight
    into the finest level wanted; each coarser one is rolled up from the one below it.
    """
    wanted = [level for level in ORDER if level in set(levels)]
    if not wanted:
        return {}
    finest = wanted[0]
    bucket = None if finest == "minute" else (lambda t: floor(finest, t))
    out: dict[str, Buckets] = {finest: aggregate_minutes(rows, kind, last, wrap, bucket)}
    below = finest
    for level in ORDER[ORDER.index(finest) + 1:ORDER.index(wanted[-1]) + 1]:
        out[level] = roll_up(out[below], lambda t, level=level: floor(level, t))
        below = level
    return {level: out[level] for level in wanted}
