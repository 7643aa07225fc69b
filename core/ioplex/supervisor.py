"""Keeping I/O servers and plugin services running: restart with backoff, stop on fatal errors."""

from __future__ import annotations

import errno
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import anyio

from .errors import FatalError, Refused
from .serving.ratelog import RateLimitedLog


class State(StrEnum):
    """Where a supervised task stands; published as `system.ioservers.<name>`."""

    STARTING = "starting"
    CONNECTING = "connecting"
    ONLINE = "online"
    RETRYING = "retrying"
    FAILED = "failed"
    STOPPED = "stopped"


_JITTER = random.Random()
"""The host's own generator: a library must not draw from (or reseed) the application's
global `random` state, which simulations and tests may rely on."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter.

    The n-th retry waits a random time between half and all of
    min(maximum, initial * factor**n): jitter spreads reconnects of many instances, and the
    lower half-bound keeps a flapping device from being retried in a tight loop. The exponent
    is capped so it never overflows however long a device stays away.
    """

    initial: float = 1.0
    maximum: float = 60.0
    reset_after: float = 30.0
    factor: float = 2.0
    max_exponent: int = 16

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, self.max_exponent))
        return _JITTER.uniform(ceiling / 2, ceiling)


def is_fatal(exc: BaseException) -> bool:
    """Whether `exc` is, or a task group wraps, a FatalError."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(FatalError) is not None
    return isinstance(exc, FatalError)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def is_address_in_use(exc: BaseException) -> bool:
    """Whether `exc` says a listen address is taken (another process, or the port is
    privileged): waiting seconds will not help, so it is retried slowly."""
    leaf = _leaf(exc)
    return isinstance(leaf, OSError) and leaf.errno in (errno.EADDRINUSE, errno.EACCES)


REPEAT_LOG_INTERVAL = 600.0
"""The same failure, again and again, is logged once per this many seconds (with a count)."""


def describe(exc: BaseException) -> str:
    """One line for a log: the innermost meaningful message of a (possibly grouped) error."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def supervise(
    what: str,
    run: Callable[[], Awaitable[None]],
    backoff: Backoff,
    log: logging.Logger | logging.LoggerAdapter,
    on_state: Callable[[State, str | None], None],
    on_down: Callable[[], None] = lambda: None,
) -> None:
    """Run `run()` until cancelled, restarting it when it fails or returns.

    `on_state` is told of every state change with an optional detail; `on_down` is called each
    time the task ends, before the wait. A FatalError ends supervision (state FAILED) after one
    report. Cancellation passes straight through.
    """
    attempt = 0
    repeats = RateLimitedLog(log, REPEAT_LOG_INTERVAL)
    while True:
        started = anyio.current_time()
        on_state(State.CONNECTING, None)
        slow = refused = False
        try:
            await run()
            detail = "ended"
        except Exception as exc:  # noqa: BLE001 - supervised: any failure restarts
            on_down()
            if is_fatal(exc):
                log.error("%s stopped for good: %s", what, describe(exc))
                on_state(State.FAILED, describe(exc))
                return
            detail = describe(exc)
            refused = isinstance(_leaf(exc), Refused)
            slow = refused or is_address_in_use(exc)
        else:
            on_down()
        if anyio.current_time() - started >= backoff.reset_after:
            attempt = 0
        attempt += 1
        if slow:
            delay = backoff.maximum
            repeats.error(
                detail,
                "%s: %s; %s every %s s",
                what,
                detail,
                "retrying" if refused else "is another program using it? Retrying",
                f"{delay:g}",
            )
        else:
            delay = backoff.delay(attempt - 1)
            repeats.warning(detail, "%s: %s; retry %d in %.1f s", what, detail, attempt, delay)
        on_state(State.RETRYING, detail)
        await anyio.sleep(delay)
