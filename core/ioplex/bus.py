"""The host's event bus: protocol events (not point changes) fanned out to `on_event`.

Each implementation of `on_event`, in a plugin or a driver, gets its own lane: a bounded
queue drained by its own task. Publishing is a non-blocking append per lane, so a slow or
failing implementation delays or loses only its own events, never the publisher's.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pluggy

from .plugins import await_maybe, call_impl
from .queues import DropOldestQueue

log = logging.getLogger("ioplex.bus")

DEFAULT_LANE_SIZE = 10_000


class Lane:
    """One `on_event` implementation and the events waiting for it."""

    def __init__(self, name: str, impl: pluggy.HookImpl, maxsize: int) -> None:
        self.name = name
        self.impl = impl
        self.queue: DropOldestQueue[tuple[str, Any]] = DropOldestQueue(maxsize)
        self.errors = 0
        self.delivered = 0

    async def run(self, host: Any) -> None:
        queue = self.queue
        while True:
            await queue.wait()
            for source, event in queue.drain():
                try:
                    await await_maybe(call_impl(self.impl, host=host, source=source, event=event))
                    self.delivered += 1
                except Exception:
                    self.errors += 1
                    log.exception("on_event of %s failed on an event from %s", self.name, source)


class EventBus:
    def __init__(self, host: Any, maxsize: int = DEFAULT_LANE_SIZE) -> None:
        self.host = host
        self.maxsize = maxsize
        self.lanes: list[Lane] = []
        self.published = 0
        self._tg: anyio.abc.TaskGroup | None = None
        self._scopes: dict[int, anyio.CancelScope] = {}

    def add(self, name: str, impl: pluggy.HookImpl) -> Lane:
        """Add a lane; it starts at once when the bus is running (an instance added by a
        reload), else with the bus."""
        lane = Lane(name, impl, self.maxsize)
        self.lanes.append(lane)
        if self._tg is not None:
            self._tg.start_soon(self._run_lane, lane, name=f"ioplex on_event lane {name}")
        return lane

    def remove(self, name: str) -> None:
        """Stop and forget the lanes of `name` (an instance removed by a reload)."""
        for lane in [lane for lane in self.lanes if lane.name == name]:
            self.lanes.remove(lane)
            scope = self._scopes.pop(id(lane), None)
            if scope is not None:
                scope.cancel()

    def publish(self, event: Any, source: str) -> None:
        self.published += 1
        for lane in self.lanes:
            lane.queue.put((source, event))

    @property
    def dropped(self) -> int:
        return sum(lane.queue.dropped for lane in self.lanes)

    async def _run_lane(self, lane: Lane) -> None:
        with anyio.CancelScope() as scope:
            self._scopes[id(lane)] = scope
            try:
                await lane.run(self.host)
            finally:
                self._scopes.pop(id(lane), None)

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for lane in self.lanes:
                    tg.start_soon(self._run_lane, lane, name=f"ioplex on_event lane {lane.name}")
                await anyio.sleep_forever()
        finally:
            self._tg = None
