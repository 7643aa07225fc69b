"""Keeping I/O servers and plugin services running: restart with backoff, stop on fatal errors."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import anyio

from .errors import FatalError


class State(StrEnum):
    """Where a supervised task stands; published as `system.ioservers.<name>`."""

    STARTING = "starting"
    CONNECTING = "connecting"
    ONLINE = "online"
    RETRYING = "retrying"
    FAILED = "failed"
    STOPPED = "stopped"


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
        return random.uniform(ceiling / 2, ceiling)


def is_fatal(exc: BaseException) -> bool:
    """Whether `exc` is, or a task group wraps, a FatalError."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(FatalError) is not None
    return isinstance(exc, FatalError)


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
    while True:
        started = anyio.current_time()
        on_state(State.CONNECTING, None)
        try:
            await run()
            detail = "ended"
        except Exception as exc:
            on_down()
            if is_fatal(exc):
                log.error("%s stopped for good: %s", what, describe(exc))
                on_state(State.FAILED, describe(exc))
                return
            detail = describe(exc)
        else:
            on_down()
        if anyio.current_time() - started >= backoff.reset_after:
            attempt = 0
        delay = backoff.delay(attempt)
        attempt += 1
        log.warning("%s: %s; retry %d in %.1f s", what, detail, attempt, delay)
        on_state(State.RETRYING, detail)
        await anyio.sleep(delay)
