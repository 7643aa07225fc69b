"""The VSCP bus inside a host, and the plugin's state in each host.

The bus is the host's event bus carrying `Event` objects: whoever takes a VSCP event in (a
server client, a link driver) publishes it with `host.publish(event, source)`, and every
`on_event` sees it. The plugin's own `on_event` (`route`) hands each event to the server's
clients and the send-to-remote rows; each link driver's `on_event` forwards it to its remote.

State is per host, never per process: tests and embedders run several hosts in one process.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

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


@dataclass
class HostState:
    server: Server | None = None
    rows: list[RemoteRow] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)
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
