"""The replicating side's HTTPS client for API v1 (httpx).

Every request has a timeout; the long poll's is the server's wait plus a margin. Refusals
(wrong password, address not allowed, refused certificate) become `Refused`, which the mirror
retries slowly; a 429 becomes `Throttled` with the server's Retry-After; a remote without
API v1 becomes `NotIoplex`; a refused write becomes `ioplex.WriteError` carrying the remote's
reason; everything else is an ordinary error and the supervisor reconnects with backoff.

After a successful password check the server hands out a session token
(``X-Ioplex-Session``); it is sent back with every later request, beside the password, so
that other clients failing from this host's address never lock this one out.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
from ioplex import Value, WriteError
from ioplex.points import printable

from . import answers
from .peer import CONNECT_TIMEOUT, HttpsPeer
from .refusals import NotIoplex, Refused, RemoteError, Throttled, retry_after
from .wire import API_PREFIX, bearer

REQUEST_TIMEOUT = 30.0
POLL_MARGIN = 10.0
"""How much longer than the server's promised wait a long poll may take before it is
considered lost: the long poll is the heartbeat."""
SESSION_HEADER = "X-Ioplex-Session"
"""The session token a server hands out after a good password, sent back on later requests."""
MAX_SESSION_TOKEN = 512

__all__ = ["SESSION_HEADER", "RemoteClient", "RemoteError"]


class _QuietPolls(logging.Filter):
    """httpx logs each request at INFO; the long polls (several a second when busy, one
    every 10 s when idle) would drown the log, so theirs are left out, and so are rioget's,
    whose URL carries the password."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith("HTTP Request:")):
            return True
        text = str(record.args)
        return f"{API_PREFIX}/changes" not in text and "/x/rioget" not in text


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _QuietPolls) for f in _httpx_log.filters):
    _httpx_log.addFilter(_QuietPolls())


