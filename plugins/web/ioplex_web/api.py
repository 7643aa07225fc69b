"""The HTTP API (``/api/v1``), health, readiness and metrics, and the page's files.

Every answer is JSON (errors as ``{"error": {"code", "message"}}``) except CSV exports,
metrics and the page. Values go out through `ioplex.serving.jsontext` (NaN and infinities
as strings) and come in through its parser (nesting limit), and every write goes through
the kernel's checks, so the API refuses exactly what the kernel refuses, with its words.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib.resources import files
from typing import Any

import anyio
from ioplex import (
    PointError,
    Registry,
    UnknownLoggerError,
    UnknownPointError,
    UnknownViewError,
    ViewError,
    ViewParamError,
)
from ioplex.points import check_pattern, printable
from ioplex.serving import RateLimitedLog, jsontext, write_status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .access import COOKIE, Access, Identity, Refused
from .feed import ChangeFeed
from .health import HealthBoard

log = logging.getLogger("ioplex.plugin.web")

MAX_BODY = 1 << 20
"""The largest request body, in bytes (a write's value is at most ``[host] max_string``)."""
MAX_PAGE = 10_000
"""The most points one list request returns."""
DEFAULT_PAGE = 1000
SNAPSHOT_CHUNK = 2000
"""Points per ``snapshot`` event of a watch."""
PING_INTERVAL = 15.0
"""Seconds between SSE comments on an idle watch, so proxies and clients see it alive."""
MAX_BATCH = 5000
"""Changes per ``changes`` event."""
WRITE_TIMEOUT = 30.0
"""Seconds a write may take in its driver before the API answers 504."""
MAX_ROWS = 200_000
"""Rows one data-logger query returns (``truncated`` says when there were more)."""
MAX_PATTERNS = 32
TRACES_VIEW = "events.traces"
"""The events plugin's view behind ``/api/v1/rules/{rule}/traces``."""
MAX_TRACES = 1000
"""The most firings ``/api/v1/rules/{rule}/traces`` asks for (the view's own bound)."""
STATIC = files(__package__) / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}


def error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        jsontext.dumps({"error": {"code": code, "message": message}}),
        status_code=status,
        media_type="application/json",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        jsontext.dumps(data, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers={**SECURITY_HEADERS, "cache-control": "no-store", **(headers or {})},
    )


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def point_json(point: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": point.name,
        "value": point.value,
        "quality": str(point.quality),
        "type": point.type.__name__ if isinstance(point.type, type) else None,
        "writable": point.writable,
        "changed": point.last_changed,
        "updated": point.last_updated,
        "ioserver": point.ioserver,
    }
    if point.sensitive:
        data["sensitive"] = True
    meta = point.meta
    if meta:
        for key in ("unit", "description", "min", "max", "format"):
            if key in meta:
                data[key] = meta[key]
    return data


def _matcher(patterns: list[str]) -> Callable[[str], Any] | None:
    if not patterns or "*" in patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)).match


