"""The host's clock: what timestamps points and samples, and what `system.time` sets."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""

    def set(self, timestamp: float) -> None:
        """Move the clock to `timestamp` (seconds since the epoch)."""


class SystemClock:
    """The operating system's real-time clock; setting it needs the privilege to do so."""

    time = staticmethod(time.time)

    def set(self, timestamp: float) -> None:
        try:
            time.clock_settime(time.CLOCK_REALTIME, timestamp)
        except PermissionError:
            raise PermissionError(
                "setting the system clock needs root (or CAP_SYS_TIME); "
                'use [host] clock = "virtual" for tests and demos'
            ) from None


class VirtualClock:
    """The system clock plus an offset that `set` changes: a settable clock for tests, demos
    and several hosts in one process, which must not touch the machine's clock."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self._now = time.time

    def time(self) -> float:
        return self._now() + self.offset

    def set(self, timestamp: float) -> None:
        self.offset = timestamp - self._now()


def make_clock(kind: str) -> Clock:
    return VirtualClock() if kind == "virtual" else SystemClock()
