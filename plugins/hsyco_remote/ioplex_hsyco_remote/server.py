"""The serving side: ``[plugins.hsyco_remote.server]`` as an HTTPS server inside the host.

uvicorn serves the Starlette application through its programmatic API, in the host's own
task: the plugin's `serve` hook runs it for the life of the host, and cancelling the host
shuts it down cleanly (long polls are woken and answered first). The listening socket is
bound here, so port 0 works: the bound address is logged and written, with the certificate's
fingerprint, to ``<data_dir>/hsyco_remote/server.json`` for tools and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import h11
import uvicorn
from ioplex import FatalError, Problem, load_schema
from ioplex.serving import (
    Admission,
    AllowList,
    HeadMeter,
    InfoFile,
    RateLimitedLog,
    RemoteWrites,
    Ticket,
    accept_sockets,
    bind_tcp,
    parse_listen,
    quiet_loggers,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import certificates
from .access import Gate
from .api import Api, error
from .changelog import ChangeLog
from .exposure import Exposure, compile_patterns
from .rioget import PATH as RIOGET_PATH
from .rioget import Rioget
from .wire import dumps

log = logging.getLogger("ioplex.plugin.hsyco_remote.server")

WHERE = "plugins.hsyco_remote.server"
STATE_DIR = "hsyco_remote"
INFO_FILE = "server.json"
DEFAULTS = {
    key: sub["default"]
    for key, sub in load_schema(__package__, "settings.schema.json")["properties"]["server"][
        "properties"
    ].items()
}
MAX_CONNECTIONS = 256
"""Connections in all (logged-in clients keep theirs; unauthenticated ones are evicted first)."""
MAX_UNAUTHENTICATED = 16
"""Connections per client prefix on which no request has been let in yet."""
LOGIN_DEADLINE = 15.0
"""Seconds from accept by which a connection must have had a request let in, TLS handshake
included (absolute: bytes received do not extend it)."""
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client may take to complete the TLS handshake."""
HEAD_TIMEOUT = 10.0
"""Seconds a client may take to send a complete request head (line and headers)."""
KEEP_ALIVE = 30
"""Seconds an idle kept-alive connection stays open between requests."""
MAX_HEAD = 16 * 1024
"""The largest request head (request line with its query, and headers), in bytes."""
CLOSE_GRACE = 1.0
"""Seconds a refused client has to complete TLS's closing handshake before it is cut off."""
TOPOLOGY_CHECK = 0.5
"""Seconds between checks of the exposed point count (a length comparison when unchanged)."""
SHUTDOWN_GRACE = 3.0
"""Seconds the server may take to finish answering requests when the host stops."""


@dataclass(frozen=True)
class ServerSettings:
    """``[plugins.hsyco_remote.server]``, checked beyond what its JSON Schema can say."""

    bind_host: str
    port: int
    password: str
    allowed: AllowList
    writes: RemoteWrites
    io_filter: tuple[str, ...]
    ui_filter: tuple[str, ...]
    certificate: Path | None
    key: Path | None
    names: tuple[str, ...] = ()


