"""HSYCO's documented public endpoint, for third-party clients: ``GET /x/rioget?1*<ts>*<pw>``.

The answer is ``{"hsycostate":{"timestamp":…,"topotime":…,"io":{"name":"value",…}}}`` with
every value a string. Timestamp 1 (or one this server run did not hand out) gives the full
state; the timestamp of the previous answer gives only what changed since, waiting up to 10 s
when nothing did (the answer then has no ``io``). A wrong password or a client address that
is not allowed gets no data (an empty 403, or 429 with Retry-After while its network is
locked out for guessing); a malformed query gets 400 with a JSON error. Since the password is
part of the URL, the server never logs request URLs (uvicorn's access log is off) and never
echoes the query string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import anyio
from ioplex.points import printable
from ioplex.serving import RateLimitedLog
from starlette.requests import Request
from starlette.responses import Response

from .access import Decision, Gate, Verdict
from .api import BATCH_DELAY, MAX_WAIT, error, log
from .changelog import ChangeLog
from .exposure import Exposure
from .wire import dumps, rioget_string

PATH = "/x/rioget"
MAX_DELTA = 1_000_000
"""The most changed points in one delta answer (more than any real site has)."""


class Rioget:
    def __init__(
        self,
        host: Any,
        exposure: Exposure,
        changelog: ChangeLog,
        gate: Gate,
        authenticated: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.host = host
        self.authenticated = authenticated
        self.exposure = exposure
        self.changelog = changelog
        self.gate = gate
        self._unprintable = RateLimitedLog(log)

    async def endpoint(self, request: Request) -> Response:
        client = request.client.host if request.client else None
        if not self.gate.address_allowed(client):
            return self.refusal(client, Decision(Verdict.ADDRESS))
        try:
            stamp, password = parse_query(request.scope.get("query_string", b""))
        except ValueError as exc:
            log.debug("rioget from %s: malformed request: %s", client, exc)
            return error(400, "bad_request", str(exc))
        decision = self.gate.check(client, password, new_session=False)
        if decision.verdict is not Verdict.OK:
            return self.refusal(client, decision)
        if self.authenticated is not None:
            self.authenticated(request.scope)
        try:
            state: dict[str, Any] = await self.answer(stamp)
            return Response(dumps({"hsycostate": state}), media_type="application/json")
        except Exception as exc:  # noqa: BLE001 - a bug: contained to this request, logged
            self._unprintable.error("handler", "rioget from %s failed: %r", client, exc)
            log.debug("rioget failure", exc_info=True)
            return error(500, "internal", "the server failed to answer this request")

    def refusal(self, client: str | None, decision: Decision) -> Response:
        """No data: an empty 403 (429 with Retry-After while throttled)."""
        self.gate.log_refusal("rioget", client, decision.verdict)
        if decision.verdict is Verdict.THROTTLED:
            retry = max(1, math.ceil(decision.retry_after))
            return Response(status_code=429, headers={"Retry-After": str(retry)})
        return Response(status_code=403)

    def _string(self, name: str, value: Any) -> str:
        try:
            return rioget_string(value)
        except (ValueError, TypeError) as exc:  # the value contract makes this unreachable
            self._unprintable.warning(
                "value", "rioget: %s: value not sent (%s)", printable(name), exc
            )
            return ""

    async def answer(self, stamp: int) -> dict[str, Any]:
        changelog = self.changelog
        position = changelog.position(stamp)
        io: dict[str, str] = {}
        text = self._string
        if position is None:
            timestamp = changelog.timestamp()
            for point in self.exposure.points("io"):
                io[point.name] = text(point.name, point.value)
        else:
            if changelog.seq <= position and await changelog.wait(position, MAX_WAIT):
                await anyio.sleep(BATCH_DELAY)
            if changelog.position(stamp) is None:  # entries were dropped meanwhile: start over
                return await self.answer(1)
            entries, next_seq, _ = changelog.since(position, MAX_DELTA, ("io",))
            timestamp = changelog.timestamp(next_seq)
            points = self.host.points
            for _, _, name in entries:
                point = points.get(name)
                if point is not None:
                    io[name] = text(name, point.value)
        state: dict[str, Any] = {"timestamp": timestamp}
        clock = self.exposure.clock_point()
        if clock is not None:
            state["system"] = clock.name.rsplit(".", 1)[0]
        state["topotime"] = self.exposure.topotime()
        if io:
            state["io"] = io
        return state


def parse_query(query: bytes) -> tuple[int, str]:
    """``1*<timestamp>*<password>`` → (timestamp, password); ValueError saying what is wrong.

    The fields are taken as sent: HSYCO documents no escaping, and the password is last so it
    may itself contain ``*`` (or ``%41``, compared as typed; see `Gate.check`). Only the
    password may hold anything; bytes that are not UTF-8 are kept as they are.
    """
    text = query.decode("utf-8", "surrogateescape")
    version, sep1, rest = text.partition("*")
    stamp, sep2, password = rest.partition("*")
    if version != "1" or not sep1 or not sep2:
        raise ValueError("expected ?1*<timestamp>*<password>")
    if not _STAMP.fullmatch(stamp):
        raise ValueError("the timestamp must be 1 to 20 decimal digits, greater than 0")
    value = int(stamp)
    if value < 1:
        raise ValueError("the timestamp must be greater than 0")
    return value, password


_STAMP = re.compile(r"[0-9]{1,20}")
