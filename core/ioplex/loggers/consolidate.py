"""Consolidation math: raw samples into per-interval aggregates, for range and counter loggers.

Consolidation is incremental: each pass takes the raw samples recorded since the last pass
(in ``seq`` order) and *merges* their aggregates into the stored ones. Everything stored is
therefore mergeable: a count, a sum, a minimum, a maximum, a time-weighted area and the time
it covers and, for counters, the increase (delta). Merging is commutative, so replicated
samples that arrive late, long after their interval was first consolidated, still land in the
right interval.

**Time weighting.** A value is held from its sample until the point's next sample (at most
`hold` seconds): each interval gets ``area`` (value x seconds held in it) and ``covered`` (those
seconds), and its average is ``area / covered``, as Home Assistant statistics and openHAB
``averageSince`` compute it. An interval the held value spans without any sample still gets a
row (count 0): a quiet hour is an hour at that value, not a gap. The value still held at the end
of a pass is credited up to the pass's *horizon* (`Consolidator.carry`), whole finest intervals
only. A sample with a bad quality or no numeric value ends the hold: a time the value is not
known is not averaged. A sample older than what was already credited (late: replicated, or the
clock was set back) counts in its interval's count, sum, minimum and maximum and becomes the
held value from there on, but does not re-weight time already credited.

**Counters** record a cumulative reading; see `Consolidator.step` for resets, wraps and
glitches. Deltas are credited to the interval (and tariff slot) of the reading that shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .calendar import Calendar
from .tariffs import Tariffs

Aggregate = list
"""[count, sum, min, max, delta, area, covered]; delta is None for range loggers, min/max None
for an interval that only received a counter's delta."""
Buckets = dict[tuple[int, int], Aggregate]
"""Aggregates by (point id, interval start)."""
TariffBuckets = dict[tuple[int, int, int], list]
"""[delta] by (point id, interval start, tariff index)."""
Row = tuple[int, int, float, "float | None", int]
"""A raw row as consolidation reads it: (seq, point id, time, value, quality code)."""

BAD = 2
ORDER = ("minute", "hour", "day", "month")
"""Consolidation levels, finest first; each nests in the next."""


@dataclass(slots=True)
class PointState:
    """What consolidation remembers of one point between passes (the ``points`` table)."""

    held: float | None = None
    """The value held since `held_time`, None when no value is held."""
    held_time: float = 0.0
    base: float | None = None
    """Counters: the reading increases are measured from."""
    suspect: float | None = None
    """Counters: a lower reading not yet confirmed as a reset."""
    suspect_time: float = 0.0

    def copy(self) -> PointState:
        return PointState(self.held, self.held_time, self.base, self.suspect, self.suspect_time)


def counter_increase(previous: float | None, value: float, wrap: float | None = None) -> float:
    """How much a counter grew from `previous` to `value` in one step, taken at face value
    (without the glitch check of `Consolidator.step`): the first reading counts nothing, a
    wrap counts the way round, any other drop counts the new reading (a reset)."""
    if previous is None:
        return 0.0
    if value >= previous:
        return value - previous
    if wrap is not None:
        wrapped = wrap - previous + value
        if 0 <= wrapped < wrap / 2:
            return wrapped
    return value if value > 0 else 0.0


