"""Mirroring a real HSYCO server through its public rioget endpoint alone.

A session starts with timestamp 1 (the full state: declare, set, forget what the remote no
longer has) and then long-polls with the timestamp of each answer. The points are the
remote's I/O points under ``<name>.``, string-valued unless ``convert`` says otherwise,
and read-only from here: HSYCO's write command is not public documentation. A timestamp
going backwards means the server restarted behind a kept-alive connection: realign.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
from ioplex import Point, PointError, PointTypeError, Quality, State
from ioplex.provenance import HOPS, ORIGIN
from ioplex.serving import RateLimitedLog

from .clock import DELTA_ID
from .conversions import Conversions
from .dataloggers import record_aligned
from .riogetclient import RiogetAnswer, RiogetClient

if TYPE_CHECKING:
    from .mirror import Mirror

MIN_POLL_INTERVAL = 0.5
"""An idle answer that came back early is followed by this pause (a server that does not
hold requests cannot make the loop spin)."""
DETAIL = "rioget: HSYCO's public API, I/O points read-only"


class RiogetMirror:
    """The rioget half of one `Mirror` instance."""

    def __init__(self, mirror: Mirror) -> None:
        self.m = mirror
        self.conversions = Conversions(mirror.io.options["convert"])
        self.aligned = False
        self.timestamp = 0
        self.bad_values = RateLimitedLog(mirror.io.log, 60.0)
        self._fallback_reason: str | None = None
        self.stats = {"full": 0, "polls": 0, "changes": 0}

    @property
    def table(self) -> dict[str, Point]:
        return self.m.mirrored["io"]

    def fell_back(self, reason: str) -> None:
        """`protocol = "auto"` found no API v1: say so once (per reason)."""
        if reason == self._fallback_reason:
            return
        self._fallback_reason = reason
        m = self.m
        unused = [o for o in ("ui", "clocksync") if m.io.options[o]]
        if m.feeds.local:
            unused.append("dataloggers")
        m.io.log.warning(
            "%s: https://%s:%d is not an ioplex host (%s): mirroring its I/O points through "
            "HSYCO's public rioget endpoint, read-only%s",
            m.where,
            m.address,
            m.port,
            reason,
            f"; {', '.join(unused)} need(s) its private API and stay off" if unused else "",
        )

    async def session(self) -> None:
        m = self.m
        async with RiogetClient(
            m.address, m.port, m._password, m.ssl_context, m.where, m.trust_hint
        ) as client:
            answer = await m._throttled(client.poll, 1)
            m.speaking = "rioget"
            m._accepted()
            quiet = not self.aligned and not m.startup_events
            self.align(answer, quiet=quiet)
            m.io.set_online(restore_quality=False)
            m.io.set_state(State.ONLINE, DETAIL)
            self.aligned = True
            m.io.log.info(
                "%s: aligned with %s over rioget: %d points mirrored (read-only)",
                m.where,
                client.url,
                len(self.table),
            )
            await self._follow(client, answer.timestamp)

    async def _follow(self, client: RiogetClient, timestamp: int) -> None:
        m = self.m
        while True:
            started = time.monotonic()
            answer = await m._throttled(client.poll, timestamp)
            self.stats["polls"] += 1
            if answer.timestamp < timestamp:  # a restart behind a kept-alive connection
                m.io.log.info("%s: %s's timestamp went back: realigning", m.where, client.url)
                answer = await m._throttled(client.poll, 1)
                self.align(answer, quiet=False)
            else:
                self.apply(answer.io)
            timestamp = answer.timestamp
            if not answer.io and time.monotonic() - started < 1.0:
                await anyio.sleep(MIN_POLL_INTERVAL)

    def align(self, answer: RiogetAnswer, *, quiet: bool) -> None:
        """Mirror a full state; with discovery, forget the points it no longer has."""
        m = self.m
        m._skipped["io"].clear()
        self.apply(answer.io, quiet=quiet)
        if m.discovery:
            for name in [n for n in self.table if n not in answer.io]:
                m._forget("io", name)
        self.stats["full"] += 1
        self.timestamp = answer.timestamp
        if quiet:
            record_aligned(m.io.host, self.table.values())
        m._discovered()

    def apply(self, values: dict[str, str | None], *, quiet: bool = False) -> int:
        """Set (declaring when new) each point of an answer; return how many."""
        m = self.m
        table = self.table
        update = m.io.host.points.update
        kinds = self.conversions
        for name, text in values.items():
            kind = kinds.kind(name)
            quality = Quality.GOOD
            try:
                value = kinds.convert(kind, text)
            except ValueError as exc:
                value, quality = None, Quality.BAD
                self.bad_values.warning(
                    f"convert:{name}",
                    "%s: %s: %s (convert = %r); its value is empty, quality bad",
                    m.where,
                    name[:200],
                    exc,
                    kind,
                )
            point = table.get(name)
            if point is not None and point.type is not kinds.point_type(kind):
                m._forget("io", name)  # mirrored before with another type (API v1, convert)
                point = None
            if point is None:
                point = self._declare(name, kind, quality, quiet)
                if point is None:
                    continue
            try:
                update(point, value, quality, False, quiet)
            except PointTypeError as exc:  # e.g. longer than [host] max_string
                update(point, None, Quality.BAD, False, quiet)
                self.bad_values.warning(f"value:{name}", "%s: %s", m.where, exc)
        self.stats["changes"] += len(values)
        return len(values)

    def _declare(self, name: str, kind: str, quality: Quality, quiet: bool) -> Point | None:
        m = self.m
        skipped = m._skipped["io"]
        if name in skipped:
            return None
        if name == DELTA_ID:
            skipped.add(name)
            m.io.log.warning(
                "%s: remote point %r clashes with %s.%s and is not mirrored",
                m.where,
                name,
                m.io.name,
                DELTA_ID,
            )
            return None
        meta: dict[str, Any] = {ORIGIN: m.address, HOPS: 1, "protocol": "rioget"}
        try:
            # Writable as on the HSYCO server; the write hook says why it is refused here.
            point = m.io.declare(
                name,
                None,
                writable=True,
                type=Conversions.point_type(kind),
                quality=quality,
                quiet=quiet,
                meta=meta,
            )
        except PointError as exc:  # a name this host's contract refuses
            skipped.add(name)
            self.bad_values.warning(
                f"name:{name}", "%s: remote point not mirrored: %s", m.where, exc
            )
            return None
        self.table[name] = point
        return point
