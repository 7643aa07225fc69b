"""Accept loops that survive running out of file descriptors.

anyio's `Listener.serve` ends with an exception when `accept()` fails, and asyncio's own
accept loop (behind `loop.create_server`, which uvicorn uses) logs a traceback for every
attempt, up to the backlog's size each time the socket is readable. So EMFILE (the
process's open-file limit) or ENFILE (the system's) would either stop the server, and a
supervisor restarting it would drop every connected client, or flood the log with tens of
thousands of lines a second. Here such errors are waited out with a backoff (the sockets in
use close, the limit frees up) and logged at most once a minute.

`serve_tcp` is for servers that handle each connection in a task with an anyio stream;
`accept_sockets` for servers that hand raw sockets to something else (uvicorn's protocols
through ``loop.connect_accepted_socket``).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import Listener, SocketStream, TaskGroup

from .ratelog import RateLimitedLog

RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
TRANSIENT_ERRORS = {errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO, errno.EPERM}
MAX_PAUSE = 0.5
"""The longest pause between accept attempts while out of resources, in seconds."""


class _Backoff:
    """What to do when accept() fails: pause (growing) on resource errors, skip transient
    ones, raise the rest."""

    def __init__(self, ratelog: RateLimitedLog, what: str) -> None:
        self.ratelog = ratelog
        self.what = what
        self.pause = 0.0

    async def failed(self, exc: OSError) -> None:
        if exc.errno in RESOURCE_ERRORS:
            self.pause = min(MAX_PAUSE, max(0.05, self.pause * 2))
            self.ratelog.warning(
                "resources",
                "%s: cannot accept a connection (%s); pausing accepts",
                self.what,
                exc.strerror or exc,
            )
            await anyio.sleep(self.pause)
        elif exc.errno not in TRANSIENT_ERRORS:
            raise exc

    def succeeded(self) -> None:
        self.pause = 0.0


async def serve_tcp(
    listener: Listener[SocketStream],
    handler: Callable[[SocketStream], Awaitable[None]],
    *,
    log: logging.Logger | logging.LoggerAdapter,
    what: str = "server",
) -> None:
    """Accept connections until cancelled, running `handler(stream)` for each in a task.

    `listener` may be a MultiListener (one loop per socket). An exception escaping the
    handler is logged (rate-limited, with its traceback at DEBUG) and ends that connection
    only.
    """
    ratelog = RateLimitedLog(log)
    listeners = getattr(listener, "listeners", [listener])

    async def run(stream: SocketStream) -> None:
        try:
            await handler(stream)
        except Exception as exc:  # a bug in one connection must not take the listener down
            ratelog.error("handler", "%s: a connection failed: %r", what, exc)
            log.debug("%s: connection failure", what, exc_info=True)
        finally:
            await stream.aclose()

    async def accept_loop(sub: Listener[SocketStream], tg: TaskGroup) -> None:
        backoff = _Backoff(ratelog, what)
        while True:
            try:
                stream = await sub.accept()
            except OSError as exc:
                await backoff.failed(exc)
                continue
            backoff.succeeded()
            tg.start_soon(run, stream)

    async with anyio.create_task_group() as tg:
        for sub in listeners:
            tg.start_soon(accept_loop, sub, tg)


async def accept_sockets(
    sock: socket.socket,
    handler: Callable[[socket.socket, Any], Awaitable[None] | None],
    *,
    log: logging.Logger | logging.LoggerAdapter,
    what: str = "server",
) -> None:
    """Accept on the listening, non-blocking `sock` until cancelled; call
    ``handler(conn, address)`` for each connection (a coroutine runs in a task of its own).

    The accepted socket is non-blocking; the handler owns it (closes it or hands it over).
    """
    ratelog = RateLimitedLog(log)
    backoff = _Backoff(ratelog, what)
    async with anyio.create_task_group() as tg:
        while True:
            await anyio.wait_readable(sock)
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                await backoff.failed(exc)
                continue
            backoff.succeeded()
            conn.setblocking(False)
            result = handler(conn, address)
            if result is not None:
                tg.start_soon(_guarded, result, ratelog, what, log)


async def _guarded(
    work: Awaitable[None],
    ratelog: RateLimitedLog,
    what: str,
    log: logging.Logger | logging.LoggerAdapter,
) -> None:
    try:
        await work
    except Exception as exc:  # one connection's failure stays with that connection
        ratelog.error("handler", "%s: a connection failed: %r", what, exc)
        log.debug("%s: connection failure", what, exc_info=True)
