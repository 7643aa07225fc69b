"""The serving side's change log: which exposed points changed, by a growing sequence number.

A client that has seen everything up to sequence ``s`` asks for what changed after ``s`` and
gets each changed point once, with its value *now* (changes are coalesced per point), so a
client that was away for a while still ends up with the final value of every point. Entries
are appended on the registry's hot path (a synchronous `Registry.listen` callback: a few
list appends) and compacted in amortised O(1), so the log holds at most about twice the
number of points that ever changed. Entries of points that were removed are dropped at
compaction; a client asking from before such a drop is told to resynchronise in full, as is
one whose ``epoch`` (this log's identity, new at every server start) is not this one.
"""

from __future__ import annotations

import bisect
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Self

import anyio
from ioplex import Listener, PointEvent, Registry

MAX_STAMPS = 65_536
"""rioget timestamps remembered; a client presenting a forgotten one gets the full state."""
COMPACT_SLACK = 1024
"""Entries the log may hold beyond twice its live entries before it compacts."""


class _Namespace:
    """The log of one registry (I/O points or UI variables)."""

    __slots__ = ("latest", "limit", "names", "registry", "seqs")

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.latest: dict[str, int] = {}
        """The sequence number of each name's last change: its only live entry."""
        self.seqs: list[int] = []
        self.names: list[str] = []
        self.limit = COMPACT_SLACK


class ResyncNeeded(Exception):
    """The client's position cannot be answered with changes: it must fetch the full state."""


