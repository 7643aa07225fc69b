"""Logging that a misbehaving peer cannot flood: one line per kind of event per interval."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

MAX_KEYS = 1024
"""At most this many kinds are tracked; past it the table starts again (a flood of distinct
keys then still logs at most this many lines per interval)."""


class RateLimitedLog:
    """Log the first occurrence of each `key` at once, then at most one line per `interval`
    for it, saying how many were suppressed in between.

    ::

        refusals = RateLimitedLog(log, interval=60)
        refusals.warning("not-allowed", "refused %s: not in %s", peer, where)
        # later: "refused 192.0.2.7:4711: not in ... (and 812 more like it in 60 s)"
    """

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.suppressed = 0
        """Lines not written since the start, all keys."""

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log `msg % args` unless `key` was logged less than `interval` ago; return
        whether it was written."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            self.suppressed += 1
            return False
        if len(self._last) >= MAX_KEYS and key not in self._last:
            self._last.clear()
            self._suppressed.clear()
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, skipped, now - last if last is not None else self.interval)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def info(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, key, msg, *args)

    def error(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.ERROR, key, msg, *args)


class RateLimitFilter(logging.Filter):
    """A logging filter for other libraries' loggers (uvicorn's "Invalid HTTP request
    received.", asyncio's SSL and socket errors): each distinct message at WARNING or above
    passes once per `interval`, so a misbehaving peer cannot flood the log through code that
    is not ours. Install it for the life of the server that provokes those messages."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = f"{record.name}:{str(record.msg)[:80]}"
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed += 1
            return False
        if len(self._last) >= MAX_KEYS:
            self._last.clear()
        self._last[key] = now
        return True


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[RateLimitFilter]:
    """For the life of a server built on another library (uvicorn, asyncio's transports):
    its loggers' INFO chatter ("Started server process", "Shutting down") is dropped unless
    the host logs at DEBUG, and each distinct warning passes once a minute
    (`RateLimitFilter`), so a misbehaving peer cannot flood the log through them."""
    limiter = RateLimitFilter()
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    quiet = not logging.getLogger().isEnabledFor(logging.DEBUG)
    for logger in loggers:
        logger.addFilter(limiter)
        if quiet and logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield limiter
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeFilter(limiter)
            logger.setLevel(level)
