"""The remote's clock as seen from here: ``<name>.time.delta`` and clocksync.

Every change answer carries the remote's clock; the delta is that minus this host's clock on
arrival (so it includes the one-way latency, milliseconds on a LAN: HSYCO promises only a
few seconds). With clocksync, a delta of `drift` seconds or more, either way, sets the
remote's clock by writing its ``<system>.time`` point, which needs the remote's control
enabled and its ``allow_set_clock``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ioplex import IOServer, Point, Quality, WriteError

if TYPE_CHECKING:
    from .client import RemoteClient

DELTA_ID = "time.delta"
UPDATE_INTERVAL = 1.0
"""The delta point is refreshed at most this often (seconds), however busy the link."""
SYNC_INTERVAL = 10.0
"""At most one attempt to set the remote's clock in this many seconds."""


class ClockWatch:
    def __init__(self, ioserver: IOServer, clocksync: bool, drift: float, where: str) -> None:
        self.io = ioserver
        self.clocksync = clocksync
        self.drift = drift
        self.where = where
        self.point: Point | None = None
        self.remote_point: str | None = None
        self.remote_writable = False
        self.control = False
        self.delta: float | None = None
        self.syncs = 0
        self._last_update = -UPDATE_INTERVAL
        self._last_sync = -SYNC_INTERVAL
        self._warned: set[str] = set()

    @property
    def log(self) -> logging.LoggerAdapter:
        return self.io.log

    def setup(self, info: dict[str, Any], *, quiet: bool = False) -> None:
        """Take the remote's clock description from its info (after each connect)."""
        clock = info.get("clock") or {}
        self.control = bool(info.get("control"))
        self.remote_point = clock.get("point")
        self.remote_writable = bool(clock.get("writable"))
        if self.remote_point is not None and self.point is None:
            self.point = self.io.declare(
                DELTA_ID, None, type=float, quality=Quality.GOOD, quiet=quiet
            )
        elif self.remote_point is None and self.point is not None:
            # the remote no longer shows its clock: the last delta is no longer true
            self.io.set(self.point, self.point.value, quality=Quality.BAD)
        self._last_update = -UPDATE_INTERVAL
        if self.clocksync and self.remote_point is None:
            self._warn_once(
                "no-system",
                "clocksync is on but the remote has no system I/O "
                "server exposed: its clock cannot be read or set",
            )

    def observe(
        self, remote_time: float, local_time: float | None = None, *, quiet: bool = False
    ) -> None:
        """Note the remote's clock, read at `local_time` (default: just now); refresh the
        delta point now and then."""
        if self.point is None or self.remote_point is None:
            return
        now = time.monotonic()
        delta = remote_time - (self.io.host.time() if local_time is None else local_time)
        self.delta = delta
        if now - self._last_update >= UPDATE_INTERVAL:
            self._last_update = now
            self.io.set(self.point, round(delta, 3), quiet=quiet)

    async def measure(self, client: RemoteClient, *, quiet: bool = False) -> None:
        """Read the remote's clock now, taking the middle of the round trip as its time."""
        if self.point is None or self.remote_point is None:
            return
        before = self.io.host.time()
        remote = await client.clock()
        after = self.io.host.time()
        self._last_update = -UPDATE_INTERVAL
        self.observe(remote["time"], (before + after) / 2, quiet=quiet)

    def sync_due(self) -> bool:
        return (
            self.clocksync
            and self.delta is not None
            and self.remote_point is not None
            and abs(self.delta) >= self.drift
            and time.monotonic() - self._last_sync >= SYNC_INTERVAL
        )

    async def sync(self, client: RemoteClient) -> None:
        """Set the remote's clock to this host's (milliseconds, like system.time)."""
        self._last_sync = time.monotonic()
        if not self.control:
            self._warn_once(
                "control",
                "clocksync: the remote's clock differs by %.1f s but its "
                "server control is off (plugins.hsyco_remote.server.control)",
                self.delta,
            )
            return
        if not self.remote_writable:
            self._warn_once(
                "writable",
                "clocksync: the remote's clock differs by %.1f s but "
                "%s is read-only there (its [host] allow_set_clock is false)",
                self.delta,
                self.remote_point,
            )
            return
        assert self.remote_point is not None
        delta = self.delta
        target = f"{self.io.name}.{self.remote_point}"
        try:
            await client.write("io", self.remote_point, round(self.io.host.time() * 1000), target)
        except WriteError as exc:
            self.log.warning("%s: clocksync failed: %s", self.where, exc)
            return
        self.syncs += 1
        self._last_update = -UPDATE_INTERVAL  # show the new delta at the next answer
        self.log.info(
            "%s: set the remote's clock (it was %+.3f s off; drift limit %g s)",
            self.where,
            delta,
            self.drift,
        )

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning("%s: " + message, self.where, *args)
