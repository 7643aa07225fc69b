"""HSYCO's documented public endpoint, for third-party clients: ``GET /x/rioget?1*<ts>*<pw>``.

The answer is ``{"hsycostate":{"timestamp":…,"topotime":…,"io":{"name":"value",…}}}`` with
every value a string. Timestamp 1 (or one this server run did not hand out) gives the full
state; the timestamp of the previous answer gives only what changed since, waiting up to 10 s
when nothing did (the answer then has no ``io``). A wrong password or a client address that
is not allowed gets no data. Since the password is part of the URL, the server never logs
request URLs (uvicorn's access log is off) and never echoes the query string.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import unquote

import anyio
from starlette.requests import Request
from starlette.responses import Response

from .access import Gate, Verdict
from .api import BATCH_DELAY, MAX_WAIT, log
from .changelog import ChangeLog
from .exposure import Exposure
from .wire import dumps, rioget_string

PATH = "/x/rioget"
MAX_DELTA = 1_000_000
"""The most changed points in one delta answer (more than any real site has)."""


class Rioget:
    def __init__(self, host: Any, exposure: Exposure, changelog: ChangeLog, gate: Gate) -> None:
        self.host = host
        self.exposure = exposure
        self.changelog = changelog
        self.gate = gate

    async def endpoint(self, request: Request) -> Response:
        # The query is positional, "1*<timestamp>*<password>"; the password is last so it may
        # itself contain "*". It may be percent-encoded (e.g. a "%" as %25).
        query = unquote(request.scope.get("query_string", b"").decode("latin-1"))
        version, _, rest = query.partition("*")
        stamp, _, password = rest.partition("*")
        client = request.client.host if request.client else None
        if not self.gate.address_allowed(client):
            return self.refusal(client, Verdict.ADDRESS)
        if version != "1" or not stamp.isdigit():
            log.warning("rioget from %s: malformed request (expected ?1*<timestamp>*<password>)",
                        client)
            return Response(status_code=400)
        verdict = self.gate.check(client, password)
        if verdict is not Verdict.OK:
            return self.refusal(client, verdict)
        state: dict[str, Any] = await self.answer(int(stamp))
        return Response(dumps({"hsycostate": state}), media_type="application/json")

    def refusal(self, client: str | None, verdict: Verdict) -> Response:
        """No data: an empty 403 (429 with Retry-After while throttled)."""
        log.log(logging.WARNING if self.gate.worth_logging(client, verdict) else logging.DEBUG,
                "rioget from %s refused: %s", client, verdict.value)
        if verdict is Verdict.THROTTLED:
            retry = max(1, math.ceil(self.gate.retry_after(client)))
            return Response(status_code=429, headers={"Retry-After": str(retry)})
        return Response(status_code=403)

    async def answer(self, stamp: int) -> dict[str, Any]:
        changelog = self.changelog
        position = changelog.position(stamp)
        io: dict[str, str] = {}
        if position is None:
            timestamp = changelog.timestamp()
            for point in self.exposure.points("io"):
                io[point.name] = rioget_string(point.value)
        else:
            if changelog.seq <= position and await changelog.wait(position, MAX_WAIT):
                await anyio.sleep(BATCH_DELAY)
            position = changelog.position(stamp)
            if position is None:  # entries were dropped meanwhile: start over
                return await self.answer(1)
            entries, next_seq, _ = changelog.since(position, MAX_DELTA, ("io",))
            timestamp = changelog.base_us + next_seq
            points = self.host.points
            for _, _, name in entries:
                point = points.get(name)
                if point is not None:
                    io[name] = rioget_string(point.value)
        state: dict[str, Any] = {"timestamp": timestamp}
        clock = self.exposure.clock_point()
        if clock is not None:
            state["system"] = clock.name.rsplit(".", 1)[0]
        state["topotime"] = self.exposure.topotime()
        if io:
            state["io"] = io
        return state
