"""The server interface: a VSCP tcp/ip link server for the host's VSCP bus.

Any VSCP client (vscpd's tcpiplink driver, node-vscp-tcp, vscp-works, another ioplex host's
link) can log in, SEND events onto the host's bus and receive the bus's events by RETR or in
a receive loop. An event SENT by one client goes straight to every other logged-in client
whose filter accepts it (never back to its sender) and onto the host's bus, where link
drivers, send-to-remote rows and other plugins see it. Events from elsewhere on the bus reach
the clients through the plugin's `on_event` (`deliver`).

Delivery is a non-blocking append to each client's bounded queue: a client that falls behind
loses its oldest events (STAT's overrun count), and nobody else waits for it.

The defences are the kernel's server toolkit (`ioplex.serving`): the allow-list, admission
(caps on connections not yet logged in, per network prefix and in all; an absolute login
deadline; a pre-login output budget), password throttling per prefix, and an accept loop that
waits out EMFILE/ENFILE instead of ending the service. README "What the server guarantees".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus
from ioplex import ConfigError, Problem
from ioplex.serving import (
    Admission,
    AllowList,
    AuthThrottle,
    RateLimitedLog,
    format_listen,
    serve_tcp,
)
from ioplex.serving import parse_listen as _parse_listen

from . import wire
from .event import Event
from .filter import Filter, parse_fields
from .guid import interface_guid, machine_guid, parse_guid
from .session import Session

log = logging.getLogger("ioplex.plugin.vscp_link.server")

WHERE = "plugins.vscp_link.server"

INTERFACE_TCPIP = 5
"""vscpd's interface type of a tcp/ip client (``clientlist.h``: 4 is a Level III driver)."""
INTERFACE_LEVEL2_DRIVER = 3
LOG_INTERVAL = 60.0
"""Seconds between two log lines of one kind of refusal (the rest are counted in the next)."""
REFUSE_TIMEOUT = 2.0
"""Seconds a refusal line may take to write before the connection is just closed."""


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
    try:
        return _parse_listen(text)
    except ValueError as exc:
        raise ConfigError([Problem(where, str(exc))]) from None


def parse_allow(entries: list[str], where: str = f"{WHERE}.allow") -> AllowList:
    """The allow-list setting; ConfigError naming the entry at fault."""
    for i, entry in enumerate(entries):
        try:
            AllowList.parse([entry], where)
        except ValueError as exc:
            message = str(exc).partition(": ")[2] or str(exc)
            raise ConfigError([Problem(f"{where}[{i}]", message)]) from None
    return AllowList.parse(entries, where)


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
        self.where = WHERE
        self.allow = parse_allow(settings["allow"])
        self.queue_size: int = settings["queue_size"]
        self.max_clients: int = settings["max_clients"]
        self.keepalive: float = settings["keepalive"]
        self.login_timeout: float = settings["login_timeout"]
        self.idle_timeout: float = settings["idle_timeout"]
        self.send_timeout: float = settings["send_timeout"]
        self.admission = Admission(
            max_connections=settings["max_clients"],
            max_unauthenticated=settings["max_unauthenticated"],
            login_deadline=settings["login_timeout"],
            output_budget=settings["pre_login_output"],
        )
        self.ratelog = RateLimitedLog(log, LOG_INTERVAL)
        """One log line per kind of refusal per interval, for every client together."""
        self.throttle = AuthThrottle(
            free_failures=settings["auth_free_failures"],
            base_delay=settings["auth_lockout"],
            max_delay=settings["auth_max_lockout"],
            global_rate=settings["auth_global_rate"],
            log=log,
            what="vscp_link server",
            log_interval=LOG_INTERVAL,
        )
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
        """Connections refused: address not allowed, or every slot held by logged-in
        clients."""
        self.over_budget = 0
        """Connections closed for writing past `pre_login_output` before logging in."""
        self.login_timeouts = 0
        """Connections closed for not logging in within `login_timeout`."""

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
                f"vscp_link server cannot listen on {format_listen(host, port)} "
                f"({WHERE}.listen): {exc.strerror or exc}"
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
                "vscp_link server listening on %s (users: %s)",
                format_listen(*self.address),
                ", ".join(self.users) or "none",
            )
            task_status.started()
            try:
                # EMFILE/ENFILE pause accepting (logged once a minute); they never end the
                # service, so logged-in clients are never dropped by a flood of connections.
                await serve_tcp(listener, self._handle, log=log, what="vscp_link server")
            finally:
                self.address = None

    async def _handle(self, stream: SocketStream) -> None:
        try:
            remote = stream.extra(SocketAttribute.remote_address)
            ip = str(remote[0])
            peer = format_listen(ip, int(remote[1]))
        except (OSError, anyio.TypedAttributeLookupError, IndexError, TypeError, ValueError):
            ip, peer = "?", "?"
        async with stream:
            if not self.allow.allows(ip):
                self.refused += 1
                self.ratelog.warning(
                    "not-allowed", "vscp_link server: refused %s: not in %s.allow", peer, WHERE
                )
                await self._refuse(stream, wire.INVALID_REMOTE)
                return
            ticket = self.admission.admit(ip)
            if ticket is None:
                self.refused += 1
                self.ratelog.warning(
                    "full",
                    "vscp_link server: refused %s: %d clients logged in already (%s.max_clients)",
                    peer,
                    self.admission.connections,
                    WHERE,
                )
                await self._refuse(stream, wire.ERROR)
                return
            session = Session(self, stream, self._next_channel(), peer, ticket, ip)
            self.clients[session.channel] = session
            log.debug("vscp_link server: %s connected", session.describe())
            try:
                with ticket, ticket.scope:
                    await session.run()
            except Exception as exc:  # a bug in one session must not take the listener down
                self.ratelog.error(
                    "session-failed",
                    "vscp_link server: %s failed: %r",
                    session.describe(),
                    exc,
                )
                log.debug("vscp_link server: %s failed", session.describe(), exc_info=True)
            finally:
                del self.clients[session.channel]
                if session in self._receivers:
                    self._receivers = tuple(s for s in self._receivers if s is not session)
                if ticket.timed_out:
                    self.login_timeouts += 1
                    self.ratelog.info(
                        "login-deadline",
                        "vscp_link server: closed %s: not logged in within %.0f s "
                        "(%s.login_timeout)",
                        peer,
                        self.login_timeout,
                        WHERE,
                    )
                elif ticket.evicted:
                    self.ratelog.info(
                        "evicted",
                        "vscp_link server: closed %s, the oldest of the connections from its "
                        "network not logged in, to make room for a newer one "
                        "(%s.max_unauthenticated, %s.max_clients)",
                        peer,
                        WHERE,
                        WHERE,
                    )
                log.debug("vscp_link server: %s disconnected", session.describe())

    async def _refuse(self, stream: SocketStream, reply: bytes) -> None:
        with anyio.move_on_after(min(self.send_timeout, REFUSE_TIMEOUT)):
            try:
                await stream.send(reply)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
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
