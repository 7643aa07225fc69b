"""Slowing down password guessing, per client address.

A wrong PASS is answered only after a delay that doubles with each consecutive failure from
the same address, up to a cap (and the connection is then closed, as vscpd does). The
delays of one address are served one after the other, so guessing over many connections in
parallel does not multiply the rate: the failures of an address are answered at most one
per delay, and each guess holds one of the server's `max_clients` connections until then.
A correct password is answered at once, so a good client is never held up by a guesser
behind the same address (a NAT, or the same host). Failures are forgotten after
`forget_after` seconds without one, and at most `max_addresses` addresses are remembered,
so the table stays bounded however many addresses try.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import anyio


@dataclass
class _Address:
    failures: int = 0
    last_failure: float = 0.0
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    waiting: int = 0


class LoginThrottle:
    def __init__(
        self,
        delay: float,
        max_delay: float,
        *,
        forget_after: float = 900.0,
        max_addresses: int = 4096,
    ) -> None:
        self.delay = delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_addresses = max_addresses
        self.failures = 0
        """Failed logins since the server started, all addresses."""
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def failures_of(self, address: str) -> int:
        """Consecutive failures from `address` (forgotten after `forget_after` seconds)."""
        entry = self._addresses.get(address)
        return entry.failures if entry else 0

    def next_delay(self, failures: int) -> float:
        """The delay before answering the `failures`-th consecutive failure."""
        if failures <= 0 or self.delay <= 0:
            return 0.0
        return min(self.max_delay, self.delay * 2 ** min(failures - 1, 30))

    async def failed(self, address: str) -> float:
        """Record a failed login from `address` and wait its turn and its delay; return
        the delay."""
        now = time.monotonic()
        entry = self._addresses.get(address)
        if entry is None:
            entry = self._addresses[address] = _Address()
            self._evict()
        elif now - entry.last_failure > self.forget_after:
            entry.failures = 0
        self._addresses.move_to_end(address)
        entry.failures += 1
        entry.last_failure = now
        self.failures += 1
        delay = self.next_delay(entry.failures)
        entry.waiting += 1
        try:
            async with entry.lock:
                if delay:
                    await anyio.sleep(delay)
        finally:
            entry.waiting -= 1
        return delay

    def _evict(self) -> None:
        while len(self._addresses) > self.max_addresses:
            for key, entry in self._addresses.items():  # least recently failed first
                if entry.waiting == 0:
                    del self._addresses[key]
                    break
            else:
                return
