"""Who may do what: the allow-list, users and their roles, sessions for the page, and the
kernel's password throttle.

A client authenticates per request with HTTP Basic (the CLI, curl, Prometheus) or with the
session cookie the page gets from ``POST /api/v1/session`` (an ``EventSource`` cannot send an
Authorization header). The cookie is HttpOnly and SameSite=Strict, so another site cannot
make a browser use it. Without users, every allowed loopback client reads as ``anonymous``
and nobody writes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from ioplex.serving import AuthThrottle, parse_address

from .settings import User, WebSettings

log = logging.getLogger("ioplex.plugin.web")

COOKIE = "ioplex_session"
SESSION_LIFETIME = 12 * 3600.0
"""Seconds a page session lasts without use."""
MAX_SESSIONS = 1000
"""Sessions kept; the least recently used goes first."""


@dataclass(frozen=True)
class Identity:
    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "write"


ANONYMOUS = Identity("anonymous", "read")


def is_loopback_client(client: str | None) -> bool:
    address = parse_address(client)
    return address is not None and address.is_loopback


class Refused(Exception):
    """The request is refused: HTTP `status`, a `code` and a message for the JSON error."""

    def __init__(self, status: int, code: str, message: str, retry_after: float = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


class Access:
    def __init__(self, settings: WebSettings, what: str) -> None:
        self.settings = settings
        self.users = settings.users
        self.throttle = AuthThrottle(log=log, what=what)
        self._sessions: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    @property
    def open(self) -> bool:
        """No users: read-only, loopback clients only."""
        return not self.users

    def admits(self, client: str | None) -> bool:
        """Whether a connection from `client` may be served at all."""
        if self.open:
            return is_loopback_client(client)
        return self.settings.allowed.allows(client)

    def check_password(self, client: str | None, name: str, password: str) -> Identity:
        """The identity of `name`, or Refused (401, or 429 while the client is locked out)."""
        wait = self.throttle.locked_for(client)
        if wait:
            raise Refused(
                429, "locked", f"too many failed logins; retry in {wait:.0f} s", retry_after=wait
            )
        user: User | None = self.users.get(name)
        expected = user.password if user is not None else "\0" * 16
        good = hmac.compare_digest(
            password.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
        )
        if user is None or not good:
            self.throttle.failed(client)
            raise Refused(401, "unauthorized", "wrong user name or password")
        self.throttle.succeeded(client)
        return Identity(user.name, user.role)

    def identify(
        self, client: str | None, authorization: str | None, cookie: str | None
    ) -> Identity:
        """Who sent a request; Refused when nobody known did."""
        if not self.admits(client):
            raise Refused(403, "forbidden", "this address may not use the server")
        if self.open:
            return ANONYMOUS
        if cookie:
            found = self._sessions.get(cookie)
            if found is not None and found[1] > time.monotonic():
                self._sessions.move_to_end(cookie)
                identity = found[0]
                self._sessions[cookie] = (identity, time.monotonic() + SESSION_LIFETIME)
                return identity
        if authorization:
            scheme, _, param = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise Refused(401, "unauthorized", "use HTTP Basic authentication")
            try:
                decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise Refused(401, "unauthorized", "malformed Basic credentials") from None
            name, sep, password = decoded.partition(":")
            if not sep:
                raise Refused(401, "unauthorized", "malformed Basic credentials")
            return self.check_password(client, name, password)
        raise Refused(401, "unauthorized", "log in first")

    def open_session(self, identity: Identity) -> str:
        token = secrets.token_urlsafe(32)
        self._sessions[token] = (identity, time.monotonic() + SESSION_LIFETIME)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return token

    def close_session(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