class ChangeLog:
    """Changes of the exposed I/O points and UI variables of one host, in one sequence.

    Use as a context manager: entering starts listening to the registries, leaving stops
    and wakes every waiting long poll.
    """

    def __init__(
        self,
        points: Registry,
        ui: Registry,
        io_patterns: Iterable[str] = ("*",),
        ui_patterns: Iterable[str] = ("*",),
    ) -> None:
        self.epoch = secrets.token_hex(8)
        self.changed_us = time.time_ns() // 1000
        """When the last change was recorded (or the log started), µs since the epoch."""
        self._stamps: OrderedDict[int, int] = OrderedDict()
        """rioget timestamps handed out → the log position each stands for (bounded)."""
        self._last_stamp = (0, 0)
        """The latest (timestamp, position) handed out."""
        self.seq = 0
        self.floor = 0
        """Positions below this one cannot be answered any more (entries were dropped)."""
        self.closed = False
        self.topology = 0
        """Incremented by `touch` when exposed points appeared or vanished."""
        self._io_patterns = tuple(io_patterns)
        self._ui_patterns = tuple(ui_patterns)
        self._spaces = {"io": _Namespace(points), "ui": _Namespace(ui)}
        self._listeners: list[Listener] = []
        self._event: anyio.Event | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def __enter__(self) -> Self:
        io, ui = self._spaces["io"], self._spaces["ui"]
        if self._io_patterns:
            self._listeners.append(io.registry.listen(self._recorder(io), *self._io_patterns))
        if self._ui_patterns:
            self._listeners.append(ui.registry.listen(self._recorder(ui), *self._ui_patterns))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self.closed = True
        self._wake()

    # -- the hot path ---------------------------------------------------------------------------
    def _recorder(self, space: _Namespace) -> Callable[[PointEvent], None]:
        latest, seqs, names = space.latest, space.seqs, space.names

        def record(event: PointEvent) -> None:
            self.seq = seq = self.seq + 1
            self.changed_us = time.time_ns() // 1000
            name = event.name
            latest[name] = seq
            seqs.append(seq)
            names.append(name)
            if len(seqs) > space.limit:
                self._compact(space)
            wakeup = self._event
            if wakeup is not None:
                self._event = None
                wakeup.set()

        return record

    def _compact(self, space: _Namespace) -> None:
        latest, registry = space.latest, space.registry
        keep_seqs: list[int] = []
        keep_names: list[str] = []
        for seq, name in zip(space.seqs, space.names):
            if latest.get(name) != seq:
                continue
            if name in registry:
                keep_seqs.append(seq)
                keep_names.append(name)
            else:  # the point is gone: forget it, and refuse deltas from before this entry
                del latest[name]
                self.floor = max(self.floor, seq)
        space.seqs[:] = keep_seqs  # in place: the recorder closure holds these lists
        space.names[:] = keep_names
        space.limit = 2 * len(keep_seqs) + COMPACT_SLACK

    def _wake(self) -> None:
        wakeup, self._event = self._event, None
        if wakeup is not None:
            wakeup.set()

    # -- reading -------------------------------------------------------------------------------
    def check(self, epoch: str | None, since: int) -> None:
        """Raise ResyncNeeded unless changes after `since` (of log `epoch`) can be answered."""
        if epoch is not None and epoch != self.epoch:
            raise ResyncNeeded("the server restarted (new epoch)")
        if since > self.seq:
            raise ResyncNeeded(f"position {since} is ahead of the log ({self.seq})")
        if since < self.floor:
            raise ResyncNeeded(f"position {since} is older than the log keeps ({self.floor})")

    def since(
        self, since: int, limit: int, spaces: tuple[str, ...] = ("io", "ui")
    ) -> tuple[list[tuple[int, str, str]], int, bool]:
        """Changes after `since`, oldest first: ``([(seq, "io"|"ui", name)], next, more)``.

        At most `limit` entries; `more` says the answer was cut, and `next` is the position
        to ask from next time (the current sequence when nothing was cut). Call `check` first.
        """
        found: list[tuple[int, str, str]] = []
        cutoff: int | None = None
        for key in spaces:
            space = self._spaces[key]
            seqs, names, latest = space.seqs, space.names, space.latest
            taken = 0
            for i in range(bisect.bisect_right(seqs, since), len(seqs)):
                seq = seqs[i]
                name = names[i]
                if latest.get(name) == seq:
                    found.append((seq, key, name))
                    taken += 1
                    if taken >= limit:
                        cutoff = seq if cutoff is None else min(cutoff, seq)
                        break
        if cutoff is None and len(found) <= limit:
            if len(spaces) > 1:
                found.sort()
            return found, self.seq, False
        found.sort()
        if cutoff is not None:
            found = [entry for entry in found if entry[0] <= cutoff]
        found = found[:limit]
        return found, found[-1][0], True

    async def wait(self, since: int, timeout: float) -> bool:
        """Wait until something changed after `since`, the set of points changed (`touch`),
        the log closed, or `timeout` passed; return whether there are changes."""
        topology = self.topology
        with anyio.move_on_after(timeout):
            while self.seq <= since and self.topology == topology and not self.closed:
                if self._event is None:
                    self._event = anyio.Event()
                await self._event.wait()
        return self.seq > since

    def touch(self) -> None:
        """Say that points appeared or vanished: waiting long polls answer now, so clients
        see the new point counts."""
        self.topology += 1
        self._wake()

    # -- rioget timestamps ---------------------------------------------------------------------
    def timestamp(self, seq: int | None = None) -> int:
        """Position `seq` (default: the current one) as a rioget timestamp.

        As HSYCO documents it: the time of the last change, in microseconds since the epoch.
        Timestamps grow strictly with the position (a change recorded within the same
        microsecond as the previous one, or after the wall clock stepped back, gets the
        previous timestamp + 1), and the log remembers which position each one it handed out
        stands for, so a client's next poll asks for exactly what it has not seen.
        """
        if seq is None:
            seq = self.seq
        last_stamp, last_seq = self._last_stamp
        if last_stamp and seq == last_seq:
            return last_stamp
        stamp = self.changed_us if seq == self.seq else time.time_ns() // 1000
        stamp = max(stamp, last_stamp + 1, 2)
        self._last_stamp = (stamp, seq)
        self._stamps[stamp] = seq
        while len(self._stamps) > MAX_STAMPS:
            self._stamps.popitem(last=False)
        return stamp

    def position(self, timestamp: int) -> int | None:
        """The log position of a rioget timestamp, or None when it needs the full state
        (1, a timestamp of another server run, or one too old to answer with changes)."""
        seq = self._stamps.get(timestamp)
        if seq is None or seq < self.floor or seq > self.seq:
            return None
        return seq

    def stats(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "entries": {k: len(s.seqs) for k, s in self._spaces.items()},
            "points": {k: len(s.latest) for k, s in self._spaces.items()},
        }
