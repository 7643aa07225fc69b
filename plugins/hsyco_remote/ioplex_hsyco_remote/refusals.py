"""What the remote can refuse, and how a mirror waits it out instead of stopping for good.

A refusal (wrong password, address not allowed, certificate refused, HSYCO dropping the
connection unanswered) is usually fixed on the other side while this host keeps running: a
remote restarted for a moment with a wrong password, a certificate renewed. So it is never
fatal: the mirror retries slowly, backing off to `retryrefused` seconds, shows the reason in
the instance state and logs it once per change of reason (not once per attempt).

A throttle (HTTP 429) is the remote asking for a pause, not a lost link: the mirror honours
``Retry-After`` and its points keep their quality for up to `throttlehold` seconds.
"""

from __future__ import annotations

import math

FIRST_RETRY = 5.0
"""The first retry after a refusal, in seconds (then doubling up to `retryrefused`)."""
MAX_RETRY_AFTER = 3600.0
"""A Retry-After beyond this is read as this (a remote cannot park a mirror for a day)."""


class RemoteError(Exception):
    """The remote answered something unexpected; the connection is restarted."""


class Refused(RemoteError):
    """The remote refuses this host; retrying soon cannot help, retrying later may."""


class Throttled(RemoteError):
    """HTTP 429: the remote asks this host to wait `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotIoplex(RemoteError):
    """The remote has no API v1 (a real HSYCO server): `protocol = "auto"` uses rioget."""


def retry_after(header: str | None, default: float = 1.0) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds; anything else: `default`)."""
    try:
        seconds = float((header or "").strip())
    except ValueError:
        return default
    if not math.isfinite(seconds) or seconds < 0:
        return default
    return min(seconds, MAX_RETRY_AFTER)


class RefusalRetry:
    """The slow retry schedule and the once-per-change reporting of refusals."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.attempts = 0
        self.reason: str | None = None
        """The current refusal, None while the remote accepts this host."""

    def refused(self, reason: str) -> tuple[float, bool]:
        """Note a refusal; return (seconds to wait, whether the reason is new: log it)."""
        new = reason != self.reason
        self.reason = reason
        delay = min(self.cap, FIRST_RETRY * 2 ** min(self.attempts, 16))
        self.attempts += 1
        return delay, new

    def accepted(self) -> str | None:
        """The remote accepted this host; return the refusal that just ended, if any."""
        ended, self.reason, self.attempts = self.reason, None, 0
        return ended
