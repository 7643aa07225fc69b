"""The VSCP bus inside a host, and the plugin's state in each host.

The bus is the host's event bus carrying `Event` objects: whoever takes a VSCP event in (a
server client, a link driver) publishes it with `host.publish(event, source)`, and every
`on_event` sees it. The plugin's own `on_event` (`route`) hands each event to the server's
clients and the send-to-remote rows; each link driver's `on_event` forwards it to its remote.

State is per host, never per process: tests and embedders run several hosts in one process.
"""

from __future__ import annotations

import itertools
import logging
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
from ioplex.serving import RateLimitedLog

from .event import Event

if TYPE_CHECKING:
    from .link import Link
    from .remote import RemoteRow
    from .server import Server

PLUGIN = "vscp_link"
"""The plugin's name."""
SERVER_SOURCE = f"plugin:{PLUGIN}"
"""The `source` of the events the server's clients SEND (plugin sources never clash with
instance names, which cannot contain a colon)."""
LOOP_WINDOW = 2.0
"""Seconds an event is remembered by the loop guard, by default."""
LOOP_MAX_KEYS = 200_000
"""Most events one generation of the loop guard remembers (memory bound)."""

log = logging.getLogger("ioplex.plugin.vscp_link")


def loop_key(event: Event) -> tuple[bytes, int, int, int, bytes]:
    """What identifies an event across hops: every server keeps GUID, class, type,
    timestamp and data as they are, while obid, head bits and the datetime's form change."""
    return (event.guid, event.vscp_class, event.vscp_type, event.timestamp, event.data)


class LoopGuard:
    """A short-lived memory of the events this host has seen, to end relay cycles.

    Nothing in the link protocol stops a cycle (two hosts linked both ways, two one-way
    `out` links A→B and B→A, a send-to-remote row pointing back at its own host): obids are
    local to each server. Every event that enters the host (a link receives it, a server
    client SENDs it) is checked with `admit`; every event on the bus is remembered with
    `note`. One that comes back within `window` seconds is a repeat: dropped, counted in
    `repeats`, and warned about at most once a minute.

    Two generations of a dict, swapped every `window` seconds (or when one holds
    `max_keys`): a key is remembered for between one and two windows, at one dict lookup
    per event.
    """

    def __init__(
        self,
        window: float = LOOP_WINDOW,
        max_keys: int = LOOP_MAX_KEYS,
        clock: Any = time.monotonic,
    ) -> None:
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._current: dict[tuple[Any, ...], None] = {}
        self._previous: dict[tuple[Any, ...], None] = {}
        self._rotated = clock()
        self.repeats = 0
        """Events dropped as repeats since the start."""
        self.early_rotations = 0
        """Generations cut short because they were full (events forgotten early)."""
        self._warn = RateLimitedLog(log, 60.0)

    def _rotate_if_due(self) -> None:
        now = self._clock()
        if now - self._rotated >= self.window:
            self._previous = self._current if now - self._rotated < 2 * self.window else {}
            self._current = {}
            self._rotated = now
        elif len(self._current) >= self.max_keys:
            self.early_rotations += 1
            self._previous, self._current = self._current, {}
            self._rotated = now

    def note(self, event: Event) -> None:
        """Remember an event of the bus (leaving the host, or made here)."""
        if self.window <= 0:
            return
        self._rotate_if_due()
        self._current[loop_key(event)] = None

    def admit(self, event: Event, where: str) -> bool:
        """Whether an event entering the host from `where` is new; a repeat is counted,
        warned about, and must be dropped."""
        if self.window <= 0:
            return True
        self._rotate_if_due()
        key = loop_key(event)
        if key in self._current or key in self._previous:
            self.repeats += 1
            self._warn.warning(
                "repeat",
                "vscp_link: dropped an event seen %.3g s ago or less, back from %s: a relay "
                "loop (%d repeats so far); first: %s",
                2 * self.window,
                where,
                self.repeats,
                event.line(),
            )
            return False
        self._current[key] = None
        return True


@dataclass
class HostState:
    server: Server | None = None
    rows: list[RemoteRow] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)
    loops: LoopGuard = field(default_factory=LoopGuard)
    _channels: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_channel(self) -> int:
        """A channel id unique in this host: server clients and link instances alike."""
        return next(self._channels)

    def link_interfaces(self) -> Iterator[tuple[int, int, bytes, str, datetime]]:
        for link in self.links.values():
            yield link.interface()


_STATES: weakref.WeakKeyDictionary[Any, HostState] = weakref.WeakKeyDictionary()


def state_of(host: Any) -> HostState:
    """This plugin's state in `host`, created on first use."""
    state = _STATES.get(host)
    if state is None:
        state = _STATES[host] = HostState()
    return state


def route(host: Any, source: str, event: Any) -> None:
    """Hand one bus event to the server's clients and the send-to-remote rows."""
    if event.__class__ is not Event:
        return
    state = _STATES.get(host)
    if state is None:
        return
    if source != SERVER_SOURCE and source not in state.links:  # those were admitted already
        state.loops.note(event)
    server = state.server
    if server is not None and source != SERVER_SOURCE:  # it delivered its clients' events itself
        server.deliver(event)
    for row in state.rows:
        row.offer(event)


async def wait_server(host: Any, timeout: float = 10.0) -> Server:
    """The host's running server interface, once it listens (for tests and embedders)."""
    with anyio.fail_after(timeout):
        while True:
            state = _STATES.get(host)
            if state is not None and state.server is not None and state.server.address:
                return state.server
            await anyio.sleep(0.01)
