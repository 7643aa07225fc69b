"""The `system` I/O server: the host clock and health as points.

- ``system.time``: the host clock in milliseconds since the epoch; writable (sets the clock)
  only when ``[host] allow_set_clock = true``.
- ``system.uptime``: seconds since the host started.
- ``system.ioservers.<name>``: each I/O server's state (connecting, online, retrying, failed...).
- ``system.plugins.<name>``: ``loaded``, the state of the plugin's service, or ``error``.
- ``system.loggers``: ``ok``, or ``failing: <why>`` while the data loggers cannot write
  (a full disk, a locked database); they retry with a growing pause meanwhile.
"""

from __future__ import annotations

from typing import Any

import anyio

from ..errors import WriteError
from ..hookspecs import hookimpl
from ..ioserver import IOServer
from ..plugins import load_schema
from ..points import Point, Quality, Value
from ..supervisor import State


class System:
    def __init__(self, ioserver: IOServer) -> None:
        self.ioserver = ioserver
        host = ioserver.host
        self.time = ioserver.declare(
            "time",
            self._now_ms(),
            writable=host.config.host.allow_set_clock,
            meta={
                "unit": "ms",
                "format": "epoch-ms",
                "description": "the host clock, milliseconds since the epoch",
            },
        )
        self.uptime = ioserver.declare(
            "uptime", 0, meta={"unit": "s", "description": "seconds since the host started"}
        )
        self.loggers = ioserver.declare("loggers", host.loggers.health)
        for name in host.config.ioservers:
            ioserver.declare(f"ioservers.{name}", State.STARTING.value)
        for name in host.plugins.info:
            ioserver.declare(f"plugins.{name}", "loaded")
        for info in host.plugins.failed:
            if f"plugins.{info.name}" not in ioserver._points:
                ioserver.declare(f"plugins.{info.name}", "error")
        host.add_state_listener(self._state_changed)

    def _now_ms(self) -> int:
        return int(self.ioserver.host.time() * 1000)

    def _state_changed(self, kind: str, name: str, state: State, detail: str | None) -> None:
        id = f"{'ioservers' if kind == 'ioserver' else 'plugins'}.{name}"
        if id in self.ioserver._points:
            self.ioserver.set(id, state.value, quality=self.ioserver.point(id).quality)
        elif kind == "ioserver":  # an instance added by a reload
            self.ioserver.declare(id, state.value)

    @hookimpl
    async def connect(self, ioserver: IOServer) -> None:
        host = ioserver.host
        for name, io in host.ioservers.items():
            ioserver.set(f"ioservers.{name}", io.state.value)
        ioserver.set_online(restored=Quality.GOOD)  # the host's own state, read just now
        while True:
            ioserver.set(self.time, self._now_ms())
            ioserver.set(self.uptime, int(host.time() - (host.started_at or host.time())))
            ioserver.set(self.loggers, host.loggers.health)
            await anyio.sleep(ioserver.options["pollinterval"])

    @hookimpl
    def read(self, ioserver: IOServer, point: Point) -> Value:
        return self._now_ms() if point is self.time else point.value

    @hookimpl
    def write(self, ioserver: IOServer, point: Point, value: Value) -> None:
        if point is not self.time:
            raise WriteError(f"{point.name} is read-only")
        try:
            ioserver.host.clock.set(value / 1000)  # type: ignore[operator]
        except PermissionError as exc:
            raise WriteError(f"{point.name}: {exc}") from None
        ioserver.set(self.time, self._now_ms(), force=True)


@hookimpl
def register_ioserver_types(register: Any) -> None:
    register(
        "system",
        System,
        load_schema(__package__, "system.schema.json"),
        "the host clock and health (uptime, I/O server and plugin states)",
    )
