"""Where consolidation intervals start and end: minutes, hours, days and months in a time zone.

An interval is named by its start, in seconds since the epoch (UTC). Hours, days and months
follow the logger's time zone, so a "day" is a local calendar day (23 or 25 hours long on
daylight-saving changes) and energy per day means what a user expects. The zone is the
logger's ``timezone``, else the host's ``[host] timezone``, else the system's (`system_zone`).
In UTC, hours and days are plain integer arithmetic; other zones go through `zoneinfo`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_NOMINAL = {"minute": 60, "hour": 3600, "day": 86_400, "month": 31 * 86_400}
_ZERO = {
    "hour": {"minute": 0},
    "day": {"hour": 0, "minute": 0},
    "month": {"day": 1, "hour": 0, "minute": 0},
}
LOCALTIME = Path("/etc/localtime")
SYSTEM = "localtime"
"""The zone name used for a system zone that has no IANA name (a copied /etc/localtime)."""


def _zone(name: str) -> tzinfo | None:
    try:
        return UTC if name == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def system_zone() -> tuple[str, tzinfo]:
    """The system's time zone as (name, tzinfo), with its daylight-saving rules: ``TZ`` if it
    names an IANA zone, else the zone /etc/localtime links to, else /etc/timezone, else the
    rules in /etc/localtime itself (named ``localtime``), else UTC.

    Not ``datetime.now().astimezone()``: that is a fixed offset, which would put every
    interval after the next daylight-saving change an hour off.
    """
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.readlink(LOCALTIME)
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    for name in candidates:
        if name and "/" not in name[:1] and (zone := _zone(name)) is not None:
            return name, zone
    try:
        with open(LOCALTIME, "rb") as f:
            return SYSTEM, ZoneInfo.from_file(f, key=SYSTEM)
    except (OSError, ValueError):
        return "UTC", UTC


class Calendar:
    """Interval arithmetic for one time zone (None: the system's)."""

    def __init__(self, timezone: str | None = "UTC") -> None:
        if timezone is None or timezone == SYSTEM:
            self.name, self.tz = system_zone()
        else:
            zone = _zone(timezone)
            if zone is None:
                raise ValueError(f"unknown time zone {timezone!r}")
            self.name, self.tz = timezone, zone
        self._utc = self.name == "UTC"

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

    def local(self, t: float) -> datetime:
        """`t` as an aware datetime in this time zone."""
        return datetime.fromtimestamp(t, self.tz)
