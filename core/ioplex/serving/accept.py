"""An accept loop that survives running out of file descriptors.

anyio's `Listener.serve` ends with an exception when `accept()` fails, so EMFILE (the
process's open-file limit) or ENFILE (the system's) would stop the server, and a supervisor
restarting it would drop every connected client. Here such errors are waited out with a
backoff (the sockets in use close, the limit frees up) and logged at most once a minute.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import Listener, SocketStream

from .ratelog import RateLimitedLog

RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
TRANSIENT_ERRORS = {errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO, errno.EPERM}
MAX_PAUSE = 0.5
"""The longest pause between accept attempts while out of resources, in seconds."""


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

    async def accept_loop(sub: Listener[SocketStream], tg: anyio.abc.TaskGroup) -> None:
        pause = 0.0
        while True:
            try:
                stream = await sub.accept()
            except OSError as exc:
                if exc.errno in RESOURCE_ERRORS:
                    pause = min(MAX_PAUSE, max(0.05, pause * 2))
                    ratelog.warning(
                        "resources", "%s: cannot accept a connection (%s); pausing accepts",
                        what, exc.strerror or exc,
                    )
                    await anyio.sleep(pause)
                    continue
                if exc.errno in TRANSIENT_ERRORS:
                    continue
                raise
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise
            pause = 0.0
            tg.start_soon(run, stream)

    async with anyio.create_task_group() as tg:
        for sub in listeners:
            tg.start_soon(accept_loop, sub, tg)
