"""API v1 of the serving side: the JSON endpoints a replicating host (or any client) uses.

Documented as OpenAPI in openapi.json, served at ``/api/v1/openapi.json``. Every endpoint
needs an allowed client address and the password in ``Authorization: Bearer`` (or a live
session token in ``X-Ioplex-Session``, answered to every request let in).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from typing import Any

import anyio
from ioplex.points import printable
from ioplex.serving import RateLimitedLog, RemoteWrites, jsontext, write_status
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .access import Decision, Gate, Verdict
from .changelog import ChangeLog, ResyncNeeded
from .exposure import Exposure
from .wire import (
    API_PREFIX,
    PAGE_SIZE,
    SESSION_HEADER,
    STATE_MEDIA_TYPE,
    dumps,
    password_from,
    state_row,
)

log = logging.getLogger("ioplex.plugin.hsyco_remote.server")

MAX_WAIT = 10.0
"""The longest long poll, in seconds (HSYCO's): it doubles as the clients' heartbeat."""
BATCH_DELAY = 0.002
"""After a long poll wakes up, wait this long for more changes to share the response."""
MAX_CHANGES = 20_000
"""The most change rows in one response; a client gets the rest at once with ``more``."""
MAX_SAMPLES = 10_000
WRITE_TIMEOUT = 10.0
"""How long a write may take on this host (its driver talking to the device)."""
MAX_BODY = 1024 * 1024
"""The largest request body, in bytes: a write of the longest string (64 KiB by default,
up to 12 bytes a character once JSON-escaped) fits."""
BODY_TIMEOUT = 10.0
"""Seconds a client may take to send a request body."""
MAX_DEPTH = 8
"""The deepest JSON nesting a body may have (a write body has 1)."""
OPENAPI = files(__package__).joinpath("openapi.json").read_bytes()
NAMESPACES = ("io", "ui")

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        dumps({"error": {"code": code, "message": message}}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def ok(data: Any) -> Response:
    return Response(dumps(data), media_type="application/json")


class BadRequest(Exception):
    """A malformed parameter or body: answered with `status` (400 unless said) and the message."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if len(text) > 24:
        raise BadRequest(
            f"query parameter {name}: {len(text)} characters is not an integer in {low}..{high}"
        )
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name}={value} is outside {low}..{high}")
    return value