class RemoteClient(HttpsPeer):
    """One session with a remote host's API v1; use as an async context manager.

    `where` is the configuration path of the instance (``ioservers.<name>``), used in every
    error so the user knows which table to fix.
    """

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
            headers=bearer(password),
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
            event_hooks={"response": [self._keep_session]},
        )
        self._http.base_url = httpx.URL(self.url + API_PREFIX)
        self.session: str | None = None
        """The server's session token, once it handed one out."""

    async def _keep_session(self, response: httpx.Response) -> None:
        token = response.headers.get(SESSION_HEADER)
        if (
            token
            and token != self.session
            and len(token) <= MAX_SESSION_TOKEN
            and token.isascii()
            and token.isprintable()
        ):
            self.session = token
            self._http.headers[SESSION_HEADER] = token

    # -- requests -------------------------------------------------------------------------------
    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, self.url) from None

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        message = _message(response)
        if status == 401:
            raise Refused(f"{self.where}.password: refused by {self.url} ({message})")
        if status == 403 and _code(response) == "address_not_allowed":
            raise Refused(
                f"{self.where}: {self.url} does not allow this host's address ({message}); "
                "add it to the remote's plugins.hsyco_remote.server.address"
            )
        if status == 429:
            wait = retry_after(response.headers.get("retry-after"))
            raise Throttled(f"{self.url}: throttling this host for {wait:g} s ({message})", wait)
        raise RemoteError(f"{self.url}{response.request.url.path}: HTTP {status}: {message}")

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        self._check(response)
        return answers.parse(response.content, f"{self.url}{API_PREFIX}{path}")

    async def info(self) -> dict[str, Any]:
        """The remote's description; `NotIoplex` when it has no API v1 (no such path, or
        an answer that is not API v1's)."""
        response = await self._request("GET", "/info")
        if response.status_code in (400, 404, 405, 501) and _code(response) is None:
            raise NotIoplex(f"{self.url}{API_PREFIX}/info: HTTP {response.status_code}")
        self._check(response)
        url = f"{self.url}{API_PREFIX}/info"
        try:
            info = answers.parse(response.content, url)
        except RemoteError as exc:
            raise NotIoplex(str(exc)) from None
        if not isinstance(info, dict) or info.get("api") != 1:
            raise NotIoplex(f"{url}: not an hsyco_remote API v1 answer")
        return answers.info(info, url)

    async def clock(self) -> dict[str, Any]:
        return answers.clock(await self._json("GET", "/clock"), f"{self.url}{API_PREFIX}/clock")

    async def changes(
        self, epoch: str | None, since: int, wait: float, spaces: tuple[str, ...]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"since": since, "wait": wait, "ns": ",".join(spaces)}
        if epoch is not None:
            params["epoch"] = epoch
        data = await self._json(
            "GET",
            "/changes",
            params=params,
            timeout=httpx.Timeout(wait + POLL_MARGIN, connect=CONNECT_TIMEOUT),
        )
        return answers.changes(data, f"{self.url}{API_PREFIX}/changes", spaces)

    async def state(
        self, ns: str, names: list[str] | None = None
    ) -> AsyncIterator[dict[str, Any] | list[list[Any]]]:
        """The full state of `ns` (or of `names`): the header, then pages of rows.

        Raises RemoteError when the stream ends before its trailer (a cut connection must
        not look like a smaller remote).
        """
        params: list[tuple[str, str]] = [("ns", ns)] + [("name", n) for n in names or ()]
        try:
            async with self._http.stream("GET", "/state", params=params) as response:
                if response.status_code >= 300:
                    await response.aread()
                    self._check(response)
                lines = response.aiter_lines()
                url = f"{self.url}{API_PREFIX}/state"
                head = answers.state_head(answers.parse(await anext(lines), url), url)
                yield head
                async for line in lines:
                    item = answers.parse(line, url)
                    if isinstance(item, dict):
                        if item.get("end") is True and item.get("count") == head["count"]:
                            return
                        raise RemoteError(f"{url}: unexpected line in the state: {line[:200]!r}")
                    yield answers.state_rows(item, url)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, self.url) from None
        except (StopAsyncIteration, UnicodeDecodeError) as exc:
            raise RemoteError(f"{self.url}/state: malformed state stream: {exc!r}") from None
        raise RemoteError(f"{self.url}/state: the state stream ended early")

    async def write(self, ns: str, name: str, value: Value, local_name: str) -> dict[str, Any]:
        """Write one remote point; WriteError with the remote's reason when refused."""
        try:
            response = await self._http.post(
                "/write",
                content=json.dumps({"ns": ns, "name": name, "value": value}),
                headers={"content-type": "application/json"},
            )
        except httpx.TransportError as exc:
            raise WriteError(f"{local_name}: {self._transport_error(exc, self.url)}") from None
        if response.status_code >= 300:
            raise WriteError(
                f"{local_name}: {self.url} refused the write (HTTP {response.status_code}): "
                f"{_message(response)}"
            )
        try:
            return answers.parse(response.content, f"{self.url}{API_PREFIX}/write")
        except RemoteError:
            raise WriteError(
                f"{local_name}: {self.url} answered the write with something "
                "that is not JSON; it may not have been carried out"
            ) from None

    async def samples(
        self, logger: str, after: int, limit: int
    ) -> tuple[list[tuple[Any, ...]], str | None]:
        """Samples after the mark as the kernel's rows ``(seq, time, point, value,
        quality)``, and the identity of the remote's logger database (None from servers
        older than store ids)."""
        path = f"/loggers/{_path_segment(logger)}/samples"
        data = await self._json("GET", path, params={"after": after, "limit": limit})
        return answers.samples(data, f"{self.url}{API_PREFIX}{path}", logger)


def _path_segment(text: str) -> str:
    return quote(text, safe="")


def _error(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an error answer, or {} (any body, however hostile)."""
    try:
        error = answers.parse(response.content, "")
    except RemoteError:
        return {}
    error = error.get("error") if isinstance(error, dict) else None
    return error if isinstance(error, dict) else {}


def _code(response: httpx.Response) -> str | None:
    code = _error(response).get("code")
    return code if isinstance(code, str) else None


def _message(response: httpx.Response) -> str:
    """The remote's reason, escaped for a log line and cut to 200 characters."""
    message = _error(response).get("message")
    if not isinstance(message, str):
        message = response.content[:200].decode("utf-8", "replace") or response.reason_phrase
    return printable(message, 200)
