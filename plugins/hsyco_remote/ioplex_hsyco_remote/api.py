"""API v1 of the serving side: the JSON endpoints a replicating host (or any client) uses.

Documented as OpenAPI in openapi.json, served at ``/api/v1/openapi.json``. Every endpoint
but that one needs an allowed client address and the password in ``Authorization: Bearer``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ioplex import (
    PointTypeError,
    ReadOnlyPointError,
    UnknownPointError,
)

from .access import Gate, Verdict
from .changelog import ChangeLog, ResyncNeeded
from .exposure import Exposure
from .wire import API_PREFIX, PAGE_SIZE, STATE_MEDIA_TYPE, dumps, password_from, state_row

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
MAX_BODY = 16 * 1024 * 1024
OPENAPI = files(__package__).joinpath("openapi.json").read_bytes()
NAMESPACES = ("io", "ui")

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        dumps({"error": {"code": code, "message": message}}),
        status_code=status, media_type="application/json", headers=headers,
    )


def ok(data: Any) -> Response:
    return Response(dumps(data), media_type="application/json")


class BadRequest(Exception):
    """A malformed parameter or body: answered 400 with the message."""


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
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
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"query parameter {name}={text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"query parameter {name}={text} is outside {low}..{high}")
    return value


def _namespaces(request: Request) -> tuple[str, ...]:
    wanted: list[str] = []
    for item in request.query_params.getlist("ns"):
        for ns in item.split(","):
            if ns not in NAMESPACES:
                raise BadRequest(f"query parameter ns={ns!r}: expected io or ui")
            if ns not in wanted:
                wanted.append(ns)
    return tuple(wanted) or NAMESPACES


class Api:
    """The endpoints, bound to one host's exposure, change log and gate."""

    def __init__(
        self,
        host: Any,
        exposure: Exposure,
        changelog: ChangeLog,
        gate: Gate,
        control: bool,
    ) -> None:
        self.host = host
        self.exposure = exposure
        self.changelog = changelog
        self.gate = gate
        self.control = control

    # -- plumbing ------------------------------------------------------------------------------
    def guarded(self, handler: Handler) -> Handler:
        """Wrap an endpoint: refuse unknown addresses, wrong passwords and throttled clients."""

        async def endpoint(request: Request) -> Response:
            client = request.client.host if request.client else None
            verdict = self.gate.check(client, password_from(request.headers.get("authorization")))
            if verdict is not Verdict.OK:
                return self.refusal(request, client, verdict)
            try:
                return await handler(request)
            except BadRequest as exc:
                return error(400, "bad_request", str(exc))

        return endpoint

    def refusal(self, request: Request, client: str | None, verdict: Verdict) -> Response:
        # The path only, never the query string: rioget carries the password there.
        log.log(logging.WARNING if self.gate.worth_logging(client, verdict) else logging.DEBUG,
                "refused %s %s from %s: %s", request.method, request.url.path, client,
                verdict.value)
        if verdict is Verdict.THROTTLED:
            retry = max(1, math.ceil(self.gate.retry_after(client)))
            return error(429, "throttled", f"{verdict.value}; retry in {retry} s",
                         {"Retry-After": str(retry)})
        if verdict is Verdict.ADDRESS:
            return error(403, "address_not_allowed", f"client address {client} is not allowed")
        return error(401, "unauthorized", "wrong or missing password",
                     {"WWW-Authenticate": 'Bearer realm="ioplex hsyco_remote"'})

    def routes(self) -> list[Route]:
        p = API_PREFIX
        g = self.guarded
        return [
            Route(f"{p}/openapi.json", self.openapi, methods=["GET"]),
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
            "writable": bool(point is not None and point.writable),
        }

    def _loggers(self) -> Any:
        return getattr(self.host, "loggers", None) or {}

    async def info(self, request: Request) -> Response:
        changelog = self.changelog
        return ok({
            "api": 1,
            "host": self.host.name,
            "epoch": changelog.epoch,
            "seq": changelog.seq,
            "time": self.host.time(),
            "control": self.control,
            "count": self.exposure.report(NAMESPACES),
            "clock": self._clock(),
            "loggers": sorted(self._loggers()),
        })

    async def clock(self, request: Request) -> Response:
        return ok(self._clock())

    async def state(self, request: Request) -> Response:
        """The full state of one namespace as NDJSON: a header line, pages, a trailer line.

        Streamed page by page from a snapshot of point references, so neither side holds
        more than a page of encoded rows, however large the host.
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
        head = {"epoch": self.changelog.epoch, "seq": self.changelog.seq, "ns": ns,
                "count": len(points)}

        async def lines() -> AsyncIterator[bytes]:
            yield dumps(head) + b"\n"
            for i in range(0, len(points), PAGE_SIZE):
                yield dumps([state_row(p) for p in points[i : i + PAGE_SIZE]]) + b"\n"
            yield dumps({"end": True, "count": len(points)}) + b"\n"

        return StreamingResponse(lines(), media_type=STATE_MEDIA_TYPE)

    async def changes(self, request: Request) -> Response:
        """What changed after `since`; waits up to `wait` seconds (≤ 10) when nothing did."""
        spaces = _namespaces(request)
        since = _int(request, "since", 0, 0, 2**63)
        wait = _float(request, "wait", 0.0, 0.0, 3600.0)
        limit = _int(request, "limit", MAX_CHANGES, 1, MAX_CHANGES)
        epoch = request.query_params.get("epoch")
        changelog = self.changelog
        try:
            changelog.check(epoch, since)
            if wait > 0 and changelog.seq <= since:
                if await changelog.wait(since, min(wait, MAX_WAIT)):
                    await anyio.sleep(BATCH_DELAY)
                changelog.check(epoch, since)
        except ResyncNeeded as exc:
            return ok({"resync": True, "reason": str(exc), "epoch": changelog.epoch,
                       "seq": changelog.seq, "time": self.host.time()})
        entries, next_seq, more = changelog.since(since, limit, spaces)
        rows: dict[str, list[list[Any]]] = {ns: [] for ns in spaces}
        registries = {"io": self.host.points, "ui": self.host.ui}
        for _, ns, name in entries:
            point = registries[ns].get(name)
            if point is not None:
                rows[ns].append([name, point.value, point.quality])
        return ok({
            "epoch": changelog.epoch,
            "seq": next_seq,
            "more": more,
            "time": self.host.time(),
            "count": self.exposure.report(spaces),
            **rows,
        })

    async def write(self, request: Request) -> Response:
        """Write one exposed point; refused (403, nothing changed) unless control is on."""
        if not self.control:
            return error(403, "control_disabled",
                         "writes are disabled on this server (plugins.hsyco_remote.server.control "
                         "is false)")
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object {\"ns\", \"name\", \"value\"}")
        ns = body.get("ns", "io")
        name = body.get("name")
        if ns not in NAMESPACES:
            raise BadRequest(f"ns={ns!r}: expected \"io\" or \"ui\"")
        if not isinstance(name, str) or not name:
            raise BadRequest("name: expected a point name (a non-empty string)")
        if "value" not in body:
            raise BadRequest("value: missing")
        value = body["value"]
        if value is not None and type(value) not in (str, int, float, bool):
            raise BadRequest(f"value: expected a string, number, boolean or null, got {value!r}")
        what = "UI variable" if ns == "ui" else "point"
        point = self.exposure.get(ns, name)
        if point is None:
            return error(404, "unknown_point", f"unknown {what} {name!r}")
        registry = self.exposure.registry(ns)
        try:
            with anyio.fail_after(WRITE_TIMEOUT):
                await registry.write(name, value)
        except ReadOnlyPointError as exc:
            return error(409, "read_only", str(exc))
        except PointTypeError as exc:
            return error(422, "wrong_type", str(exc))
        except UnknownPointError as exc:
            return error(404, "unknown_point", str(exc))
        except TimeoutError:
            return error(504, "timeout", f"{name}: the write took longer than {WRITE_TIMEOUT:g} s")
        except Exception as exc:  # the owning driver's refusal: WriteError or anything else
            return error(502, "write_failed", str(exc) or type(exc).__name__)
        return ok({"ok": True, "ns": ns, "name": name, "value": point.value,
                   "quality": point.quality})

    async def loggers(self, request: Request) -> Response:
        return ok({"loggers": sorted(self._loggers())})

    async def samples(self, request: Request) -> Response:
        """Raw samples of one data logger recorded after a high-water mark, oldest first."""
        logger_id = request.path_params["id"]
        logger = self._loggers().get(logger_id)
        if logger is None:
            return error(404, "unknown_logger", f"unknown data logger {logger_id!r}")
        after = _int(request, "after", 0, 0, 2**63)
        limit = _int(request, "limit", 1000, 1, MAX_SAMPLES)
        reader = getattr(logger, "asamples_after", None)  # in a worker thread: SQLite blocks
        rows = await reader(after, limit) if reader else logger.samples_after(after, limit)
        samples = [[seq, t, point, value, str(quality)] for seq, t, point, value, quality in rows]
        return ok({"logger": logger_id, "samples": samples, "more": len(samples) >= limit})


async def _read_json(request: Request) -> Any:
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(f"the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
