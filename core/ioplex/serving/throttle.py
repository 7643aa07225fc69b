"""Slowing password guessing without locking good clients out.

The rules, the same for every ioplex server (docs/serving.md):

- Failures are counted per client *prefix* (an IPv4 address, an IPv6 /64; see
  `client_prefix`), so an attacker cannot multiply its guesses by using many addresses of one
  network. After `free_failures` wrong guesses the prefix is locked out for `base_delay`
  seconds, doubling with each further failure up to `max_delay`. While locked, attempts from
  the prefix are refused without looking at the password.
- A global cap (`global_rate` wrong guesses a second, all prefixes together) bounds what a
  botnet of many prefixes can try.
- Nothing waits: a refused or wrong attempt is answered at once and its connection closed,
  so a guess never holds a connection slot while it is "slowed down".
- Sessions that are already authenticated (a live VSCP link, a replicating concentrator with
  a session token) are never checked again, so nobody else's failures from their address
  can lock them out.
- Logging is one summary line per interval, not one per guess.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .allow import client_prefix
from .ratelog import RateLimitedLog


@dataclass
class _Record:
    failures: int
    last: float
    locked_until: float


class AuthThrottle:
    """Failure counting and lockouts for one server's logins (see the module docstring).

    ::

        wait = throttle.locked_for(ip)
        if wait:                      # refuse without checking the password
            ...
        elif password_ok:
            throttle.succeeded(ip)
        else:
            throttle.failed(ip)       # answer at once, close the connection
    """

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        global_rate: float = 50.0,
        forget_after: float = 900.0,
        max_tracked: int = 10_000,
        log: logging.Logger | logging.LoggerAdapter | None = None,
        what: str = "login",
        log_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.global_rate = global_rate
        self.forget_after = forget_after
        self.max_tracked = max_tracked
        self.what = what
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._tokens = global_rate
        self._refilled = clock()
        self._log = RateLimitedLog(log or logging.getLogger("ioplex.serving"), log_interval)
        self._window_failures = 0
        self._window_prefixes: set[str] = set()
        self.failures = 0
        """Wrong guesses since the start, all prefixes."""
        self.refused = 0
        """Attempts refused unchecked, because their prefix was locked or the global cap hit."""

    def _refill(self, now: float) -> None:
        self._tokens = min(
            self.global_rate, self._tokens + (now - self._refilled) * self.global_rate
        )
        self._refilled = now

    def locked_for(self, client: str | None) -> float:
        """Seconds until `client` may try a password again; 0 when it may now."""
        now = self._clock()
        self._refill(now)
        wait = 0.0
        record = self._records.get(client_prefix(client))
        if record is not None:
            wait = max(0.0, record.locked_until - now)
        if self._tokens < 1.0:
            wait = max(wait, (1.0 - self._tokens) / self.global_rate)
        if wait:
            self.refused += 1
        return wait

    def failed(self, client: str | None) -> float:
        """Count a wrong guess from `client`; return the lockout it now has, in seconds."""
        now = self._clock()
        self._refill(now)
        self._tokens = max(0.0, self._tokens - 1.0)
        key = client_prefix(client)
        record = self._records.get(key)
        if record is None or now - record.last > self.forget_after:
            record = self._records[key] = _Record(0, now, 0.0)
            while len(self._records) > self.max_tracked:
                self._records.popitem(last=False)
        self._records.move_to_end(key)
        record.failures += 1
        record.last = now
        self.failures += 1
        excess = record.failures - self.free_failures
        lockout = 0.0
        if excess >= 0:
            lockout = min(self.max_delay, self.base_delay * 2.0 ** min(excess, 30))
            record.locked_until = now + lockout
        self._window_failures += 1
        self._window_prefixes.add(key)
        if self._log.warning(
            "failures",
            "%s: wrong password from %s (%d wrong in a row from its network)",
            self.what,
            key,
            record.failures,
        ):
            self._window_failures = 0
            self._window_prefixes.clear()
        return lockout

    def succeeded(self, client: str | None) -> None:
        """A good login: forget the failures of the client's prefix."""
        self._records.pop(client_prefix(client), None)

    def failures_of(self, client: str | None) -> int:
        """Consecutive wrong guesses from the client's prefix (forgotten after a while)."""
        record = self._records.get(client_prefix(client))
        if record is None or self._clock() - record.last > self.forget_after:
            return 0
        return record.failures
