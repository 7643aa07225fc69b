"""A client of HSYCO's documented public endpoint, ``GET /x/rioget?1*<timestamp>*<password>``.

What HSYCO documents (notes §1.1) and nothing more: timestamp 1 gets the full state; the
``timestamp`` of an answer, passed back, gets only what changed since, the server holding the
request up to 10 s when nothing did (the answer then has no ``io``); every value is a string.
A wrong password, or a client address missing from the server's ``RemoteServerAddress``,
gets no answer at all: the server drops the connection after 10 s. A client cannot tell that
from a network fault by the response, so the first request of a connection dropped without a
reply is reported as `Refused` naming both causes, and retried slowly.

The password is the last field, sent as it is (HSYCO shows passwords raw in the URL, ``*``
and ``%`` included); only characters a URL cannot carry (space, controls, non-ASCII, ``#``)
are percent-encoded.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from ioplex.serving import jsontext

from .peer import CONNECT_TIMEOUT, HttpsPeer
from .refusals import Refused, RemoteError, Throttled, retry_after
from .trust import certificate_error

PATH = "/x/rioget"
LONG_POLL = 10.0
"""HSYCO holds a delta request this long when nothing changes."""
POLL_MARGIN = 10.0
"""How much longer than the long poll an answer may take before the link counts as lost."""
MAX_ANSWER = 256 * 1024 * 1024
"""The largest answer read (a full state of a very large site is tens of MB)."""
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '#"<>\\^`{|}')


@dataclass(frozen=True, slots=True)
class RiogetAnswer:
    timestamp: int
    """The server's time of the last change (µs), to pass back for the next delta."""
    io: dict[str, str | None]
    """Changed (or, for timestamp 1, all) points and their values; empty when idle."""
    system: str | None
    """The name of the server's SYSTEM I/O server, when it says."""


def parse_answer(body: bytes) -> RiogetAnswer:
    """Read one rioget answer; `RemoteError` (nothing else) when it is not one.

    Values are strings as documented; numbers, booleans and null from lenient servers are
    taken as their JSON text (null as no value) rather than refused.
    """
    try:
        data = jsontext.loads(body, max_depth=8)
    except ValueError as exc:
        raise RemoteError(f"the rioget answer is not JSON: {exc}") from None
    state = data.get("hsycostate") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise RemoteError("the rioget answer has no hsycostate object")
    stamp = state.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp <= 0:
        raise RemoteError(
            f"the rioget answer's timestamp is not a positive integer: {str(stamp)[:40]!r}"
        )
    system = state.get("system")
    io = state.get("io", {})
    if io is None:
        io = {}
    if not isinstance(io, dict):
        raise RemoteError(f"the rioget answer's io is a {type(io).__name__}, not an object")
    values: dict[str, str | None] = {}
    for name, value in io.items():
        if value is None or isinstance(value, str):
            values[name] = value
        elif isinstance(value, bool):
            values[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            values[name] = jsontext.dumps(value)
        else:
            raise RemoteError(
                f"the rioget answer's value of {name[:80]!r} is a "
                f"{type(value).__name__}, not a string"
            )
    return RiogetAnswer(stamp, values, system if isinstance(system, str) else None)


def query(timestamp: int, password: str) -> bytes:
    """``1*<timestamp>*<password>``, the password raw but for what a URL cannot carry."""
    return f"1*{timestamp}*{quote(password, safe=_URL_SAFE)}".encode("ascii")


class RiogetClient(HttpsPeer):
    """Polls one HSYCO server's rioget; use as an async context manager."""

    def __init__(
        self,
        address: str,
        port: int,
        password: str,
        ssl_context: ssl.SSLContext,
        where: str,
        trust_hint: str,
    ) -> None:
        super().__init__(
            address,
            port,
            ssl_context,
            where,
            trust_hint,
            timeout=httpx.Timeout(LONG_POLL + POLL_MARGIN, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        )
        self._password = password
        self._base = httpx.URL(self.url + PATH)
        self.answered = False
        """Whether the server has answered on this client: a later drop is a lost link,
        not a refusal."""

    async def poll(self, timestamp: int) -> RiogetAnswer:
        """The full state (timestamp 1) or the changes since `timestamp`."""
        url = self._base.copy_with(query=query(timestamp, self._password))
        started = time.monotonic()
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._refusal(response)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise RemoteError(
                            f"{self.url}{PATH}: the answer exceeds {MAX_ANSWER // 2**20} MiB"
                        )
        except httpx.TransportError as exc:
            raise self._dropped(exc, time.monotonic() - started) from None
        try:
            answer = parse_answer(bytes(body))
        except RemoteError as exc:
            raise RemoteError(f"{self.url}{PATH}: {exc}") from None
        self.answered = True
        return answer

    def _refusal(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 429:
            wait = retry_after(response.headers.get("retry-after"))
            raise Throttled(f"{self.url}{PATH}: throttling this host for {wait:g} s", wait)
        if status in (401, 403):
            raise Refused(
                f"{self.where}: {self.url}{PATH} refused this host (HTTP {status}): "
                f"wrong {self.where}.password, or this host's address is not in "
                "the remote's RemoteServerAddress"
            )
        raise RemoteError(f"{self.url}{PATH}: HTTP {status}")

    def _dropped(self, exc: httpx.TransportError, elapsed: float) -> Exception:
        if (
            isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)
            and not self.answered
            and certificate_error(exc) is None
        ):
            # HSYCO's documented answer to a wrong password or address: none.
            return Refused(
                f"{self.where}: {self.url} closed the connection without a reply after "
                f"{elapsed:.1f} s, which is how HSYCO refuses a client: either "
                f"{self.where}.password differs from its RemoteServerPassword, or this host's "
                "address is not in its RemoteServerAddress list (or the network cut it)"
            )
        return self._transport_error(exc, f"{self.url}{PATH}")
