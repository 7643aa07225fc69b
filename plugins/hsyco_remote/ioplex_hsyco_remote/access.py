"""Who may use the serving side: the address allow-list, the password and the throttle.

HSYCO's RemoteServerAddress and RemoteServerPassword, plus what its documentation lacks: the
password is compared in constant time, and an address that keeps failing is locked out for a
growing time (answered without even looking at the password) so it cannot guess.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

FREE_FAILURES = 5
"""Failed attempts an address may make before it is locked out."""
MAX_LOCKOUT = 60.0
"""The longest lockout, in seconds; each failure past the free ones doubles it up to this."""
FORGET_AFTER = 900.0
"""Seconds without a failure after which an address's record is forgotten."""
MAX_TRACKED = 10_000
"""At most this many addresses are remembered (the oldest are forgotten first)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Verdict(Enum):
    OK = "ok"
    ADDRESS = "address not allowed"
    PASSWORD = "wrong or missing password"
    THROTTLED = "too many failed attempts"


@dataclass
class _Failures:
    count: int
    last: float
    locked_until: float


def parse_allowed(entries: Iterable[str], where: str) -> list[Network] | None:
    """The allowed networks, or None for ``"*"`` (any address); ValueError naming `where`."""
    networks: list[Network] = []
    for i, entry in enumerate(entries):
        text = entry.strip()
        if text == "*":
            return None
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(
                f"{where}[{i}]: {entry!r} is not an IP address or network "
                "(e.g. \"192.168.1.10\", \"10.0.0.0/8\", \"::1\", or \"*\" for any)"
            ) from None
    return networks


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Gate:
    """Checks one request's client address and password; counts and throttles failures."""

    def __init__(
        self,
        password: str,
        allowed: list[Network] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._password = password.encode("utf-8")
        self._allowed = allowed
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._reported: set[str] = set()

    def address_allowed(self, client: str | None) -> bool:
        if self._allowed is None:
            return True
        address = _address(client) if client else None
        return address is not None and any(address in net for net in self._allowed)

    def check(self, client: str | None, password: str | None) -> Verdict:
        """The verdict on one request; a wrong password counts against the client's address."""
        if not self.address_allowed(client):
            return Verdict.ADDRESS
        key = client or "?"
        now = self._clock()
        record = self._failures.get(key)
        if record is not None and now < record.locked_until:
            return Verdict.THROTTLED
        if password is not None and self._matches(password):
            if record is not None:
                del self._failures[key]
            return Verdict.OK
        self._fail(key, record, now)
        return Verdict.PASSWORD

    def worth_logging(self, client: str | None, verdict: Verdict) -> bool:
        """Whether a refusal deserves a warning: wrong passwords do (throttling bounds them),
        a foreign address only the first time, so a scan cannot flood the log."""
        if verdict is Verdict.PASSWORD:
            return True
        if verdict is Verdict.ADDRESS:
            key = client or "?"
            if key in self._reported:
                return False
            if len(self._reported) >= MAX_TRACKED:
                self._reported.clear()
            self._reported.add(key)
            return True
        return False

    def _matches(self, password: str) -> bool:
        # Non-ASCII passwords travel percent-encoded (HTTP headers are ASCII); a client may
        # also send a password with a literal "%" as is, so both readings are compared.
        ok = hmac.compare_digest(password.encode("utf-8", "surrogateescape"), self._password)
        if "%" in password:
            decoded = unquote(password, errors="surrogateescape")
            ok |= hmac.compare_digest(decoded.encode("utf-8", "surrogateescape"), self._password)
        return ok

    def retry_after(self, client: str | None) -> float:
        """Seconds until a throttled address may try again (0 if it is not throttled)."""
        record = self._failures.get(client or "?")
        return max(0.0, record.locked_until - self._clock()) if record else 0.0

    def _fail(self, key: str, record: _Failures | None, now: float) -> None:
        if record is None or now - record.last > FORGET_AFTER:
            if len(self._failures) >= MAX_TRACKED:
                del self._failures[next(iter(self._failures))]
            record = self._failures[key] = _Failures(0, now, 0.0)
        record.count += 1
        record.last = now
        excess = record.count - FREE_FAILURES
        if excess >= 0:
            record.locked_until = now + min(MAX_LOCKOUT, 2.0**excess)