def _patterns(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def parse_settings(table: dict[str, Any], base_dir: Path) -> ServerSettings | None:
    """The server's settings, or None when no password is set (the server is off).

    Raises FatalError naming the setting and the offending value.
    """
    if not table.get("password"):
        return None
    try:
        try:
            bind_host, port = parse_listen(table["listen"])
        except ValueError as exc:
            raise ValueError(f"{WHERE}.listen: {exc}") from None
        allowed = AllowList.parse(table["address"], f"{WHERE}.address")
        writes = RemoteWrites(table["control"], f"{WHERE}.control")
        names = tuple(certificates.check_names(_patterns(table.get("names", [])), f"{WHERE}.names"))
    except ValueError as exc:
        raise FatalError(str(exc)) from None
    cert, key = table["certificate"], table["key"]
    if bool(cert) != bool(key):
        missing = "key" if cert else "certificate"
        raise FatalError(
            f"{WHERE}.{missing}: required when {'certificate' if cert else 'key'} is set"
        )
    return ServerSettings(
        bind_host=bind_host,
        port=port,
        password=table["password"],
        allowed=allowed,
        writes=writes,
        io_filter=_patterns(table["io_filter"]),
        ui_filter=_patterns(table["ui_filter"]),
        certificate=(base_dir / os.path.expanduser(cert)) if cert else None,
        key=(base_dir / os.path.expanduser(key)) if key else None,
        names=names,
    )


def _missing_password(table: dict[str, Any]) -> str | None:
    """The complaint when server settings are given without the password that turns it on."""
    given = sorted(k for k, v in table.items() if k != "password" and v != DEFAULTS.get(k))
    if table.get("password") or not given:
        return None
    return (
        f"{WHERE}.password: required to run the server "
        f"({', '.join(given)} {'is' if len(given) == 1 else 'are'} set)"
    )


def check_settings(table: dict[str, Any], base_dir: Path) -> list[Problem]:
    """What `run` would refuse, found while the configuration is validated (check_config)."""
    found: list[str] = []
    try:
        settings = parse_settings(table, base_dir)
        if settings is not None and settings.certificate is not None:
            load_certificate(settings, host=None)  # reads the configured files only
    except FatalError as exc:
        found.append(str(exc))
    missing = _missing_password(table)
    if missing:
        found.append(missing)
    for key in ("io_filter", "ui_filter"):
        try:
            compile_patterns(_patterns(table[key]), f"{WHERE}.{key}")
        except ValueError as exc:
            found.append(str(exc))
    return [Problem(*message.split(": ", 1)) for message in found]  # messages are "path: what"


def load_certificate(settings: ServerSettings, host: Any) -> certificates.Certificate:
    if settings.certificate is not None and settings.key is not None:
        try:
            return certificates.load(settings.certificate, settings.key)
        except OSError as exc:
            raise FatalError(
                f"{WHERE}.certificate/key: cannot read {exc.filename!r}: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise FatalError(
                f"{WHERE}.certificate/key: {settings.certificate} / {settings.key}: {exc}"
            ) from None
    names = (settings.bind_host, *settings.names)
    return certificates.load_or_create(host.data_dir / STATE_DIR, host.name, names)


class _HostedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the host owns SIGINT and SIGTERM) and without its
    listening servers: connections come from `accept_loop`, which bounds and times them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Slots:
    """The kernel's `Admission` for uvicorn's callback-driven connections: each connection
    gets a ticket at accept (its TLS handshake included), timed by a loop timer instead of a
    cancel scope, and found again by its ASGI ``client`` once a request is let in."""

    def __init__(self) -> None:
        self.admission = Admission(
            max_connections=MAX_CONNECTIONS,
            max_unauthenticated=MAX_UNAUTHENTICATED,
            login_deadline=LOGIN_DEADLINE,
        )
        self._by_client: dict[Any, Ticket] = {}
        self._timers: dict[Ticket, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return self.admission.connections

    def admit(self, client: str | None, close: Callable[[], None]) -> Ticket | None:
        ticket = self.admission.admit(client, close)
        if ticket is not None:
            self._timers[ticket] = asyncio.get_running_loop().call_later(
                LOGIN_DEADLINE, ticket.expire
            )
        return ticket

    def attach(self, ticket: Ticket, client: Any, close: Callable[[], None]) -> None:
        """The connection's HTTP protocol took over: `client` is its ASGI ``client``."""
        ticket.close = close
        self._by_client[client] = ticket

    def authenticated(self, client: Any) -> None:
        """A request on this connection was let in: no deadline, never evicted."""
        ticket = self._by_client.get(client)
        if ticket is not None and not ticket.is_authenticated:
            ticket.authenticated()
            self._cancel_timer(ticket)

    def release(self, ticket: Ticket, client: Any = None) -> None:
        self._cancel_timer(ticket)
        ticket.release()
        if client is not None and self._by_client.get(client) is ticket:
            del self._by_client[client]

    def _cancel_timer(self, ticket: Ticket) -> None:
        timer = self._timers.pop(ticket, None)
        if timer is not None:
            timer.cancel()


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with what it lacks for a server on a hostile network.

    - a deadline for each request head (uvicorn has none: a client that sends nothing, or
      one byte at a time, would hold its connection for ever);
    - a connection slot (see `Slots`), released when the connection closes;
    - containment: an exception while parsing what the client sent (uvicorn decodes the
      path as ASCII, for one) answers 400 and closes this connection, instead of asyncio
      logging a traceback.
    """

    slots: Slots
    slot: Ticket | None = None
    """Set by the factory before the connection is made."""
    _head_timer: asyncio.TimerHandle | None = None
    _head: HeadMeter | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.slot is not None:
            self.slots.attach(self.slot, self.client, self._abort)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if self.slot is not None:
            self.slots.release(self.slot, self.client)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            self._head = HeadMeter(MAX_HEAD)
        if self.conn.their_state is h11.IDLE and self._head.too_long(data):
            log.debug(
                "hsyco_remote server: request head from %s over %d bytes",
                self.client and self.client[0],
                MAX_HEAD,
            )
            self._refuse_unparsable()
            return
        try:
            super().data_received(data)
        except Exception as exc:  # noqa: BLE001 - whatever the client sent, only it suffers
            _faults.warning(
                "parse",
                "hsyco_remote server: a request from %s could not be parsed (%s); answered 400",
                self.client and self.client[0],
                type(exc).__name__,
            )
            self._refuse_unparsable()
            return
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_deadline()  # a request head has begun (or is awaited): time it
        else:
            self._disarm_head_deadline()
            self._head.reset()

    def _arm_head_deadline(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and self.timeout_keep_alive_task is None:
            log.debug(
                "hsyco_remote server: closed a connection from %s that sent no complete "
                "request head within %g s",
                self.client and self.client[0],
                HEAD_TIMEOUT,
            )
            self._abort()

    def _abort(self) -> None:
        """Close at once, without TLS's closing handshake: the client is not cooperating."""
        self.transport.abort()

    def _close(self) -> None:
        """Close after what was written, with TLS's closing handshake, but abort if the client
        does not complete it promptly (it may still be sending a request we stopped reading)."""
        if not self.transport.is_closing():
            self.transport.close()
            self.loop.call_later(CLOSE_GRACE, self.transport.abort)

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request (malformed, or a head over `MAX_HEAD` bytes): a JSON 400."""
        log.debug(
            "hsyco_remote server: malformed request from %s: %s",
            self.client and self.client[0],
            msg,
        )
        self._refuse_unparsable()

    def _refuse_unparsable(self) -> None:
        with contextlib.suppress(Exception):
            body = dumps(
                {
                    "error": {
                        "code": "bad_request",
                        "message": "the request could not be parsed as HTTP/1.1 "
                        f"(or its head is over {MAX_HEAD} bytes)",
                    }
                }
            )
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json"
                b"\r\nconnection: close\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
        self._close()


_faults = RateLimitedLog(log)


async def accept_loop(
    sock: socket.socket,
    protocol_factory: Callable[[Ticket], asyncio.Protocol],
    ssl_context: ssl.SSLContext,
    slots: Slots,
    what: str,
) -> None:
    """Accept connections on `sock` until cancelled (the kernel's `accept_sockets`, which
    waits out EMFILE instead of logging a traceback per attempt as asyncio's own loop does);
    each gets a slot, then its TLS handshake (at most `HANDSHAKE_TIMEOUT` s), then its
    protocol."""
    loop = asyncio.get_running_loop()
    refusals = RateLimitedLog(log)

    async def handshake(conn: socket.socket, ticket: Ticket, client: str | None) -> None:
        handed_over = False
        with anyio.CancelScope() as scope:  # evicted or past the login deadline: cancelled
            ticket.close = scope.cancel
            try:
                await loop.connect_accepted_socket(
                    functools.partial(protocol_factory, ticket),
                    conn,
                    ssl=ssl_context,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                    ssl_shutdown_timeout=SHUTDOWN_GRACE,
                )
                handed_over = True  # the protocol owns the connection (and the slot) now
            except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
                log.debug("%s: TLS handshake with %s failed: %r", what, client, exc)
        if not handed_over:
            slots.release(ticket)
            conn.close()

    def accepted(conn: socket.socket, address: Any) -> Any:
        client = address[0] if isinstance(address, tuple) else None
        ticket = slots.admit(client, conn.close)
        if ticket is None:
            refusals.warning(
                "full",
                "%s: refused a connection from %s: all %d connection "
                "slots are held by clients that logged in",
                what,
                client,
                MAX_CONNECTIONS,
            )
            conn.close()
            return None
        return handshake(conn, ticket, client)

    await accept_sockets(sock, accepted, log=log, what=what)


def build_app(api: Api, rioget: Rioget) -> Starlette:
    routes = [Route(RIOGET_PATH, rioget.endpoint, methods=["GET"]), *api.routes()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path, wrong method) as JSON errors too."""
    status = getattr(exc, "status_code", 400)
    return error(
        status,
        "not_found" if status == 404 else "bad_request",
        str(getattr(exc, "detail", "")) or "bad request",
        dict(getattr(exc, "headers", None) or {}),
    )


async def run(host: Any, table: dict[str, Any]) -> None:
    """Serve until cancelled; return at once when no password is configured."""
    settings = parse_settings(table, host.config.base_dir)
    if settings is None:
        missing = _missing_password(table)
        if missing:
            raise FatalError(missing)
        return
    try:
        exposure = Exposure(host, settings.io_filter, settings.ui_filter, WHERE)
    except ValueError as exc:
        raise FatalError(str(exc)) from None
    cert = load_certificate(settings, host)
    gate = Gate(settings.password, settings.allowed)
    info_file = InfoFile(
        host.data_dir / STATE_DIR / INFO_FILE, f"hsyco_remote server of host {host.name}"
    )
    info_file.clear()
    sock = bind_tcp(settings.bind_host, settings.port, f"{WHERE}.listen")
    port = sock.getsockname()[1]
    changelog = ChangeLog(host.points, host.ui, settings.io_filter, settings.ui_filter)
    slots = Slots()
    with sock, changelog, quiet_loggers("uvicorn.error", "asyncio"):
        api = Api(
            host,
            exposure,
            changelog,
            gate,
            settings.writes,
            authenticated=lambda scope: slots.authenticated(scope.get("client")),
        )
        rioget = Rioget(
            host,
            exposure,
            changelog,
            gate,
            authenticated=lambda scope: slots.authenticated(scope.get("client")),
        )
        app = build_app(api, rioget)
        protocol = type("Protocol", (_Protocol,), {"slots": slots})
        config = uvicorn.Config(
            app,
            http=protocol,
            ws="none",
            ssl_certfile=str(cert.certfile),
            ssl_keyfile=str(cert.keyfile),
            log_config=None,  # the host configures logging, not uvicorn
            access_log=False,  # rioget URLs carry the password
            proxy_headers=False,  # X-Forwarded-For must not get past the address check
            server_header=False,
            lifespan="off",
            limit_concurrency=MAX_CONNECTIONS + 1,  # a backstop: the slots decide first
            h11_max_incomplete_event_size=MAX_HEAD,
            timeout_keep_alive=KEEP_ALIVE,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        config.load()
        server = _HostedServer(config)
        url = f"https://{_url_host(settings.bind_host)}:{port}"
        info_file.publish(
            {
                "url": url,
                "host": settings.bind_host,
                "port": port,
                "fingerprint": cert.fingerprint,
                "certificate": str(cert.certfile),
            },
        )
        control = settings.writes
        log.info(
            "hsyco_remote server of host %s listening on %s; certificate %s (%s), SHA-256 "
            "fingerprint %s; control %s",
            host.name,
            url,
            cert.certfile,
            "self-signed, generated now"
            if cert.generated
            else "configured"
            if settings.certificate
            else "self-signed",
            cert.fingerprint,
            "enabled for every point that is not sensitive"
            if control.everything
            else f"enabled for {', '.join(control.patterns)}"
            if control.patterns
            else "disabled",
        )

        def make_protocol(ticket: Ticket) -> asyncio.Protocol:
            made = protocol(config=config, server_state=server.server_state, app_state={})
            made.slot = ticket
            return made

        finished = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_topology, exposure, changelog)
                tg.start_soon(
                    accept_loop,
                    sock,
                    make_protocol,
                    config.ssl,
                    slots,
                    f"hsyco_remote server of host {host.name}",
                )
                await server.serve(sockets=[])  # no listeners of its own: accept_loop's
                finished = True  # uvicorn stopped by itself, and has shut down already
                raise RuntimeError(f"the HTTPS server on {url} stopped unexpectedly")
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE + 1):
                changelog.close()  # answers every waiting long poll at once
                server.should_exit = True
                if not finished and server.started:
                    await server.shutdown(sockets=[])
            info_file.clear()
            log.info("hsyco_remote server of host %s stopped", host.name)


async def _watch_topology(exposure: Exposure, changelog: ChangeLog) -> None:
    """Wake the long polls when the number of exposed points differs from what clients were
    last told, so they notice points that appeared without an event (declared quietly) or
    vanished, within a second."""
    while True:
        await anyio.sleep(TOPOLOGY_CHECK)
        if exposure.counts_changed():
            changelog.touch()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
