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

    def add(self, name: str, impl: pluggy.HookImpl) -> Lane:
        lane = Lane(name, impl, self.maxsize)
        self.lanes.append(lane)
        return lane

    def publish(self, event: Any, source: str) -> None:
        self.published += 1
        for lane in self.lanes:
            lane.queue.put((source, event))

    @property
    def dropped(self) -> int:
        return sum(lane.queue.dropped for lane in self.lanes)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for lane in self.lanes:
                tg.start_soon(lane.run, self.host, name=f"ioplex on_event lane {lane.name}")