def _patterns(request: Request) -> list[str]:
    patterns = request.query_params.getlist("pattern")
    if len(patterns) > MAX_PATTERNS:
        raise BadRequest(f"at most {MAX_PATTERNS} patterns")
    for p in patterns:
        try:
            check_pattern(p)
        except ValueError as exc:
            raise BadRequest(f"pattern: {exc}") from None
    return patterns


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 12:
        raise BadRequest(f"{name}: {printable(text)!r} is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise BadRequest(f"{name}: {value} is not within {low}...{high}")
    return value


def _float(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(
            f"{name}: {printable(text)!r} is not a time in seconds since the epoch"
        ) from None
    if not math.isfinite(value):
        raise BadRequest(f"{name}: must be finite")
    return value


def _ui(request: Request) -> bool:
    return request.url.path.startswith("/api/v1/ui")


def _change_events(feed: ChangeFeed, rows: list[Any], last: int) -> list[bytes]:
    """``changes`` events of at most MAX_BATCH rows; the last carries the id of `last`."""
    out = []
    for i in range(0, len(rows), MAX_BATCH):
        data = jsontext.dumps(rows[i : i + MAX_BATCH], separators=(",", ":"))
        if i + MAX_BATCH >= len(rows):
            out.append(f"event: changes\nid: {feed.event_id(last)}\ndata: {data}\n\n".encode())
        else:
            out.append(f"event: changes\ndata: {data}\n\n".encode())
    return out


class _EventStream(StreamingResponse):
    """An SSE response that holds one of `max_watchers` slots from creation until the
    client is gone (the stream's generator is closed at once, not when collected)."""

    def __init__(self, api: Api, stream: Any) -> None:
        super().__init__(
            stream,
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )
        self._api = api
        self._stream = stream
        api.watchers += 1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._api.watchers -= 1
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()


class Api:
    """The endpoints of one web server, over one host."""

    def __init__(
        self,
        host: Any,
        access: Access,
        board: HealthBoard,
        feeds: dict[str, ChangeFeed],
        metrics_registry: Any,
        writes: Any,
        max_watchers: int,
        authenticated: Callable[[Request], None],
        collector: Any = None,
    ) -> None:
        self.host = host
        self.access = access
        self.board = board
        self.feeds = feeds
        self.metrics_registry = metrics_registry
        self.writes = writes
        self.max_watchers = max_watchers
        self.watchers = 0
        self.collector = collector
        self._authenticated = authenticated
        self._faults = RateLimitedLog(log)
        self._sorted: dict[str, tuple[tuple[int, int], list[str]]] = {}

    # -- plumbing --------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        r = self._route
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/static/{path:path}", self.static, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", r(self.metrics), methods=["GET"]),
            Route("/api/v1/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/v1/session", self.session, methods=["GET", "POST", "DELETE"]),
            Route("/api/v1/points", r(self.list_points), methods=["GET"]),
            Route("/api/v1/points/{name:path}", r(self.one_point), methods=["GET", "PUT"]),
            Route("/api/v1/ui", r(self.list_points), methods=["GET"]),
            Route("/api/v1/ui/{name:path}", r(self.one_point), methods=["GET", "PUT"]),
            Route("/api/v1/watch", r(self.watch), methods=["GET"]),
            Route("/api/v1/ui-watch", r(self.watch), methods=["GET"]),
            Route("/api/v1/ioservers", r(self.ioservers), methods=["GET"]),
            Route("/api/v1/services", r(self.services), methods=["GET"]),
            Route("/api/v1/log", r(self.state_log), methods=["GET"]),
            Route("/api/v1/loggers", r(self.loggers), methods=["GET"]),
            Route("/api/v1/loggers/{id}/data", r(self.logger_data), methods=["GET"]),
            Route("/api/v1/rules", r(self.rules), methods=["GET"]),
            Route("/api/v1/rules/{rule:path}/traces", r(self.rule_traces), methods=["GET"]),
            Route("/api/v1/views", r(self.views), methods=["GET"]),
            Route("/api/v1/views/{name}", r(self.view), methods=["GET"]),
        ]

    def identify(self, request: Request) -> Identity:
        client = request.client.host if request.client else None
        identity = self.access.identify(
            client, request.headers.get("authorization"), request.cookies.get(COOKIE)
        )
        self._authenticated(request)
        return identity

    def _route(
        self,
        endpoint: Callable[[Request, Identity], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                identity = self.identify(request)
                return await endpoint(request, identity)
            except Refused as exc:
                return self._refused(request, exc)
            except BadRequest as exc:
                return error(exc.status, exc.code, str(exc))

        return handle

    def _refused(self, request: Request, exc: Refused) -> Response:
        headers = {}
        if exc.status == 401 and request.headers.get("x-requested-with") != "ioplex-page":
            headers["www-authenticate"] = 'Basic realm="ioplex", charset="UTF-8"'
        if exc.retry_after:
            headers["retry-after"] = str(max(1, round(exc.retry_after)))
        return error(exc.status, exc.code, str(exc), headers)

    async def _body(self, request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise BadRequest(f"the body is over {MAX_BODY} bytes", 413, "too_large")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise BadRequest("send the body as application/json", 415, "unsupported_media_type")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise BadRequest(f"the body is over {MAX_BODY} bytes", 413, "too_large")
            chunks.append(chunk)
        try:
            return jsontext.loads(b"".join(chunks))
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None

    # -- page, health, metrics -----------------------------------------------------------
    async def page(self, request: Request) -> Response:
        return self._file("index.html")

    async def static(self, request: Request) -> Response:
        return self._file(request.path_params["path"])

    def _file(self, path: str) -> Response:
        parts = path.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return error(404, "not_found", "no such file")
        resource = STATIC.joinpath(*parts)
        suffix = "." + parts[-1].rsplit(".", 1)[-1] if "." in parts[-1] else ""
        if suffix not in CONTENT_TYPES or not resource.is_file():
            return error(404, "not_found", "no such file")
        return Response(
            resource.read_bytes(),
            media_type=CONTENT_TYPES[suffix],
            headers={**SECURITY_HEADERS, "cache-control": "no-cache"},
        )

    async def openapi(self, request: Request) -> Response:
        return Response(
            (files(__package__) / "openapi.json").read_bytes(), media_type="application/json"
        )

    async def healthz(self, request: Request) -> Response:
        if not self.access.admits(request.client.host if request.client else None):
            return error(403, "forbidden", "this address may not use the server")
        return ok({"status": "alive", "host": self.host.name})

    async def readyz(self, request: Request) -> Response:
        if not self.access.admits(request.client.host if request.client else None):
            return error(403, "forbidden", "this address may not use the server")
        waiting = self.board.not_ready()
        if waiting:
            return ok({"status": "not ready", "waiting": waiting}, status=503)
        return ok({"status": "ready"})

    async def metrics(self, request: Request, identity: Identity) -> Response:
        if self.metrics_registry is None:
            return error(404, "not_found", "metrics are off (plugins.web.metrics = false)")
        data = await anyio.to_thread.run_sync(generate_latest, self.metrics_registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    # -- sessions --------------------------------------------------------------------------
    async def session(self, request: Request) -> Response:
        client = request.client.host if request.client else None
        try:
            if request.method == "GET":
                identity = self.identify(request)
                return ok(
                    {
                        "name": identity.name,
                        "role": identity.role,
                        "open": self.access.open,
                        "host": self.host.name,
                    }
                )
            if request.method == "DELETE":
                self.access.close_session(request.cookies.get(COOKIE))
                response = ok({"status": "logged out"})
                response.delete_cookie(COOKIE, path="/")
                return response
            if not self.access.admits(client):
                raise Refused(403, "forbidden", "this address may not use the server")
            body = await self._body(request)
            if (
                not isinstance(body, dict)
                or not isinstance(body.get("name"), str)
                or not isinstance(body.get("password"), str)
            ):
                raise BadRequest('send {"name": "...", "password": "..."}')
            if self.access.open:
                raise BadRequest(
                    "this server has no users: it is read-only for this machine", 409, "no_users"
                )
            identity = self.access.check_password(client, body["name"], body["password"])
            self._authenticated(request)
            response = ok(
                {
                    "name": identity.name,
                    "role": identity.role,
                    "open": False,
                    "host": self.host.name,
                }
            )
            response.set_cookie(
                COOKIE,
                self.access.open_session(identity),
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response
        except Refused as exc:
            return self._refused(request, exc)
        except BadRequest as exc:
            return error(exc.status, exc.code, str(exc))

    # -- points ----------------------------------------------------------------------------
    def _registry(self, request: Request) -> Registry:
        return self.host.ui if _ui(request) else self.host.points

    def _names(self, registry: Registry) -> list[str]:
        """The registry's names, sorted; re-sorted only when points came or went."""
        key = (len(registry), registry.declared)
        cached = self._sorted.get(registry.kind)
        if cached is None or cached[0] != key:
            cached = (key, sorted(registry))
            self._sorted[registry.kind] = cached
        return cached[1]

    async def list_points(self, request: Request, identity: Identity) -> Response:
        registry = self._registry(request)
        patterns = _patterns(request)
        text = (request.query_params.get("q") or "").casefold()[:256]
        offset = _int(request, "offset", 0, 0, 1 << 40)
        limit = _int(request, "limit", DEFAULT_PAGE, 0, MAX_PAGE)
        names = self._names(registry)
        match = _matcher(patterns)
        if match is not None:
            names = [n for n in names if match(n)]
        if text:
            names = [n for n in names if text in n.casefold()]
        get = registry.get
        items = []
        for name in names[offset : offset + limit]:
            point = get(name)
            if point is not None:
                items.append(point_json(point))
        return ok(
            {"total": len(names), "offset": offset, "items": items, "can_write": identity.can_write}
        )

    async def one_point(self, request: Request, identity: Identity) -> Response:
        registry = self._registry(request)
        name = request.path_params["name"]
        if request.method == "GET":
            try:
                return ok(point_json(registry[name]))
            except UnknownPointError as exc:
                return error(404, "unknown_point", str(exc))
        if not identity.can_write:
            return error(
                403,
                "forbidden",
                f"user {identity.name!r} may not write (role read)"
                if not self.access.open
                else "this server has no users: it is read-only",
            )
        body = await self._body(request)
        if not isinstance(body, dict) or "value" not in body:
            raise BadRequest('send {"value": ...}')
        value = body["value"]
        if not self.writes.allows_point(self.host, name) and not _ui(request):
            return error(
                403,
                "not_allowed",
                f"writing {printable(name)} is not allowed by plugins.web.control",
            )
        try:
            with anyio.fail_after(WRITE_TIMEOUT):
                await registry.write(name, value)
        except TimeoutError as exc:
            status, code = write_status(exc)
            return error(
                status, code, f"the write of {printable(name)} took over {WRITE_TIMEOUT:g} s"
            )
        except PointError as exc:  # the kernel's refusals and the driver's WriteError
            return error(*write_status(exc), str(exc))
        except Exception as exc:  # noqa: BLE001 - a driver's failure is the writer's answer
            self._faults.warning("write", "web: the write of %s failed: %r", printable(name), exc)
            return error(*write_status(exc), f"{type(exc).__name__}: {exc}")
        point = registry.get(name)
        if point is not None and point.sensitive:  # a command line may carry a secret
            log.info("web: %s wrote %s", identity.name, printable(name))
        else:
            log.info(
                "web: %s wrote %s = %s", identity.name, printable(name), printable(repr(value), 60)
            )
        return ok({"status": "written", "name": name})

    # -- watching ----------------------------------------------------------------------------
    async def watch(self, request: Request, identity: Identity) -> Response:
        ui = request.url.path.endswith("ui-watch")
        feed = self.feeds["ui" if ui else "io"]
        patterns = _patterns(request)
        if self.watchers >= self.max_watchers:
            return error(
                503,
                "busy",
                f"{self.max_watchers} watchers are open (plugins.web.max_watchers)",
                {"retry-after": "5"},
            )
        resume = feed.parse_id(
            request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        )
        return _EventStream(self, self._stream(feed, _matcher(patterns), resume))

    def _snapshot(self, feed: ChangeFeed, match: Any) -> Iterator[bytes]:
        """``snapshot`` events of SNAPSHOT_CHUNK points each, built one at a time as the
        stream sends them, so 100,000 points never stall the event loop in one go. Changes
        during the snapshot are replayed after it (the cursor was taken before), so the
        client ends up current whatever it saw first."""
        registry = feed.registry
        names = self._names(registry)
        if match is not None:
            names = [n for n in names if match(n)]
        eid = feed.event_id(feed.seq)
        get = registry.get
        total = len(names)
        for i in range(0, max(total, 1), SNAPSHOT_CHUNK):
            chunk = [
                point_json(p) for p in map(get, names[i : i + SNAPSHOT_CHUNK]) if p is not None
            ]
            done = i + SNAPSHOT_CHUNK >= total
            data = jsontext.dumps(
                {"points": chunk, "done": done, "total": total}, separators=(",", ":")
            )
            yield f"event: snapshot\nid: {eid}\ndata: {data}\n\n".encode()

    @staticmethod
    def _encode_changes(feed: ChangeFeed) -> Any:
        def encode(changes: list[Any], last: int) -> list[bytes]:
            return _change_events(feed, [c[1:] for c in changes], last)

        return encode

    async def _stream(
        self,
        feed: ChangeFeed,
        match: Any,
        resume: int | None,
    ) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        quiet_since = anyio.current_time()
        if resume is None or feed.since(resume) is None:
            cursor = feed.seq
            for chunk in self._snapshot(feed, match):
                yield chunk
        else:
            cursor = resume
        while not feed.closed:
            if feed.seq <= cursor:
                with anyio.move_on_after(PING_INTERVAL) as waited:
                    await feed.wait(cursor)
                if waited.cancelled_caught:
                    yield b": ping\n\n"
                    continue
            if match is None:  # everything: encoded once for all such watchers
                shared = feed.encoded_since(cursor, self._encode_changes(feed))
                if shared is not None:
                    cursor, chunks = shared
                    for chunk in chunks:
                        yield chunk
                    quiet_since = anyio.current_time()
                    continue
            changes = feed.since(cursor)
            if changes is None:  # fell behind the ring: start over
                cursor = feed.seq
                yield b"event: reset\ndata: {}\n\n"
                for chunk in self._snapshot(feed, match):
                    yield chunk
                continue
            if not changes:
                continue
            cursor = changes[-1][0]
            rows = [c[1:] for c in changes if match is None or match(c[1])]
            for chunk in _change_events(feed, rows, cursor):
                yield chunk
            now = anyio.current_time()
            if rows:
                quiet_since = now
            elif now - quiet_since > PING_INTERVAL:
                # nothing matched for a while: move the client's id on, so a reconnect
                # does not replay a long stretch of changes it would filter out anyway
                quiet_since = now
                yield f"id: {feed.event_id(cursor)}\n\n".encode()

    # -- health ----------------------------------------------------------------------------
    async def ioservers(self, request: Request, identity: Identity) -> Response:
        items = []
        for entry in self.board.ioservers():
            io = self.host.ioservers.get(entry.name)
            data = entry.as_json()
            if io is not None:
                data["type"] = io.type
                data["points"] = sum(1 for _ in io.points())
            items.append(data)
        return ok({"items": items})

    async def services(self, request: Request, identity: Identity) -> Response:
        return ok({"items": [e.as_json() for e in self.board.services()]})

    async def state_log(self, request: Request, identity: Identity) -> Response:
        after = _int(request, "after", 0, 0, 1 << 62)
        return ok({"items": [e for e in self.board.log if e["seq"] > after]})

    # -- data loggers ------------------------------------------------------------------------
    async def loggers(self, request: Request, identity: Identity) -> Response:
        items = [
            {
                "id": lid,
                "kind": lg.kind,
                "levels": list(lg.levels),
                "points": list(lg.points),
                "recorded": lg.recorded,
            }
            for lid, lg in sorted(self.host.loggers.items())
        ]
        return ok({"items": items})

    async def logger_data(self, request: Request, identity: Identity) -> Response:
        lid = request.path_params["id"]
        try:
            logger = self.host.loggers[lid]
        except (KeyError, UnknownLoggerError):
            return error(404, "unknown_logger", f"unknown data logger {printable(lid)!r}")
        level = request.query_params.get("level", "raw")
        if level not in logger.levels:
            raise BadRequest(
                f"level: {printable(level)!r}; data logger {lid!r} keeps {', '.join(logger.levels)}"
            )
        start, end = _float(request, "start"), _float(request, "end")
        patterns = _patterns(request) or None
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise BadRequest("format: json or csv")
        limit = _int(request, "limit", MAX_ROWS, 1, MAX_ROWS)

        def read() -> tuple[list[Any], bool]:
            rows: list[Any] = []
            for row in logger.iter_query(start, end, level, patterns):
                if len(rows) >= limit:
                    return rows, True
                rows.append(row)
            return rows, False

        try:
            rows, truncated = await anyio.to_thread.run_sync(read)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        fields = (
            ["seq", "time", "point", "value", "quality"]
            if level == "raw"
            else ["time", "end", "point", "count", "min", "max", "avg", "delta"]
        )
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(fields)
            for row in rows:
                writer.writerow(
                    [repr(v) if isinstance(v, float) else "" if v is None else str(v) for v in row]
                )
            headers = {"content-disposition": f'attachment; filename="{lid}-{level}.csv"'}
            if truncated:
                headers["x-ioplex-truncated"] = "true"
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
        return ok(
            {
                "logger": lid,
                "level": level,
                "fields": fields,
                "truncated": truncated,
                "rows": [
                    [str(v) if i == 4 and level == "raw" else v for i, v in enumerate(row)]
                    for row in rows
                ],
            }
        )

    # -- rules -----------------------------------------------------------------------------
    async def rules(self, request: Request, identity: Identity) -> Response:
        """The events plugin's rules as it exposes them: points ``events.<file>.<line>``
        holding each rule's last firing time."""
        fires = self.collector.fires if self.collector is not None else {}
        items = []
        for point in self.host.points.match("events.*"):
            rule = point.name[len("events.") :]
            items.append(
                {
                    "rule": rule,
                    "point": point.name,
                    "last_fired": point.value,
                    "quality": str(point.quality),
                    "fires": fires.get(rule, 0),
                    "description": (point.meta or {}).get("description"),
                }
            )
        items.sort(key=lambda r: r["rule"])
        return ok({"items": items, "installed": "events" in self.host.plugins.info})

    async def rule_traces(self, request: Request, identity: Identity) -> Response:
        """The last firings of one rule, from the events plugin's ``events.traces`` view."""
        rule = request.path_params["rule"]
        limit = _int(request, "limit", 20, 1, MAX_TRACES)
        if TRACES_VIEW not in self.host.views:
            return error(
                404,
                "not_installed",
                "rule traces come from the events plugin, which is not installed or not loaded "
                "(pip install ioplex-events)",
            )
        try:
            data = await self.host.views.call_json(
                self.host, TRACES_VIEW, {"rule": rule, "limit": str(limit)}
            )
        except ViewParamError as exc:  # the limit was checked above: the rule is unknown
            return error(404, "unknown_rule", str(exc))
        except ViewError as exc:
            return self._view_failed(TRACES_VIEW, exc)
        return self._json_text(data)

    # -- plugins' views ------------------------------------------------------------------------
    async def views(self, request: Request, identity: Identity) -> Response:
        """Every read-only view the host's plugins offer (``register_views``)."""
        views = self.host.views
        return ok({"items": [views[name].as_dict() for name in views]})

    async def view(self, request: Request, identity: Identity) -> Response:
        """One view's answer; its parameters are the query's (each at most once)."""
        name = request.path_params["name"]
        params: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            if key in params:
                raise BadRequest(f"give {printable(key)} once")
            params[key] = value
        try:
            data = await self.host.views.call_json(self.host, name, params)
        except UnknownViewError as exc:
            return error(404, "unknown_view", str(exc))
        except ViewParamError as exc:
            return error(400, "bad_request", str(exc))
        except ViewError as exc:
            return self._view_failed(name, exc)
        return self._json_text(data)

    def _view_failed(self, name: str, exc: ViewError) -> Response:
        """A view's own failure: logged (rate-limited per view), answered 503, never 500."""
        self._faults.warning(f"view {name}", "web: %s", exc)
        return error(503, "view_failed", str(exc), {"retry-after": "5"})

    @staticmethod
    def _json_text(data: str) -> Response:
        return Response(
            data,
            media_type="application/json",
            headers={**SECURITY_HEADERS, "cache-control": "no-store"},
        )
