"""The `dummy` I/O server: points declared in its options, all writable.

``[ioservers.dummy] plugin = "dummy"`` with ``options.points = {"light.1" = 0, "temp" = 21.5}``
gives ``dummy.light.1`` and ``dummy.temp``; ``options.ui = {"banner" = "hello"}`` the UI
variable ``dummy.banner``. A write sets the value. With ``options.rate`` the numeric and
boolean points change at random that many times a second; the ids in ``options.meters``
simulate cumulative meters (they only grow), to demo counter data loggers.
"""

from __future__ import annotations

import random
from typing import Any

import anyio

from ..errors import FatalError
from ..hookspecs import hookimpl
from ..ioserver import IOServer
from ..plugins import load_schema
from ..points import Point, Quality, Value

TICK = 0.01  # the simulation's finest step, in seconds

_RANDOM = random.Random()
"""The simulation's own generator (the application's global `random` state is left alone)."""


class Dummy:
    def __init__(self, ioserver: IOServer) -> None:
        self.ioserver = ioserver
        for id, value in ioserver.options["points"].items():
            ioserver.declare(id, value, writable=True)
        for id, value in ioserver.options["ui"].items():
            ioserver.declare(id, value, writable=True, ui=True)
        points = ioserver.options["points"]
        self.meters: set[str] = set()
        for i, id in enumerate(ioserver.options.get("meters", [])):
            value = points.get(id)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FatalError(
                    f"ioservers.{ioserver.name}.options.meters[{i}]: {id!r} is not a numeric "
                    f"point of options.points (numeric points: "
                    f"{', '.join(k for k, v in points.items() if _numeric(v)) or 'none'})"
                )
            self.meters.add(f"{ioserver.name}.{id}")

    @hookimpl
    async def connect(self, ioserver: IOServer) -> None:
        ioserver.set_online(restored=Quality.GOOD)  # a simulator: its values are its own
        rate = ioserver.options["rate"]
        start = ioserver.options["points"]
        points = [p for p in ioserver.points() if p.type in (int, float, bool)]
        if not rate or not points:
            await anyio.sleep_forever()
        interval = max(1.0 / rate, TICK)
        due = 0.0
        while True:
            await anyio.sleep(interval)
            due += rate * interval
            for _ in range(int(due)):
                point = _RANDOM.choice(points)
                ioserver.set(
                    point,
                    _grow(point)
                    if point.name in self.meters
                    else _drift(point, start.get(point.id)),
                )
            due -= int(due)

    @hookimpl
    def write(self, ioserver: IOServer, point: Point, value: Value, namespace: str) -> None:
        ioserver.set(point, value, ui=namespace == "ui")


def _numeric(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _grow(point: Point) -> Any:
    """A meter's next reading: a small increase, never a decrease."""
    if point.type is int:
        return (point.value or 0) + _RANDOM.choice((0, 1))
    return round((point.value or 0.0) + _RANDOM.uniform(0.0, 0.1), 3)


def _drift(point: Point, start: Any) -> Any:
    """A simulated reading near the configured one: booleans toggle, integers stay within
    0…1 or 0…start (a light stays 0 or 1), floats wander around their start (a room stays
    near its temperature); ``min``/``max`` in the point's metadata bound both."""
    if point.type is bool:
        return not point.value
    meta = point.meta or {}
    if point.type is int:
        low = meta.get("min", min(0, start or 0))
        high = meta.get("max", max(1, start or 0))
        return min(high, max(low, (point.value or 0) + _RANDOM.choice((-1, 1))))
    value = point.value or 0.0
    value += _RANDOM.uniform(-0.5, 0.5) - 0.2 * (value - (start or 0.0))
    return round(min(meta.get("max", value), max(meta.get("min", value), value)), 3)


@hookimpl
def register_ioserver_types(register: Any) -> None:
    register(
        "dummy",
        Dummy,
        load_schema(__package__, "dummy.schema.json"),
        "points declared in the configuration, optionally simulated",
    )
