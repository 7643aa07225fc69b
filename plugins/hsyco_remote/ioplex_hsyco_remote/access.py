"""Who may use the serving side: the address allow-list, the password, the throttle, sessions.

HSYCO's RemoteServerAddress and RemoteServerPassword, plus what its documentation lacks,
built on the kernel's server toolkit (`ioplex.serving`):

- the password is compared in constant time;
- wrong guesses are throttled per network prefix (an IPv4 address, an IPv6 /64) with a global
  cap on wrong guesses a second; a locked prefix is refused unchecked (429 + Retry-After);
- a client whose password was right gets a session token (``X-Ioplex-Session``), valid for
  `SESSION_TTL` seconds and renewed on each use. A request presenting a valid token is let in
  without the throttle, so a replicating concentrator that logged in once is never locked
  out by somebody else's failures from its address (a neighbour behind the same NAT).
  rioget clients (HSYCO's) cannot carry a header: they keep sending the password.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from ioplex.serving import AllowList, AuthThrottle, RateLimitedLog, client_prefix

log = logging.getLogger("ioplex.plugin.hsyco_remote.server")

FREE_FAILURES = 5
"""Wrong guesses a prefix may make before it is locked out."""
BASE_LOCKOUT = 1.0
"""The first lockout, in seconds; each further failure doubles it up to `MAX_LOCKOUT`."""
MAX_LOCKOUT = 60.0
GLOBAL_RATE = 20.0
"""Wrong guesses a second, all prefixes together, before every unauthenticated attempt waits:
a botnet of many addresses cannot try more than this."""
SESSION_TTL = 600.0
"""Seconds a session token stays valid after its last use."""
MAX_SESSIONS = 4096
"""At most this many live sessions (the least recently used are forgotten first)."""


class Verdict(Enum):
    OK = "ok"
    ADDRESS = "address not allowed"
    PASSWORD = "wrong or missing password"
    THROTTLED = "too many failed attempts"


@dataclass(frozen=True)
class Decision:
    """The gate's answer to one request."""

    verdict: Verdict
    retry_after: float = 0.0
    """Seconds until the client may try again (THROTTLED only)."""
    session: str | None = None
    """The session token to hand the client (a new one, or the one it presented)."""


class Sessions:
    """Session tokens: random, held in memory only (a restart ends every session), bounded.

    One live token per client prefix: a client that logs in with the password again (one that
    ignores the header, like curl in a loop) gets the same token back, so however many
    requests it makes it cannot push a concentrator's session out of the table.
    """

    def __init__(
        self,
        ttl: float = SESSION_TTL,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._of_prefix: dict[str, str] = {}
        self._prefix_of: dict[str, str] = {}

    def create(self, client: str | None = None) -> str:
        """The live token of `client`'s prefix, renewed, or a new one."""
        prefix = client_prefix(client)
        token = self._of_prefix.get(prefix)
        if token is not None and self.renew(token):
            return token
        token = secrets.token_urlsafe(24)
        self._expiry[token] = self._clock() + self.ttl
        self._of_prefix[prefix] = token
        self._prefix_of[token] = prefix
        while len(self._expiry) > self.limit:
            self._forget(next(iter(self._expiry)))
        return token

    def _forget(self, token: str) -> None:
        self._expiry.pop(token, None)
        prefix = self._prefix_of.pop(token, None)
        if prefix is not None and self._of_prefix.get(prefix) == token:
            del self._of_prefix[prefix]

    def renew(self, token: str | None) -> bool:
        """Whether `token` is a live session; if so it lives another `ttl` seconds."""
        if not token or len(token) > 64:
            return False
        expiry = self._expiry.get(token)
        now = self._clock()
        if expiry is None:
            return False
        if expiry <= now:
            self._forget(token)
            return False
        self._expiry[token] = now + self.ttl
        self._expiry.move_to_end(token)
        return True

    def __len__(self) -> int:
        return len(self._expiry)


class Gate:
    """Checks one request's client address, session token or password."""

    def __init__(
        self,
        password: str,
        allowed: AllowList,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._password = password.encode("utf-8")
        self.allowed = allowed
        self.throttle = AuthThrottle(
            free_failures=FREE_FAILURES,
            base_delay=BASE_LOCKOUT,
            max_delay=MAX_LOCKOUT,
            global_rate=GLOBAL_RATE,
            log=log,
            what="hsyco_remote server",
            clock=clock,
        )
        self.sessions = Sessions(clock=clock)
        self.refusals = RateLimitedLog(log)

    def address_allowed(self, client: str | None) -> bool:
        return self.allowed.allows(client)

    def check(
        self,
        client: str | None,
        password: str | None,
        session: str | None = None,
        *,
        new_session: bool = True,
    ) -> Decision:
        """The decision on one request; `new_session`: hand out a token on success.

        The password is compared as sent and, when it has a "%", percent-decoded too:
        non-ASCII passwords travel percent-encoded, while a password such as ``pa%41ss``
        may equally be sent as typed (as HSYCO's rioget documentation shows passwords).
        """
        if not self.allowed.allows(client):
            return Decision(Verdict.ADDRESS)
        if session is not None and self.sessions.renew(session):
            return Decision(Verdict.OK, session=session)
        wait = self.throttle.locked_for(client)
        if wait > 0:
            return Decision(Verdict.THROTTLED, retry_after=wait)
        if password is not None and self._matches(password):
            self.throttle.succeeded(client)
            return Decision(
                Verdict.OK, session=self.sessions.create(client) if new_session else None
            )
        self.throttle.failed(client)
        return Decision(Verdict.PASSWORD)

    def log_refusal(self, what: str, client: str | None, verdict: Verdict) -> None:
        """One line per kind of refusal per minute (the throttle logs wrong passwords)."""
        if verdict is Verdict.PASSWORD:
            log.debug("%s from %s refused: %s", what, client, verdict.value)
            return
        self.refusals.warning(verdict.name, "%s from %s refused: %s", what, client, verdict.value)

    def _matches(self, password: str) -> bool:
        ok = hmac.compare_digest(password.encode("utf-8", "surrogateescape"), self._password)
        if "%" in password:
            decoded = unquote(password, errors="surrogateescape")
            ok |= hmac.compare_digest(decoded.encode("utf-8", "surrogateescape"), self._password)
        return ok