def _float(request: Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query_params.get(name)
    if text is None:
        return default
    if len(text) > 32:
        raise BadRequest(f"query parameter {name}: {len(text)} characters is not a number")
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"query parameter {name}={text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"query parameter {name}={text} is outside {low}..{high}")
    return value


def _namespaces(request: Request) -> tuple[str, ...]:
    """The ``ns`` parameters (repeated or comma-separated): both when absent, none when given
    empty (``ns=``: a client that follows no namespace, e.g. a logger-only mirror)."""
    items = request.query_params.getlist("ns")
    if not items:
        return NAMESPACES
    wanted: list[str] = []
    for item in items:
        for ns in item.split(","):
            if not ns:
                continue
            if ns not in NAMESPACES:
                raise BadRequest(f"query parameter ns={ns[:20]!r}: expected io or ui")
            if ns not in wanted:
                wanted.append(ns)
    return tuple(wanted)


class Api:
    """The endpoints, bound to one host's exposure, change log and gate."""

    def __init__(
        self,
        host: Any,
        exposure: Exposure,
        changelog: ChangeLog,
        gate: Gate,
        writes: RemoteWrites,
        authenticated: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.host = host
        self.exposure = exposure
        self.changelog = changelog
        self.gate = gate
        self.writes = writes
        self.authenticated = authenticated
        """Told the ASGI scope of each request let in (the server lifts its connection's
        login deadline)."""
        self._faults = RateLimitedLog(log)

    @property
    def control(self) -> bool:
        return self.writes.enabled

    # -- plumbing ------------------------------------------------------------------------------
    def guarded(self, handler: Handler) -> Handler:
        """Wrap an endpoint: refuse unknown addresses, wrong passwords and throttled clients;
        turn every malformed request into a 4xx JSON error for that request alone."""

        async def endpoint(request: Request) -> Response:
            client = request.client.host if request.client else None
            decision = self.gate.check(
                client,
                password_from(request.headers.get("authorization")),
                request.headers.get(SESSION_HEADER),
            )
            if decision.verdict is not Verdict.OK:
                return self.refusal(request, client, decision)
            if self.authenticated is not None:
                self.authenticated(request.scope)
            try:
                response = await handler(request)
            except BadRequest as exc:
                response = error(exc.status, exc.code, str(exc))
            except ClientDisconnect:
                log.debug(
                    "%s %s from %s: the client went away mid-request",
                    request.method,
                    request.url.path,
                    client,
                )
                response = Response(status_code=499)  # never sent: nobody is listening
            except Exception as exc:  # a bug: contained to this request, logged rate-limited
                self._faults.error(
                    "handler",
                    "%s %s from %s failed: %r",
                    request.method,
                    request.url.path,
                    client,
                    exc,
                )
                log.debug("request failure", exc_info=True)
                response = error(500, "internal", "the server failed to answer this request")
            if decision.session is not None:
                response.headers[SESSION_HEADER] = decision.session
            return response

        return endpoint

    def refusal(self, request: Request, client: str | None, decision: Decision) -> Response:
        verdict = decision.verdict
        # The path only, never the query string: rioget carries the password there.
        self.gate.log_refusal(f"{request.method} {request.url.path}", client, verdict)
        if verdict is Verdict.THROTTLED:
            retry = max(1, math.ceil(decision.retry_after))
            return error(
                429,
                "throttled",
                f"{verdict.value}; retry in {retry} s",
                {"Retry-After": str(retry)},
            )
        if verdict is Verdict.ADDRESS:
            return error(403, "address_not_allowed", f"client address {client} is not allowed")
        return error(
            401,
            "unauthorized",
            "wrong or missing password",
            {"WWW-Authenticate": 'Bearer realm="ioplex hsyco_remote"'},
        )

    def routes(self) -> list[Route]:
        p = API_PREFIX
        g = self.guarded
        return [
            Route(f"{p}/openapi.json", g(self.openapi), methods=["GET"]),
            Route(f"{p}/info", g(self.info), methods=["GET"]),
            Route(f"{p}/state", g(self.state), methods=["GET"]),
            Route(f"{p}/changes", g(self.changes), methods=["GET"]),
            Route(f"{p}/write", g(self.write), methods=["POST"]),
            Route(f"{p}/clock", g(self.clock), methods=["GET"]),
            Route(f"{p}/loggers", g(self.loggers), methods=["GET"]),
            Route(f"{p}/loggers/{{id}}/samples", g(self.samples), methods=["GET"]),
        ]

    # -- endpoints -----------------------------------------------------------------------------
    async def openapi(self, request: Request) -> Response:
        return Response(OPENAPI, media_type="application/json")

    def _clock(self) -> dict[str, Any]:
        point = self.exposure.clock_point()
        return {
            "time": self.host.time(),
            "point": point.name if point is not None else None,
            "writable": bool(
                point is not None
                and point.writable
                and self.writes.allows(point.name, point.sensitive)
            ),
        }

    def _loggers(self) -> Any:
        return getattr(self.host, "loggers", None) or {}

    async def info(self, request: Request) -> Response:
        changelog = self.changelog
        return ok(
            {
                "api": 1,
                "host": self.host.name,
                "epoch": changelog.epoch,
                "seq": changelog.seq,
                "time": self.host.time(),
                "control": self.control,
                "count": self.exposure.report(NAMESPACES),
                "clock": self._clock(),
                "loggers": sorted(self._loggers()),
            }
        )

    async def clock(self, request: Request) -> Response:
        return ok(self._clock())

    async def state(self, request: Request) -> Response:
        """The full state of one namespace as NDJSON: a header line, pages, a trailer line.

        Streamed page by page from a snapshot of point references, so neither side holds
        more than a page of encoded rows, however large the host. A row that cannot be
        encoded (the value contract makes it unreachable) is sent with no value and quality
        "bad" instead of aborting the stream for every client.
        """
        spaces = _namespaces(request) if "ns" in request.query_params else ("io",)
        if len(spaces) != 1:
            raise BadRequest("query parameter ns: give exactly one of io, ui")
        ns = spaces[0]
        names = request.query_params.getlist("name")
        if names:
            points = [p for p in (self.exposure.get(ns, n) for n in names) if p is not None]
        else:
            points = self.exposure.points(ns)
        head = {
            "epoch": self.changelog.epoch,
            "seq": self.changelog.seq,
            "ns": ns,
            "count": len(points),
        }
        here = self.host.name

        async def lines() -> AsyncIterator[bytes]:
            yield dumps(head) + b"\n"
            for i in range(0, len(points), PAGE_SIZE):
                rows = [state_row(p, here) for p in points[i : i + PAGE_SIZE]]
                yield self._encode_rows(rows, 2) + b"\n"
            yield dumps({"end": True, "count": len(points)}) + b"\n"

        return StreamingResponse(lines(), media_type=STATE_MEDIA_TYPE)

    def _encode_rows(self, rows: list[list[Any]], quality_at: int) -> bytes:
        """`rows` as a JSON array; a row that cannot be encoded loses its value (quality bad)."""
        try:
            return dumps(rows)
        except (ValueError, TypeError, RecursionError):
            pass
        parts: list[bytes] = []
        for row in rows:
            try:
                parts.append(dumps(row))
            except (ValueError, TypeError, RecursionError) as exc:
                self._faults.warning(
                    "encode", "%s: value not sent, sent as bad (%s)", printable(str(row[0])), exc
                )
                row = [row[0], None, "bad", *row[quality_at + 1 :]]
                parts.append(dumps(row))
        return b"[" + b",".join(parts) + b"]"

    async def changes(self, request: Request) -> Response:
        """What changed after `since`; waits up to `wait` seconds (≤ 10) when nothing did.

        With ``ns=`` (no namespace) the answer has no changes and is held `wait` seconds:
        a heartbeat for clients that follow only data loggers or the clock.
        """
        spaces = _namespaces(request)
        since = _int(request, "since", 0, 0, 2**63)
        wait = _float(request, "wait", 0.0, 0.0, 3600.0)
        limit = _int(request, "limit", MAX_CHANGES, 1, MAX_CHANGES)
        epoch = request.query_params.get("epoch")
        changelog = self.changelog
        if not spaces:
            await changelog.wait(2**63, min(wait, MAX_WAIT))  # wakes only when the log closes
            return ok(
                {
                    "epoch": changelog.epoch,
                    "seq": changelog.seq,
                    "more": False,
                    "time": self.host.time(),
                    "count": {},
                }
            )
        try:
            changelog.check(epoch, since)
            if wait > 0 and changelog.seq <= since:
                if await changelog.wait(since, min(wait, MAX_WAIT)):
                    await anyio.sleep(BATCH_DELAY)
                changelog.check(epoch, since)
        except ResyncNeeded as exc:
            return ok(
                {
                    "resync": True,
                    "reason": str(exc),
                    "epoch": changelog.epoch,
                    "seq": changelog.seq,
                    "time": self.host.time(),
                }
            )
        entries, next_seq, more = changelog.since(since, limit, spaces)
        rows: dict[str, list[list[Any]]] = {ns: [] for ns in spaces}
        registries = {"io": self.host.points, "ui": self.host.ui}
        for _, ns, name in entries:
            point = registries[ns].get(name)
            if point is not None:
                rows[ns].append([name, point.value, point.quality])
        head = {
            "epoch": changelog.epoch,
            "seq": next_seq,
            "more": more,
            "time": self.host.time(),
            "count": self.exposure.report(spaces),
        }
        try:
            return ok({**head, **rows})
        except (ValueError, TypeError, RecursionError):
            body = (
                dumps(head)[:-1]
                + b"".join(
                    b',"' + ns.encode() + b'":' + self._encode_rows(r, 2) for ns, r in rows.items()
                )
                + b"}"
            )
            return Response(body, media_type="application/json")

    async def write(self, request: Request) -> Response:
        """Write one exposed point; refused (403, nothing changed) unless `control` allows it."""
        if not self.writes.enabled:
            return error(
                403,
                "control_disabled",
                "writes are disabled on this server (plugins.hsyco_remote.server.control is false)",
            )
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest('the body must be a JSON object {"ns", "name", "value"}')
        ns = body.get("ns", "io")
        name = body.get("name")
        if not isinstance(ns, str) or ns not in NAMESPACES:
            raise BadRequest(f'ns={str(ns)[:20]!r}: expected "io" or "ui"')
        if not isinstance(name, str) or not name:
            raise BadRequest("name: expected a point name (a non-empty string)")
        if "value" not in body:
            raise BadRequest("value: missing")
        value = body["value"]
        if value is not None and type(value) not in (str, int, float, bool):
            raise BadRequest(
                f"value: expected a string, number, boolean or null, got {type(value).__name__}"
            )
        what = "UI variable" if ns == "ui" else "point"
        point = self.exposure.get(ns, name)
        if point is None:
            return error(404, "unknown_point", f"unknown {what} {printable(name[:300])!r}")
        allowed = (
            self.writes.allows_point(self.host, name)
            if ns == "io"
            else self.writes.allows(name, False)
        )
        if not allowed:
            return error(
                403,
                "not_allowed",
                f"{what} {name}: not writable from remote hosts (not matched by "
                "plugins.hsyco_remote.server.control"
                + (
                    "; a sensitive point must be named there without wildcards in its instance part"
                    if point.sensitive
                    else ""
                )
                + ")",
            )
        registry = self.exposure.registry(ns)
        try:
            with anyio.fail_after(WRITE_TIMEOUT):
                await registry.write(name, value)
        except TimeoutError as exc:
            status, code = write_status(exc)
            return error(status, code, f"{name}: the write took longer than {WRITE_TIMEOUT:g} s")
        except Exception as exc:  # noqa: BLE001 - the kernel's refusal, or the driver's
            return error(*write_status(exc), str(exc) or type(exc).__name__)
        return ok(
            {
                "ok": True,
                "ns": ns,
                "name": name,
                "value": value,
                "current": point.value,
                "quality": point.quality,
            }
        )

    async def loggers(self, request: Request) -> Response:
        return ok({"loggers": sorted(self._loggers())})

    async def samples(self, request: Request) -> Response:
        """Raw samples of one data logger recorded after a high-water mark, oldest first.

        Only samples of exposed I/O points are sent; ``next`` is the position to ask from
        next time (past hidden samples too), ``store`` the identity of the logger database.
        """
        logger_id = request.path_params["id"]
        logger = self._loggers().get(logger_id)
        if logger is None:
            return error(
                404, "unknown_logger", f"unknown data logger {printable(logger_id[:300])!r}"
            )
        after = _int(request, "after", 0, 0, 2**63)
        limit = _int(request, "limit", 1000, 1, MAX_SAMPLES)
        reader = getattr(logger, "asamples_after", None)  # in a worker thread: SQLite blocks
        rows = await reader(after, limit) if reader else logger.samples_after(after, limit)
        exposed = self.exposure.exposed
        samples = [
            [seq, t, point, value, str(quality)]
            for seq, t, point, value, quality in rows
            if exposed("io", point)
        ]
        return ok(
            {
                "logger": logger_id,
                "store": getattr(self._loggers(), "store_id", None),
                "samples": samples,
                "next": rows[-1][0] if rows else after,
                "more": len(rows) >= limit,
            }
        )


async def read_json(request: Request) -> Any:
    """The request body as JSON: at most `MAX_BODY` bytes (413 past it, counted while
    reading), within `BODY_TIMEOUT` seconds (408), nested at most `MAX_DEPTH` deep (400)."""
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isdigit()
        and len(declared) < 20
        and int(declared) > MAX_BODY
    ):
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes", 413, "too_large")
    size = 0
    chunks: list[bytes] = []
    with anyio.move_on_after(BODY_TIMEOUT) as scope:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise BadRequest(f"the body is larger than {MAX_BODY} bytes", 413, "too_large")
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise BadRequest(f"the body took longer than {BODY_TIMEOUT:g} s to arrive", 408, "timeout")
    try:
        return jsontext.loads(b"".join(chunks), max_depth=MAX_DEPTH)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
