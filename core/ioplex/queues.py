"""A bounded queue that never blocks its producer: the oldest item gives way."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """A queue of at most `maxsize` items between a synchronous producer and one async consumer.

    `put` never waits: on a full queue it drops the oldest item and counts it in `dropped`.
    That keeps a slow consumer from blocking the producer or growing memory without bound,
    while still handing it the most recent items. anyio's memory streams block or raise when
    full instead, hence this small class.
    """

    __slots__ = ("_items", "_wakeup", "closed", "dropped", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[T] = deque(maxlen=maxsize)
        self._wakeup: anyio.Event | None = None
        self.closed = False

    def put(self, item: T) -> None:
        items = self._items
        if len(items) == self.maxsize:
            self.dropped += 1
        items.append(item)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    def __len__(self) -> int:
        return len(self._items)

    def get_nowait(self) -> T | None:
        """The oldest item, or None when empty."""
        return self._items.popleft() if self._items else None

    def drain(self) -> list[T]:
        """Take every queued item at once."""
        items = list(self._items)
        self._items.clear()
        return items

    async def wait(self) -> None:
        """Return once an item is queued or the queue is closed."""
        while not self._items and not self.closed:
            self._wakeup = anyio.Event()
            await self._wakeup.wait()

    async def get(self) -> T:
        """The oldest item, waiting for one; raises EOFError once closed and empty."""
        await self.wait()
        if not self._items:
            raise EOFError("queue closed")
        return self._items.popleft()

    def close(self) -> None:
        """Wake the consumer; `get` raises EOFError once the remaining items are taken."""
        self.closed = True
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None
