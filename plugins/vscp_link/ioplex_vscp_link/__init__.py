"""ioplex plugin `vscp_link`: the VSCP tcp/ip link protocol.

- The I/O server type ``vscp_link`` (`Link`): a link to a remote VSCP server, like vscpd's
  tcpiplink driver, with measurement points.
- A server interface (``[plugins.vscp_link.server]``, `Server`): VSCP clients log in to the
  host's VSCP bus.
- Send-to-remote rows (``[[plugins.vscp_link.send_to_remote]]``, `RemoteRow`): vscpd's
  decision-matrix action 0x43.

All of them meet on the host's VSCP bus: `Event` objects published on the host's event bus
(see `bus`). The protocol code is written here from the VSCP spec and vscpd's sources: no
maintained Python library implements it.
"""

from __future__ import annotations

from typing import Any

import anyio
import ioplex

from .bus import PLUGIN, SERVER_SOURCE, LoopGuard, route, state_of, wait_server
from .event import Event, parse_line
from .filter import Fields, Filter
from .guid import format_guid, parse_guid
from .link import Link
from .measurement import Measurement, decode
from .remote import RemoteRow, couriers
from .server import Server


class GuardedServer(Server):
    """The server interface behind the host's loop guard: an event a client SENDs that this
    host has seen within the guard's window (it went round a cycle of links and came back)
    reaches neither the other clients nor the bus."""

    def __init__(self, *args: Any, loops: LoopGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loops = loops

    def dispatch(self, event: Event, sender: Any) -> None:
        if self.loops.admit(event, f"vscp_link server {sender.describe()}"):
            super().dispatch(event, sender)


@ioplex.hookimpl
def register_ioserver_types(register: Any) -> None:
    register(
        PLUGIN,
        Link,
        ioplex.load_schema(__package__, "schema.json"),
        "a VSCP tcp/ip link to a remote VSCP server (vscpd, link nodes): events and measurements",
    )


@ioplex.hookimpl
def plugin_settings_schema() -> dict[str, Any]:
    return ioplex.load_schema(__package__, "settings.schema.json")


@ioplex.hookimpl
def check_config(
    settings: dict[str, Any], ioservers: dict[str, ioplex.IOServerConfig]
) -> list[ioplex.Problem]:
    """Filters, masks, addresses, GUIDs and event templates: what the schemas cannot check."""
    problems: list[ioplex.Problem] = []
    for name, io in ioservers.items():
        for side in ("in", "out"):
            try:
                Link.parse_filter(io.options, side, f"ioservers.{name}")
            except ioplex.ConfigError as exc:
                problems += exc.problems
    for i, row in enumerate(settings["send_to_remote"]):
        try:
            RemoteRow(i, row)
        except ioplex.ConfigError as exc:
            problems += exc.problems
    if settings["server"]["enabled"]:
        try:
            Server(settings["server"], publish=lambda event: None, channels=lambda: 0)
        except ioplex.ConfigError as exc:
            problems += exc.problems
    return problems


@ioplex.hookimpl
async def serve(host: Any, settings: dict[str, Any]) -> None:
    """Run the server interface and the send-to-remote rows, if configured."""
    server_settings = settings["server"]
    rows_settings = settings["send_to_remote"]
    if not server_settings["enabled"] and not rows_settings:
        return
    state = state_of(host)
    try:  # check_config found these problems already; this is for embedders that skip it
        rows = [RemoteRow(i, row) for i, row in enumerate(rows_settings)]
        server = None
        if server_settings["enabled"]:
            server = GuardedServer(
                server_settings,
                publish=lambda event: host.publish(event, source=SERVER_SOURCE),
                channels=state.next_channel,
                interfaces=state.link_interfaces,
                loops=state.loops,
            )
    except ioplex.ConfigError as exc:
        raise ioplex.FatalError(str(exc)) from None
    try:
        async with anyio.create_task_group() as tg:
            state.rows = rows
            for courier in couriers(rows):
                tg.start_soon(courier.run, name=f"vscp_link {courier.describe()}")
            if server is not None:
                await tg.start(server.serve, name="vscp_link server")
                state.server = server
    finally:
        state.server = None
        state.rows = []


@ioplex.hookimpl
def on_event(host: Any, source: str, event: Any) -> None:
    route(host, source, event)


__all__ = [
    "Event",
    "Fields",
    "Filter",
    "Link",
    "LoopGuard",
    "Measurement",
    "RemoteRow",
    "Server",
    "decode",
    "format_guid",
    "parse_guid",
    "parse_line",
    "state_of",
    "wait_server",
]