class Consolidator:
    """Aggregates one pass of one logger's raw samples into its finest level, then rolls
    them up into the coarser ones (`result`). `points` is the per-point state, updated in
    place (the caller persists `dirty` ones with the pass, or reloads them if it fails)."""

    def __init__(
        self,
        kind: str,
        levels: Iterable[str],
        calendar: Calendar,
        points: dict[int, PointState],
        *,
        carried: float = 0.0,
        wrap: float | None = None,
        reset_below: float = 0.5,
        hold: float | None = None,
        tariffs: Tariffs | None = None,
    ) -> None:
        wanted = set(levels)
        self.levels = [level for level in ORDER if level in wanted]
        self.finest = self.levels[0] if self.levels else "minute"
        self.calendar = calendar
        self.counter = kind == "counter"
        self.points = points
        self.carried = carried
        """Holds are credited up to here (a finest-interval boundary)."""
        self.wrap = wrap
        self.reset_below = reset_below
        self.hold = hold
        self.tariffs = tariffs
        self.buckets: Buckets = {}
        self.tariff_buckets: TariffBuckets = {}
        self.dirty: set[int] = set()
        self._starts: dict[int, int] = {}
        self._slots: dict[int, int] = {}
        self._ends: dict[int, int] = {}
        self._minute = self.finest == "minute"

    # -- interval arithmetic ---------------------------------------------------------------------
    def floor(self, t: float) -> int:
        """The start of the finest interval holding `t` (via its minute, cached)."""
        minute = int(t // 60) * 60
        if self._minute:
            return minute
        start = self._starts.get(minute)
        if start is None:
            start = self._starts[minute] = self.calendar.floor(self.finest, minute)
        return start

    def next(self, start: int) -> int:
        """The end of the finest interval starting at `start` (cached)."""
        if self._minute:
            return start + 60
        end = self._ends.get(start)
        if end is None:
            end = self._ends[start] = self.calendar.end(self.finest, start)
        return end

    def _bucket(self, point: int, start: int) -> Aggregate:
        key = (point, start)
        agg = self.buckets.get(key)
        if agg is None:
            agg = self.buckets[key] = [0, 0.0, None, None, 0.0 if self.counter else None, 0.0, 0.0]
        return agg

    # -- samples ---------------------------------------------------------------------------------
    def add(self, rows: Iterable[Row]) -> None:
        """Fold raw rows (in seq order) into the finest level."""
        points = self.points
        counter = self.counter
        dirty = self.dirty
        carried = self.carried
        hold = self.hold
        floor = self.floor
        next_ = self.next
        bucket = self._bucket
        for _seq, point, t, value, quality in rows:
            ps = points.get(point)
            if ps is None:
                ps = points[point] = PointState()
            dirty.add(point)
            held = ps.held
            start = floor(t)
            if held is not None:
                since = ps.held_time
                if since < carried:  # noqa: PLR1730 - the hot loop: no builtin call
                    since = carried
                until = t if hold is None or t < ps.held_time + hold else ps.held_time + hold
                if until > since:
                    if since >= start and until <= next_(start):  # within t's interval
                        seconds = until - since
                        agg = bucket(point, start)
                        agg[5] += held * seconds
                        agg[6] += seconds
                        if agg[2] is None or held < agg[2]:
                            agg[2] = held
                        if agg[3] is None or held > agg[3]:
                            agg[3] = held
                    else:
                        self._hold(point, held, since, until)
            if value is None or quality == BAD:
                ps.held = None
                continue
            agg = bucket(point, start)
            agg[0] += 1
            agg[1] += value
            if agg[2] is None or value < agg[2]:
                agg[2] = value
            if agg[3] is None or value > agg[3]:
                agg[3] = value
            if counter:
                for when, amount in self.step(ps, value, t):
                    self._credit(point, when, amount)
            ps.held = value
            ps.held_time = t

    def step(self, ps: PointState, value: float, t: float) -> list[tuple[float, float]]:
        """A counter reading: the increases it shows, as (time credited, amount).

        - The first reading of a point counts nothing; a reading at or above the last counts
          the difference.
        - With `wrap` (the register's modulus), a lower reading is a wrap when going round
          is the shorter way (less than half the modulus): ``wrap - previous + value``.
        - Otherwise a lower reading is a *reset* (a restarted device, a replaced meter) only
          when it is plausible: below `reset_below` (default half) of the previous reading,
          since a counter that starts again starts near zero. It is then held as a suspect
          and **confirmed by the next reading** above it and still below the previous one:
          the suspect reading is credited at its own time (counting from zero, as Prometheus
          does) and the growth since at the confirming one. A next reading back at or above
          the previous one shows the low reading was a glitch (a 0 read from a device that
          was restarting, a bus error): it is ignored and nothing spikes.
        - A lower reading above that bound is jitter (a meter read through a noisy average, a
          simulated random walk): ignored; the counter counts again once it passes its
          previous reading.
        """
        base = ps.base
        if base is None:
            ps.base = value
            return []
        if value >= base:
            ps.base, ps.suspect = value, None
            return [(t, value - base)] if value > base else []
        if self.wrap is not None:
            wrapped = self.wrap - base + value
            if 0 <= wrapped < self.wrap / 2:
                ps.base, ps.suspect = value, None
                return [(t, wrapped)]
        suspect = ps.suspect
        if suspect is not None:
            if value > suspect:  # confirmed: the counter started again from zero
                ps.base, ps.suspect = value, None
                return [(ps.suspect_time, max(suspect, 0.0)), (t, value - max(suspect, 0.0))]
            if value < suspect:
                ps.suspect, ps.suspect_time = value, t
            return []
        if value <= base * self.reset_below:
            ps.suspect, ps.suspect_time = value, t
        return []

    def _credit(self, point: int, t: float, amount: float) -> None:
        if not amount:
            return
        start = self.floor(t)
        self._bucket(point, start)[4] += amount
        if self.tariffs is not None:
            key = (point, start, self._slot(t))
            have = self.tariff_buckets.get(key)
            if have is None:
                self.tariff_buckets[key] = [amount]
            else:
                have[0] += amount

    def _slot(self, t: float) -> int:
        minute = int(t // 60) * 60
        slot = self._slots.get(minute)
        if slot is None:
            local = self.calendar.local(minute)
            assert self.tariffs is not None
            slot = self._slots[minute] = self.tariffs.index(
                local.weekday(), local.hour, local.minute
            )
        return slot

    def _hold(self, point: int, value: float, since: float, until: float) -> None:
        """Credit `value` held over [since, until) to each finest interval it overlaps."""
        start = self.floor(since)
        next_ = self.next
        while start < until:
            end = next_(start)
            seconds = (min(end, until)) - (max(start, since))
            if seconds > 0:
                agg = self._bucket(point, start)
                agg[5] += value * seconds
                agg[6] += seconds
                if agg[2] is None or value < agg[2]:
                    agg[2] = value
                if agg[3] is None or value > agg[3]:
                    agg[3] = value
            start = end

    # -- the end of a pass -----------------------------------------------------------------------
    def carry_bound(self, horizon: float, max_intervals: int) -> float | None:
        """Where `carry` may credit holds up to: the finest boundary at or before `horizon`,
        but at most `max_intervals` finest intervals per held point past the earliest hold
        (so a long gap is caught up over several passes, each of bounded size). None: no
        held value is behind."""
        starts = [self._since(ps) for ps in self.points.values() if self._active(ps)]
        if not starts:
            return None
        low = min(starts)
        limit = self.floor(horizon)
        per_point = max(1, max_intervals // len(starts))
        if self._minute:
            cap = int(low // 60) * 60 + 60 * per_point
        else:
            cap = self.calendar.floor(self.finest, low + _NOMINAL_SECONDS[self.finest] * per_point)
        until = min(limit, max(cap, self.next(self.floor(low))))
        return until if until > self.carried else None

    def _since(self, ps: PointState) -> float:
        return max(self.carried, ps.held_time)

    def _active(self, ps: PointState) -> bool:
        if ps.held is None:
            return False
        return self.hold is None or ps.held_time + self.hold > self.carried

    def carry(self, until: float) -> None:
        """Credit every held value up to `until` (its hold limit permitting): the rows of
        intervals without samples."""
        for point, ps in self.points.items():
            if not self._active(ps):
                continue
            since = self._since(ps)
            end = until if self.hold is None else min(until, ps.held_time + self.hold)
            if end > since:
                assert ps.held is not None
                self._hold(point, ps.held, since, end)
        self.carried = max(self.carried, until)

    def result(self) -> dict[str, Buckets]:
        """The aggregates of every level kept, the finest as built, coarser ones rolled up."""
        if not self.levels:
            return {}
        out: dict[str, Buckets] = {self.finest: self.buckets}
        below = self.finest
        for level in ORDER[ORDER.index(self.finest) + 1 : ORDER.index(self.levels[-1]) + 1]:
            out[level] = roll_up(out[below], lambda t, level=level: self.calendar.floor(level, t))
            below = level
        return {level: out[level] for level in self.levels}

    def tariff_result(self) -> dict[str, TariffBuckets]:
        """Per-tariff deltas of every level kept, rolled up like `result`."""
        if not self.levels or self.tariffs is None:
            return {}
        out: dict[str, TariffBuckets] = {self.finest: self.tariff_buckets}
        below = self.finest
        for level in ORDER[ORDER.index(self.finest) + 1 : ORDER.index(self.levels[-1]) + 1]:
            floor = self.calendar.floor
            starts: dict[int, int] = {}
            rolled: TariffBuckets = {}
            for (point, start, slot), (delta,) in out[below].items():
                coarse = starts.get(start)
                if coarse is None:
                    coarse = starts[start] = floor(level, start)
                key = (point, coarse, slot)
                have = rolled.get(key)
                if have is None:
                    rolled[key] = [delta]
                else:
                    have[0] += delta
            out[level] = rolled
            below = level
        return {level: out[level] for level in self.levels}


_NOMINAL_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400, "month": 31 * 86_400}


def merge(into: Aggregate, other: Aggregate) -> None:
    """Fold the aggregate `other` into `into` (same point, an interval containing both)."""
    into[0] += other[0]
    into[1] += other[1]
    if other[2] is not None and (into[2] is None or other[2] < into[2]):
        into[2] = other[2]
    if other[3] is not None and (into[3] is None or other[3] > into[3]):
        into[3] = other[3]
    if into[4] is not None and other[4] is not None:
        into[4] += other[4]
    into[5] += other[5]
    into[6] += other[6]


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


def consolidate(
    rows: Iterable[Row],
    kind: str,
    levels: Iterable[str],
    calendar: Calendar,
    points: dict[int, PointState] | None = None,
    **options: object,
) -> dict[str, Buckets]:
    """Aggregates of `rows` ``(seq, point, time, value, quality)`` for each of `levels`, in
    one call (tests, tools); `points` carries the per-point state across calls."""
    c = Consolidator(kind, levels, calendar, {} if points is None else points, **options)  # type: ignore[arg-type]
    c.add(rows)
    return c.result()
