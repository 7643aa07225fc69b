"""The change feed behind every SSE watcher: one registry listener per namespace, one ring
of recent changes with sequence numbers, any number of readers.

Each change gets the next sequence number, which is the SSE event id. A watcher that
reconnects with ``Last-Event-ID`` gets what it missed from the ring, or, when the ring has
moved past it (or the host restarted: the feed's epoch changed), a fresh snapshot. The ring is
bounded (`RING_SIZE` changes); nothing waits on a slow reader, which falls back to a snapshot.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any

import anyio
from ioplex import Registry

RING_SIZE = 65_536
"""Changes kept for readers that fall behind or reconnect."""


class ChangeFeed:
    """Changes of one registry (`host.points` or `host.ui`), numbered."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.epoch = secrets.token_hex(4)
        """Part of every event id: an id from another run of the feed is never resumed."""
        self.seq = 0
        self.changes = 0
        self._ring: deque[tuple[int, str, Any, str, float]] = deque(maxlen=RING_SIZE)
        self._wakeup = anyio.Event()
        self._encoded: dict[tuple[int, int], tuple[int, list[bytes]]] = {}
        self._listener = registry.listen(self._on_change, "*")
        self.closed = False

    def close(self) -> None:
        self._listener.close()
        self.closed = True
        self._wakeup.set()

    def _on_change(self, event: Any) -> None:
        self.seq += 1
        self._ring.append((self.seq, event[0], event[1], event[4], event[3]))
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def wait(self, after: int) -> None:
        """Return once a change after `after` exists (or the feed closed)."""
        while self.seq <= after and not self.closed:
            if self._wakeup.is_set():
                self._wakeup = anyio.Event()
            await self._wakeup.wait()

    def since(self, after: int) -> list[tuple[int, str, Any, str, float]] | None:
        """Changes with a sequence number above `after`, or None when some are gone."""
        ring = self._ring
        if after >= self.seq:
            return []
        if not ring or ring[0][0] > after + 1:
            return None
        start = len(ring) - (self.seq - after)
        if start < 0:
            return None
        if start == 0:
            return list(ring)
        return [ring[i] for i in range(start, len(ring))]

    def encoded_since(self, after: int, encode: Any) -> tuple[int, list[bytes]] | None:
        """`since(after)` encoded by ``encode(changes, last_seq)``, shared by every reader
        at the same position: 100 watchers of ``*`` woken by one batch encode it once."""
        key = (after, self.seq)
        cached = self._encoded.get(key)
        if cached is None:
            changes = self.since(after)
            if changes is None:
                return None
            if len(self._encoded) > 64:
                self._encoded.clear()
            last = changes[-1][0] if changes else after
            cached = self._encoded[key] = (last, encode(changes, last))
        return cached

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def parse_id(self, text: str | None) -> int | None:
        """The sequence number of a ``Last-Event-ID`` from this feed, else None."""
        if not text:
            return None
        epoch, _, seq = text.strip().partition("-")
        if epoch != self.epoch or not seq.isdigit() or len(seq) > 18:
            return None
        number = int(seq)
        return number if number <= self.seq else None
