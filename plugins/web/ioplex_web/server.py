"""``[plugins.web]`` as an HTTP(S) server inside the host.

uvicorn serves the Starlette application through its programmatic API in the plugin's
`serve` task (as hsyco_remote does): the socket is bound here (port 0 works; the bound
address goes to ``<data_dir>/web/server.json``), and connections come from `accept_loop`,
which waits out EMFILE/ENFILE and admits each connection through the kernel's `Admission`:
bounded per client prefix and in all, closed at an absolute deadline until a request on it
has been let in (authenticated), the oldest unauthenticated connection evicted first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import anyio
import h11
import uvicorn
from ioplex import FatalError
from ioplex.serving import (
    Admission,
    HeadMeter,
    InfoFile,
    RateLimitedLog,
    Ticket,
    accept_sockets,
    bind_tcp,
    format_listen,
    quiet_loggers,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import certificate
from .access import Access
from .api import Api, error
from .feed import ChangeFeed
from .health import HealthBoard
from .metrics import make_registry
from .settings import WHERE, WebSettings

log = logging.getLogger("ioplex.plugin.web")

STATE_DIR = "web"
INFO_FILE = "server.json"
MAX_UNAUTHENTICATED = 16
"""Connections per client prefix on which no request has been let in yet."""
LOGIN_DEADLINE = 15.0
"""Seconds from accept (TLS handshake included) by which a request must have been let in."""
HANDSHAKE_TIMEOUT = 10.0
KEEP_ALIVE = 30
MAX_HEAD = 16 * 1024
SHUTDOWN_GRACE = 3.0


_faults = RateLimitedLog(log)


class _HostedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol, told when its connection ends and registered by client
    address so a request that passes authentication can lift its connection's deadline."""

    tickets: dict[Any, Ticket]
    ticket: Ticket | None = None
    lost: anyio.Event | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.ticket is not None and self.client is not None:
            self.tickets[tuple(self.client)] = self.ticket

    _head: HeadMeter | None = None

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            self._head = HeadMeter(MAX_HEAD)
        if self.conn.their_state is h11.IDLE and self._head.too_long(data):
            self._refuse(
                431, "request_header_fields_too_large", f"the request head is over {MAX_HEAD} bytes"
            )
            return
        try:
            super().data_received(data)
        except Exception as exc:  # noqa: BLE001 - whatever a client sends, only it suffers
            _faults.warning(
                "parse",
                "web: a request from %s could not be parsed (%s)",
                self.client and self.client[0],
                type(exc).__name__,
            )
            self._refuse(400, "bad_request", "the request could not be parsed as HTTP/1.1")

    def _refuse(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        with contextlib.suppress(Exception):
            self.transport.write(
                f"HTTP/1.1 {status} Refused\r\ncontent-type: application/json\r\n"
                f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                + body
            )
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None and self.tickets.get(tuple(self.client)) is self.ticket:
            del self.tickets[tuple(self.client)]
        if self.lost is not None:
            self.lost.set()
        super().connection_lost(exc)


async def accept_loop(
    sock: socket.socket,
    make_protocol: Any,
    ssl_context: ssl.SSLContext | None,
    admission: Admission,
    what: str,
) -> None:
    """Accept until cancelled (the kernel's `accept_sockets`: EMFILE is waited out); each
    connection runs in a task holding its admission ticket."""
    loop = asyncio.get_running_loop()
    refusals = RateLimitedLog(log)

    async def connection(conn: socket.socket, ticket: Ticket) -> None:
        lost = anyio.Event()
        transport = None
        with ticket, ticket.scope:
            try:
                transport, _ = await loop.connect_accepted_socket(
                    functools.partial(make_protocol, ticket, lost),
                    conn,
                    ssl=ssl_context,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl_context else None,
                )
                await lost.wait()
            except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
                log.debug("%s: connection from %s failed: %r", what, ticket.client, exc)
            finally:
                if transport is None:
                    conn.close()
                elif not lost.is_set():
                    transport.abort()  # login deadline, eviction or the host stopping

    def accepted(conn: socket.socket, address: Any) -> Any:
        client = address[0] if isinstance(address, tuple) else None
        ticket = admission.admit(client)
        if ticket is None:
            refusals.warning(
                "full",
                "%s: refused a connection from %s: all %d slots are held by logged-in clients",
                what,
                client,
                admission.max_connections,
            )
            conn.close()
            return None
        return connection(conn, ticket)

    await accept_sockets(sock, accepted, log=log, what=what)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 400)
    return error(
        status,
        "not_found" if status == 404 else "bad_request",
        str(getattr(exc, "detail", "")) or "bad request",
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug answers a JSON 500 and one rate-limited log line, never a traceback per request."""
    _faults.error("internal", "web: %s %s failed: %r", request.method, request.url.path, exc)
    log.debug("web: request failure", exc_info=exc)
    return error(500, "internal", "the server failed to answer; see the host's log")


async def run(host: Any, settings: WebSettings) -> None:
    """Serve until cancelled."""
    what = f"web server of host {host.name}"
    info_file = InfoFile(host.data_dir / STATE_DIR / INFO_FILE, what)
    info_file.clear()
    cert = key = None
    generated = False
    if settings.tls:
        if settings.certificate is not None:
            cert, key = settings.certificate, settings.key
        else:
            cert, key, generated = certificate.load_or_create(
                host.data_dir / STATE_DIR, host.name, settings.bind_host
            )
        try:
            fp = certificate.fingerprint(cert)
        except (OSError, ValueError) as exc:
            raise FatalError(f"{WHERE}.certificate: {cert}: {exc}") from None
    sock = bind_tcp(settings.bind_host, settings.port, f"{WHERE}.listen")
    port = sock.getsockname()[1]
    access = Access(settings, what)
    board = HealthBoard(host)
    feeds = {"io": ChangeFeed(host.points), "ui": ChangeFeed(host.ui)}
    admission = Admission(
        max_connections=settings.max_connections,
        max_unauthenticated=MAX_UNAUTHENTICATED,
        login_deadline=LOGIN_DEADLINE,
    )
    tickets: dict[Any, Ticket] = {}

    def authenticated(request: Request) -> None:
        client = request.scope.get("client")
        ticket = tickets.get(tuple(client)) if client else None
        if ticket is not None:
            ticket.authenticated()

    metrics_registry = collector = None
    api = Api(
        host, access, board, feeds, None, settings.writes, settings.max_watchers, authenticated
    )
    metrics_registry, collector = make_registry(host, board, settings.metrics_points, web=api)
    api.collector = collector
    if settings.metrics:
        api.metrics_registry = metrics_registry
    try:
        with sock, quiet_loggers("uvicorn.error", "asyncio"):
            app = Starlette(
                routes=api.routes(),
                exception_handlers={HTTPException: _http_error, Exception: _internal_error},
            )
            protocol = type("Protocol", (_Protocol,), {"tickets": tickets})
            config = uvicorn.Config(
                app,
                http=protocol,
                ws="none",
                log_config=None,
                access_log=False,
                proxy_headers=False,
                server_header=False,
                lifespan="off",
                limit_concurrency=settings.max_connections + 1,
                h11_max_incomplete_event_size=MAX_HEAD,
                timeout_keep_alive=KEEP_ALIVE,
                timeout_graceful_shutdown=SHUTDOWN_GRACE,
                ssl_certfile=str(cert) if cert else None,
                ssl_keyfile=str(key) if key else None,
            )
            try:
                config.load()
            except (OSError, ssl.SSLError) as exc:
                raise FatalError(f"{WHERE}.certificate/key: {cert} / {key}: {exc}") from None
            server = _HostedServer(config)
            scheme = "https" if settings.tls else "http"
            url = f"{scheme}://{format_listen(settings.bind_host, port)}"
            info: dict[str, Any] = {"url": url, "host": settings.bind_host, "port": port}
            if cert:
                info.update(certificate=str(cert), fingerprint=fp)
            info_file.publish(info)
            log.info(
                "web: %s listening on %s (%s)%s",
                what,
                url,
                "read-only, this machine only: no users configured"
                if access.open
                else f"{len(settings.users)} users",
                f"; certificate {cert} ({'self-signed, generated now' if generated else 'SHA-256 ' + fp})"
                if cert
                else "",
            )

            def make_protocol(ticket: Ticket, lost: anyio.Event) -> asyncio.Protocol:
                made = protocol(config=config, server_state=server.server_state, app_state={})
                made.ticket, made.lost = ticket, lost
                return made

            finished = False
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(accept_loop, sock, make_protocol, config.ssl, admission, what)
                    await server.serve(sockets=[])
                    finished = True
                    raise RuntimeError(f"the web server on {url} stopped unexpectedly")
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE + 1):
                    for feed in feeds.values():
                        feed.close()  # ends every watch stream
                    server.should_exit = True
                    if not finished and server.started:
                        await server.shutdown(sockets=[])
                info_file.clear()
                log.info("web: %s stopped", what)
    finally:
        for feed in feeds.values():
            feed.close()
        collector.close()
        board.close()
