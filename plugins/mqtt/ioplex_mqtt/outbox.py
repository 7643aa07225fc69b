"""The points waiting to be published: one entry per point, latest value wins.

While the broker is slow, a point that changes again before it was sent is not queued twice:
the publisher reads the point's value when it sends it, so only the latest goes out and the
number of entries is bounded by the number of points (and by `limit`, past which new entries
are dropped and counted; a reconnect republishes everything anyway).
"""

from __future__ import annotations

import anyio


class Outbox:
    """An insertion-ordered set of point names to publish."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: dict[str, None] = {}
        self._ready = anyio.Event()
        self.coalesced = 0
        """Changes folded into a newer one before they were sent."""
        self.dropped = 0
        """Changes not queued because `limit` points were already waiting."""

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, point: str) -> None:
        pending = self._pending
        if point in pending:
            self.coalesced += 1
            return
        if len(pending) >= self.limit:
            self.dropped += 1
            return
        pending[point] = None
        if len(pending) == 1:
            self._ready.set()

    def take(self, count: int) -> list[str]:
        """Up to `count` points, oldest first, removed from the box."""
        pending = self._pending
        if count >= len(pending):
            taken = list(pending)
            pending.clear()
        else:
            taken = []
            for point in pending:
                taken.append(point)
                if len(taken) == count:
                    break
            for point in taken:
                del pending[point]
        if not pending:
            self._ready = anyio.Event()
        return taken

    async def wait(self) -> None:
        """Return once something is waiting."""
        while not self._pending:
            await self._ready.wait()

    def clear(self) -> None:
        self._pending.clear()
        self._ready = anyio.Event()
