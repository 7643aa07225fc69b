"""The server interface: a VSCP tcp/ip link server for the host's VSCP bus.

Any VSCP client (vscpd's tcpiplink driver, node-vscp-tcp, vscp-works, another ioplex host's
link) can log in, SEND events onto the host's bus and receive the bus's events by RETR or in
a receive loop. An event SENT by one client goes straight to every other logged-in client
whose filter accepts it (never back to its sender) and onto the host's bus, where link
drivers, send-to-remote rows and other plugins see it. Events from elsewhere on the bus reach
the clients through the plugin's `on_event` (`deliver`).

Delivery is a non-blocking append to each client's bounded queue: a client that falls behind
loses its oldest events (STAT's overrun count), and nobody else waits for it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus
from ioplex import ConfigError, Problem

from . import wire
from .event import Event
from .filter import Filter, parse_fields
from .guid import interface_guid, machine_guid, parse_guid
from .session import Session
from .throttle import LoginThrottle

log = logging.getLogger("ioplex.plugin.vscp_link.server")

WHERE = "plugins.vscp_link.server"

INTERFACE_TCPIP = 4
INTERFACE_LEVEL2_DRIVER = 3


@dataclass(frozen=True)
class User:
    """A login and what it may do."""

    name: str
    password: str
    send: bool
    receive: bool
    set_filter: bool
    set_guid: bool
    filter: Filter

    def __repr__(self) -> str:  # never the password
        return f"User({self.name!r})"


def parse_listen(text: str, where: str = f"{WHERE}.listen") -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` → (host, port); raises ConfigError naming `where`."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError([Problem(where, f'{text!r} is not host:port (e.g. "127.0.0.1:9598")')])
    return host, int(port)


def _problem(where: str, message: str) -> ConfigError:
    return ConfigError([Problem(where, message)])


class Server:
    """The listening server and its clients. Build with `from_settings`, run with `serve`."""

    def __init__(
        self,
        settings: dict[str, Any],
        publish: Callable[[Event], None],
        channels: Callable[[], int],
        interfaces: Callable[[], Iterator[tuple[int, int, bytes, str, datetime]]] = lambda: iter(
            ()
        ),
    ) -> None:
        self.settings = settings
        self._publish = publish
        self._next_channel = channels
        self._other_interfaces = interfaces
        self.listen = parse_listen(settings["listen"])
        guid_text = settings["guid"]
        try:
            self.guid = parse_guid(guid_text) if guid_text else machine_guid()
        except ValueError as exc:
            raise _problem(f"{WHERE}.guid", str(exc)) from None
        self.users: dict[str, User] = {}
        for i, row in enumerate(settings["users"]):
            where = f"{WHERE}.users[{i}]"
            if row["name"] in self.users:
                raise _problem(f"{where}.name", f"user {row['name']!r} is defined twice")
            try:
                flt = Filter(parse_fields(row["filter"]), None)
            except ValueError as exc:
                raise _problem(f"{where}.filter", str(exc)) from None
            try:
                flt = flt.with_mask(parse_fields(row["mask"]))
            except ValueError as exc:
                raise _problem(f"{where}.mask", str(exc)) from None
            self.users[row["name"]] = User(
                row["name"],
                row["password"],
                row["send"],
                row["receive"],
                row["set_filter"],
                row["set_guid"],
                flt,
            )
        self.allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for i, entry in enumerate(settings["allow"]):
            try:
                self.allow.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise _problem(
                    f"{WHERE}.allow[{i}]", f"{entry!r} is not an IP address or network"
                ) from None
        self.queue_size: int = settings["queue_size"]
        self.max_clients: int = settings["max_clients"]
        self.keepalive: float = settings["keepalive"]
        self.login_timeout: float = settings["login_timeout"]
        self.idle_timeout: float = settings["idle_timeout"]
        self.send_timeout: float = settings["send_timeout"]
        self.throttle = LoginThrottle(settings["auth_delay"], settings["auth_max_delay"])
        self.clients: dict[int, Session] = {}
        self._receivers: tuple[Session, ...] = ()
        self.address: tuple[str, int] | None = None
        """Where the server listens once started: (host, port), the real port when 0 was asked."""
        self.capabilities = wire.CAPABILITY_INTERFACE | wire.CAPABILITY_TCPIP
        self.banner = (
            b"Welcome to the ioplex VSCP tcp/ip link server.\r\n"
            b"Version: "
            + ".".join(map(str, wire.PROTOCOL_VERSION[:3])).encode("ascii")
            + b"-"
            + str(wire.PROTOCOL_VERSION[3]).encode("ascii")
            + b" (ioplex-vscp-link)\r\n"
            b"Implements the link protocol of the VSCP project, https://www.vscp.org\r\n" + wire.OK
        )
        self.refused = 0
        """Connections refused: address not allowed, or too many clients."""

    def interface_guid(self, channel: int) -> bytes:
        return interface_guid(self.guid, channel)

    # -- running -------------------------------------------------------------------------------
    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        host, port = self.listen
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        except OSError as exc:
            # Retried by the supervisor: the port may be free again shortly.
            raise OSError(
                f"vscp_link server cannot listen on {host}:{port} ({WHERE}.listen): "
                f"{exc.strerror or exc}"
            ) from None
        async with listener:
            sockname = listener.listeners[0].extra(SocketAttribute.local_address)
            self.address = (str(sockname[0]), int(sockname[1]))
            for sub in listener.listeners:
                family = sub.extra(SocketAttribute.family)
                self.capabilities |= (
                    wire.CAPABILITY_IP6 if family.name == "AF_INET6" else wire.CAPABILITY_IP4
                )
            log.info(
                "vscp_link server listening on %s:%d (users: %s)",
                self.address[0],
                self.address[1],
                ", ".join(self.users) or "none",
            )
            task_status.started()
            try:
                await listener.serve(self._handle)
            finally:
                self.address = None

    async def _handle(self, stream: SocketStream) -> None:
        try:
            remote = stream.extra(SocketAttribute.remote_address)
            ip = str(remote[0])
            peer = f"[{ip}]:{remote[1]}" if ":" in ip else f"{ip}:{remote[1]}"
        except (OSError, anyio.TypedAttributeLookupError):
            ip, peer = "?", "?"
        async with stream:
            if self.allow and not self._allowed(ip):
                self.refused += 1
                log.warning("vscp_link server: refused %s: not in %s.allow", peer, WHERE)
                await self._refuse(stream, wire.INVALID_REMOTE)
                return
            if len(self.clients) >= self.max_clients:
                self.refused += 1
                log.warning(
                    "vscp_link server: refused %s: %d clients already (%s.max_clients)",
                    peer,
                    len(self.clients),
                    WHERE,
                )
                await self._refuse(stream, wire.ERROR)
                return
            session = Session(self, stream, self._next_channel(), peer)
            self.clients[session.channel] = session
            log.debug("vscp_link server: %s connected", session.describe())
            try:
                await session.run()
            except Exception:  # a bug in one session must not take the listener down
                log.exception("vscp_link server: %s failed", session.describe())
            finally:
                del self.clients[session.channel]
                if session in self._receivers:
                    self._receivers = tuple(s for s in self._receivers if s is not session)
                log.debug("vscp_link server: %s disconnected", session.describe())

    def _allowed(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    async def _refuse(self, stream: SocketStream, reply: bytes) -> None:
        with anyio.move_on_after(self.send_timeout):
            try:
                await stream.send(reply)
            except (anyio.BrokenResourceError, OSError):
                pass

    # -- events --------------------------------------------------------------------------------
    def logged_in(self, session: Session) -> None:
        if session.user is not None and session.user.receive:
            self._receivers = self._receivers + (session,)

    def dispatch(self, event: Event, sender: Session) -> None:
        """An event SENT by a client: to the other clients, then onto the host's bus."""
        self.deliver(event, sender)
        self._publish(event)

    def deliver(self, event: Event, sender: Session | None = None) -> None:
        """Queue an event for every receiving client that accepts it, except `sender`.

        A Level I event over Level II (class 512-1023) whose first 16 data bytes name a
        client's GUID goes to that client only (vscpd's routing).
        """
        receivers = self._receivers
        if 512 <= event.vscp_class < 1024 and len(event.data) >= 16:
            target = event.data[:14]
            chosen = tuple(s for s in receivers if s.guid[:14] == target)
            if chosen:
                receivers = chosen
        size = len(event.data)
        for session in receivers:
            if session is not sender and (
                session.filter.accepts_all or session.filter.accepts(event)
            ):
                session.queue.put(event)
                session.received_frames += 1
                session.received_data += size

    def interfaces(self) -> Iterator[tuple[int, int, bytes, str, datetime]]:
        """(channel, type, GUID, name, started) of every interface, for INTERFACE LIST."""
        for session in list(self.clients.values()):
            yield (
                session.channel,
                INTERFACE_TCPIP,
                session.guid,
                f"tcp/ip client {session.peer}",
                session.started,
            )
        yield from self._other_interfaces()
