"""Where consolidation intervals start and end: minutes, hours, days and months in a time zone.

An interval is named by its start, in seconds since the epoch (UTC). Hours, days and months
follow the logger's time zone, so a "day" is a local calendar day (23 or 25 hours long on
daylight-saving changes) and energy per day means what a user expects. In UTC, hours and days
are plain integer arithmetic; other zones go through `zoneinfo`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_NOMINAL = {"minute": 60, "hour": 3600, "day": 86_400, "month": 31 * 86_400}
_ZERO = {
    "hour": {"minute": 0},
    "day": {"hour": 0, "minute": 0},
    "month": {"day": 1, "hour": 0, "minute": 0},
}


class Calendar:
    """Interval arithmetic for one time zone."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.name = timezone
        self.tz = UTC if timezone == "UTC" else ZoneInfo(timezone)
        self._utc = timezone == "UTC"

    def floor(self, level: str, t: float) -> int:
        """The start of the `level` interval (minute, hour, day, month) holding time `t`."""
        if level == "minute" or (self._utc and level in ("hour", "day")):
            step = _NOMINAL[level]
            return int(t // step * step)
        dt = datetime.fromtimestamp(t, self.tz)
        return int(dt.replace(second=0, microsecond=0, **_ZERO[level]).timestamp())

    def end(self, level: str, start: float) -> int:
        """The end (exclusive) of the `level` interval that starts at `start`: the next one's
        start. Half an interval past the nominal length always lands in the next interval,
        whatever daylight saving or month length did to this one."""
        if level == "minute" or (self._utc and level in ("hour", "day")):
            return int(start) + _NOMINAL[level]
        if level == "month":
            return self.floor(level, start + 45 * 86_400)
        return self.floor(level, start + _NOMINAL[level] * 1.5)

    def isoformat(self, t: float) -> str:
        """`t` as an ISO 8601 date and time in this time zone, with its UTC offset."""
        return datetime.fromtimestamp(t, self.tz).isoformat()
