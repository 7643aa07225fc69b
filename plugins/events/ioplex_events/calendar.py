"""When a ``TIME`` event happens next, and whether it is day: wall-clock arithmetic in the
site's zone, with daylight-saving time handled the way a user means it.

- A time in the spring gap (02:30 on the night clocks go 02:00 → 03:00) happens once, at
  the first instant after the gap (03:00 new time).
- A time in the autumn overlap (02:30 twice) happens once, at its first occurrence.
- Each occurrence has a *key*, its local date and time (``2026-03-29 02:30:00``): the
  engine remembers the last key fired per schedule, so an occurrence fires at most once
  whatever the clock does afterwards (a step back, a restart).

Sun times come from astral (sunrise and sunset at the apparent horizon).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import elevation, sunrise, sunset

from .syntax import TimeEvent

MAX_SEARCH_DAYS = 400
"""How far ahead to look for an occurrence (a date range matches at least once a year)."""


def site_zone(zone: ZoneInfo | None) -> ZoneInfo:
    """The zone to plan in: `[host] timezone`, else the system's (``/etc/localtime``)."""
    if zone is not None:
        return zone
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


def _in_dates(day: date, dates: tuple[tuple[int, int], tuple[int, int]] | None) -> bool:
    if dates is None:
        return True
    first, last = dates
    md = (day.month, day.day)
    if first <= last:
        return first <= md <= last
    return md >= first or md <= last  # wraps over the new year


def wall_to_instant(day: date, at: time, zone: ZoneInfo) -> float:
    """The first instant (epoch seconds) at which the local wall clock shows `day` `at` or
    later: the instant itself, the first of two in an overlap, the end of a gap."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == naive:
        return utc.timestamp()  # exists (fold=0 is the first of an overlap)
    # In a gap: fold=1 gives the instant before the gap, fold=0 one after it; the clock
    # jumps somewhere between. Find the first second whose wall time is past `naive`.
    low = naive.replace(tzinfo=zone, fold=1).timestamp()
    high = utc.timestamp()
    if low > high:
        low, high = high, low
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= naive:
            high = mid
        else:
            low = mid
    return float(high)


def occurrences_after(event: TimeEvent, after: float, zone: ZoneInfo, last_key: str | None):
    """Yield ``(instant, key)`` of the event's occurrences after `after` (epoch seconds)
    whose key is greater than `last_key`, in order."""
    at = time(event.hour, event.minute, event.second)
    day = datetime.fromtimestamp(after, zone).date() - timedelta(days=1)
    for _ in range(MAX_SEARCH_DAYS):
        if (event.weekdays is None or day.weekday() in event.weekdays) and _in_dates(
            day, event.dates
        ):
            key = f"{day.isoformat()} {at.isoformat()}"
            if last_key is None or key > last_key:
                instant = wall_to_instant(day, at, zone)
                if instant > after:
                    yield instant, key
        day += timedelta(days=1)


def next_occurrence(
    event: TimeEvent, after: float, zone: ZoneInfo, last_key: str | None = None
) -> tuple[float, str] | None:
    """The first occurrence after `after` not yet fired (key above `last_key`), or None."""
    return next(occurrences_after(event, after, zone, last_key), None)


def previous_occurrence(
    event: TimeEvent, before: float, not_before: float, zone: ZoneInfo, last_key: str | None
) -> tuple[float, str] | None:
    """The latest occurrence in ``(not_before, before]`` not yet fired: what a jump of the
    clock or a down host skipped (fired once, however many were skipped)."""
    found = None
    for instant, key in occurrences_after(event, not_before, zone, last_key):
        if instant > before:
            break
        found = (instant, key)
    return found


class Sun:
    """Sunrise and sunset at the site, with offsets in minutes."""

    def __init__(self, latitude: float, longitude: float, zone: ZoneInfo) -> None:
        self.observer = Observer(latitude=latitude, longitude=longitude)
        self.zone = zone

    def _times(self, day: date) -> tuple[float | None, float | None, bool]:
        """(sunrise, sunset, sun up at noon) for a local date; None where the sun does not
        rise or set (polar day or night)."""
        try:
            rise = sunrise(self.observer, day, tzinfo=self.zone).timestamp()
        except ValueError:
            rise = None
        try:
            down = sunset(self.observer, day, tzinfo=self.zone).timestamp()
        except ValueError:
            down = None
        noon = datetime.combine(day, time(12), self.zone)
        return rise, down, elevation(self.observer, noon) > 0

    def is_day(self, now: float, rise_offset: int, set_offset: int) -> bool:
        """Whether `now` lies between sunrise + `rise_offset` and sunset + `set_offset`."""
        day = datetime.fromtimestamp(now, self.zone).date()
        rise, down, up_at_noon = self._times(day)
        if rise is None or down is None:
            return up_at_noon  # polar day (always up) or polar night
        return rise + rise_offset * 60 <= now < down + set_offset * 60

    def next_change(self, now: float, offsets: set[tuple[int, int]]) -> float:
        """The next instant after `now` at which `is_day` may change for any pair of
        offsets (at most a day ahead, so polar seasons are looked at again daily)."""
        day = datetime.fromtimestamp(now, self.zone).date()
        best = now + 86400.0
        for shift in (0, 1):
            rise, down, _ = self._times(day + timedelta(days=shift))
            for r_off, s_off in offsets:
                for t in (rise and rise + r_off * 60, down and down + s_off * 60):
                    if t and now < t < best:
                        best = t
        return best
