"""The replicating side: the ``hsyco_remote`` I/O server type, mirroring a remote host.

The remote point ``dummy.light.1`` becomes ``<name>.dummy.light.1`` here, with the remote's
type, writability and quality; with ``ui = true`` its UI variables are mirrored the same way.

How it stays right:

- **Alignment**: on connect, the full state is streamed page by page (100,000 points in a
  few seconds, memory bounded by a page), remembering the change log position read *before*
  the first page; changes from that position on are then applied, so nothing that changed
  during the alignment is lost. With ``startupevents = false`` the first alignment declares
  and sets points quietly.
- **Following**: a long poll (at most 10 s, also the heartbeat) returns as soon as anything
  changed, with each changed point's latest value.
- **Outages**: while disconnected every mirrored point has quality ``bad``. On reconnect to
  the same server run (same epoch) only what changed meanwhile is fetched, and the other
  points get their remote quality back; after a remote restart the state is realigned in
  full. Either way every point ends with the remote's final value.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import anyio

from ioplex import FatalError, IOServer, Point, PointTypeError, Quality, WriteError, hookimpl

from . import trust
from .certificates import normalize_fingerprint
from .client import RemoteClient, RemoteError
from .clock import DELTA_ID, ClockWatch
from .dataloggers import Feeds
from .wire import QUALITIES, TYPES

LONG_POLL = 10.0
"""Seconds the server may hold a change request when nothing changes."""
MIN_POLL_INTERVAL = 0.5
"""A change answer that came back empty and early is followed by this pause, so a server
(or proxy) that does not hold requests cannot make the loop spin."""
DESCRIBE_BATCH = 200
"""Unknown names per request when fetching the description of new remote points."""
MIN_RESYNC_INTERVAL = 1.0
"""When the remote's point count differs from the mirrored one (a point removed, or declared
without an event), a rediscovery follows, at most one per this many seconds, or per four times
the last alignment's duration if longer: rediscovery never takes more than a fifth of the
time, however large the remote."""
DISCOVER_TIMEOUT = 120.0


def tls_trust(where: str, options: dict[str, Any], base_dir: Path) -> tuple[Any, str]:
    """The TLS context that verifies the remote (a CA file or a pinned fingerprint) and a
    hint for refusals; FatalError naming the option when it is unusable."""
    cafile = (base_dir / os.path.expanduser(options["cafile"])) if options["cafile"] else None
    pin = None
    if options["fingerprint"]:
        try:
            pin = normalize_fingerprint(options["fingerprint"])
        except ValueError as exc:
            raise FatalError(f"{where}.options.fingerprint: {exc}") from None
    try:
        context = trust.client_context(cafile, pin)
    except (OSError, ValueError) as exc:
        raise FatalError(f"{where}.options.cafile: cannot load {str(cafile)!r}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    if pin is not None:
        hint = f"only the certificate with {where}.options.fingerprint is accepted"
    elif cafile is not None:
        hint = (f"it must be signed by {where}.options.cafile ({cafile}) and name "
                "the address")
    else:
        hint = (f"set {where}.options.cafile to the remote's CA or certificate file, or "
                f"{where}.options.fingerprint to the SHA-256 fingerprint its log shows")
    return context, hint


class Mirror:
    """The driver of one ``[ioservers.<name>]`` table of type hsyco_remote."""

    def __init__(self, ioserver: IOServer) -> None:
        self.io = ioserver
        self.where = f"ioservers.{ioserver.name}"
        settings, options = ioserver.settings, ioserver.options
        self.address: str = settings["address"]
        self.port: int = settings["port"]
        self._password: str = settings["password"]
        self.ssl_context, self.trust_hint = tls_trust(
            self.where, options, ioserver.host.config.base_dir
        )
        self.spaces = tuple(ns for ns in ("io", "ui") if options[ns])
        self.discovery: bool = options["discovery"]
        self.startup_events: bool = options["startupevents"]
        self.mirrored: dict[str, dict[str, Point]] = {"io": {}, "ui": {}}
        """Mirrored points by remote name, per namespace."""
        self._skipped: dict[str, set[str]] = {"io": set(), "ui": set()}
        """Remote names that cannot be mirrored (they clash with this instance's own)."""
        self._not_good: dict[str, dict[str, Quality]] = {"io": {}, "ui": {}}
        """The remote quality of points whose remote quality is not good (to restore it
        after an outage without fetching every point again)."""
        self.epoch: str | None = None
        self.seq = 0
        self.aligned = False
        self.client: RemoteClient | None = None
        self.clock = ClockWatch(ioserver, options["clocksync"], options["drift"], self.where)
        self.feeds = Feeds(ioserver, options, self.where)
        self.stats = {"full": 0, "resumed": 0, "polls": 0, "changes": 0, "described": 0}
        self._fresh = False
        self._resync_requested = False
        self._resync_done = anyio.Event()
        self._poll_scope: anyio.CancelScope | None = None
        self._last_resync = -MIN_RESYNC_INTERVAL
        self._resync_at: float | None = None
        self._align_seconds = 0.0
        self.min_resync_interval = MIN_RESYNC_INTERVAL

    # -- the connection ---------------------------------------------------------------------------
    @hookimpl
    async def connect(self, ioserver: IOServer) -> None:
        async with RemoteClient(self.address, self.port, self._password, self.ssl_context,
                                self.where, self.trust_hint) as client:
            info = await client.info()
            resumed = False
            quiet = not self.aligned and not self.startup_events
            if self.aligned and info.get("epoch") == self.epoch:
                resumed = await self._resume(client)
            if not resumed:
                await self._align(client, quiet=quiet)
            self.clock.setup(info, quiet=quiet)
            await self.clock.measure(client, quiet=quiet)
            self.client = client
            self._fresh = True
            ioserver.set_online(restore_quality=False)
            self.aligned = True
            ioserver.log.info(
                "%s: %s %s: %d points, %d UI variables mirrored",
                self.where, "resumed with" if resumed else "aligned with", client.url,
                len(self.mirrored["io"]), len(self.mirrored["ui"]),
            )
            try:
                await self._follow(client)
            finally:
                self.client = None
                self._discovered()  # a discovery waiting for this connection gets its answer

    async def _follow(self, client: RemoteClient) -> None:
        while True:
            wait = LONG_POLL
            if self._resync_at is not None:
                wait = self._resync_at - time.monotonic()
                if wait <= 0:
                    self._resync_requested = True
            if self._resync_requested:
                await self._rediscover(client)
                continue
            started = time.monotonic()
            with anyio.CancelScope() as scope:
                self._poll_scope = scope
                answer = await client.changes(self.epoch, self.seq, min(wait, LONG_POLL),
                                              self.spaces)
            self._poll_scope = None
            if scope.cancelled_caught:
                continue
            self.stats["polls"] += 1
            if answer.get("resync"):
                self.io.log.info("%s: realigning with %s: %s", self.where, client.url,
                                 answer.get("reason"))
                await self._align(client, quiet=False)
                continue
            applied = await self._apply_answer(client, answer)
            self.clock.observe(answer["time"])
            if self.clock.sync_due():
                await self.clock.sync(client)
            if self.discovery and self._count_differs(answer.get("count") or {}):
                if self._resync_at is None:
                    self._resync_at = self._last_resync + max(
                        self.min_resync_interval, 4 * self._align_seconds)
            if not applied and not answer.get("more") and time.monotonic() - started < 1.0:
                await anyio.sleep(MIN_POLL_INTERVAL)

    # -- full alignment ---------------------------------------------------------------------------
    async def _align(self, client: RemoteClient, *, quiet: bool) -> None:
        """Stream the remote's full state and mirror it; then take its log position."""
        started = time.monotonic()
        seen: dict[str, set[str]] = {ns: set() for ns in self.spaces}
        epoch: str | None = None
        seq = 0
        for ns in self.spaces:
            async with contextlib.aclosing(client.state(ns)) as stream:
                head: Any = await anext(stream)
                if epoch is None:
                    epoch, seq = head["epoch"], head["seq"]
                elif head["epoch"] != epoch:
                    raise RemoteError(f"{client.url} restarted during the alignment")
                names = seen[ns]
                async for page in stream:
                    for row in page:
                        self._declare(ns, row, quiet)
                        names.add(row[0])
        if self.discovery:
            for ns in self.spaces:
                for name in [n for n in self.mirrored[ns] if n not in seen[ns]]:
                    self._forget(ns, name)
        self.epoch, self.seq = epoch, seq
        self.stats["full"] += 1
        self._last_resync = time.monotonic()
        self._align_seconds = self._last_resync - started
        self._resync_at = None
        self._resync_requested = False
        self._discovered()

    def _declare(self, ns: str, row: list[Any], quiet: bool) -> None:
        name, value, quality_name, type_name, writable = row
        quality = QUALITIES[quality_name]
        type_ = TYPES[type_name]
        table = self.mirrored[ns]
        point = table.get(name)
        if point is not None and point.type is not type_:
            self._forget(ns, name)  # the remote point was redeclared with another type
            point = None
        ui = ns == "ui"
        if point is None:
            if ns == "io" and name == DELTA_ID:
                self._skipped[ns].add(name)
                self.io.log.warning("%s: remote point %r clashes with %s.%s and is not mirrored",
                                    self.where, name, self.io.name, DELTA_ID)
                return
            # A point of any type is declared empty first, or it would take its value's type.
            point = self.io.declare(name, value if type_ is not None else None,
                                    writable=bool(writable), type=type_, ui=ui,
                                    quality=quality, quiet=quiet)
            table[name] = point
        else:
            point.writable = bool(writable)
        self.io.set(point, value, quality=quality, ui=ui, quiet=quiet)
        if quality is Quality.GOOD:
            self._not_good[ns].pop(name, None)
        else:
            self._not_good[ns][name] = quality

    def _forget(self, ns: str, name: str) -> None:
        self.mirrored[ns].pop(name, None)
        self._not_good[ns].pop(name, None)
        with contextlib.suppress(KeyError):
            self.io.undeclare(name, ui=ns == "ui")

    # -- changes ----------------------------------------------------------------------------------
    async def _resume(self, client: RemoteClient) -> bool:
        """Catch up after an outage from the last position; False if a full realign is due."""
        answers = []
        seq = self.seq
        while True:
            answer = await client.changes(self.epoch, seq, 0.0, self.spaces)
            if answer.get("resync"):
                return False
            answers.append(answer)
            seq = self._advance(client, seq, answer)
            if not answer.get("more"):
                break
        for ns in self.spaces:  # points unchanged meanwhile get their remote quality back
            not_good = self._not_good[ns]
            registry = self.io.host.ui if ns == "ui" else self.io.host.points
            for name, point in self.mirrored[ns].items():
                if point.quality is Quality.BAD:
                    quality = not_good.get(name, Quality.GOOD)
                    if quality is not Quality.BAD:
                        registry.update(point, point.value, quality)
        for answer in answers:
            await self._apply_answer(client, answer)
        self.stats["resumed"] += 1
        return True

    async def _apply_answer(self, client: RemoteClient, answer: dict[str, Any]) -> int:
        """Apply one change answer; describe and declare points seen for the first time."""
        applied = 0
        for ns in self.spaces:
            rows = answer.get(ns)
            if rows:
                unknown = self._apply(ns, rows)
                applied += len(rows)
                if unknown:
                    await self._describe(client, ns, unknown)
        self.seq = self._advance(client, self.seq, answer)
        self.stats["changes"] += applied
        return applied

    @staticmethod
    def _advance(client: RemoteClient, seq: int, answer: dict[str, Any]) -> int:
        """The answer's position, which must move forward (or stay, when nothing is left)."""
        new = answer["seq"]
        if new < seq or (new == seq and answer.get("more")):
            raise RemoteError(f"{client.url}: the change log position went from {seq} to "
                              f"{new}{' with more to come' if answer.get('more') else ''}")
        return new

    def _apply(self, ns: str, rows: list[list[Any]]) -> list[str]:
        """The hot path: set each changed point; return the names not mirrored yet."""
        table = self.mirrored[ns]
        not_good = self._not_good[ns]
        update = (self.io.host.ui if ns == "ui" else self.io.host.points).update
        good = Quality.GOOD
        qualities = QUALITIES
        unknown: list[str] = []
        for name, value, quality_name in rows:
            point = table.get(name)
            if point is None:
                if name not in self._skipped[ns]:
                    unknown.append(name)
                continue
            quality = qualities[quality_name]
            if quality is good:
                if not_good:
                    not_good.pop(name, None)
            else:
                not_good[name] = quality
            try:
                update(point, value, quality)
            except PointTypeError:
                unknown.append(name)  # its type changed remotely: describe it again
        return unknown

    async def _describe(self, client: RemoteClient, ns: str, names: list[str]) -> None:
        quiet = False
        for i in range(0, len(names), DESCRIBE_BATCH):
            batch = names[i : i + DESCRIBE_BATCH]
            async with contextlib.aclosing(client.state(ns, batch)) as stream:
                await anext(stream)
                async for page in stream:
                    for row in page:
                        self._declare(ns, row, quiet)
                        self.stats["described"] += 1

    def _count_differs(self, count: dict[str, int]) -> bool:
        """Whether the remote exposes more or fewer points than are mirrored here."""
        return any(
            ns in count and count[ns] != len(self.mirrored[ns]) + len(self._skipped[ns])
            for ns in self.spaces
        )

    # -- discovery --------------------------------------------------------------------------------
    async def _rediscover(self, client: RemoteClient) -> None:
        self.io.log.info("%s: rediscovering the points of %s", self.where, client.url)
        await self._align(client, quiet=False)

    def _discovered(self) -> None:
        done, self._resync_done = self._resync_done, anyio.Event()
        done.set()

    def _ids(self) -> list[str]:
        ids = list(self.mirrored["io"])
        if self.clock.point is not None:
            ids.append(DELTA_ID)
        return ids

    @hookimpl
    async def discover(self, ioserver: IOServer) -> list[str] | None:
        """Refresh the list of mirrored points (a full realignment) and return it.

        Right after a connection the alignment has just been done, so it is not repeated.
        """
        if not self.discovery:
            return None
        if self._fresh or self.client is None:
            self._fresh = False
            return self._ids()
        done = self._resync_done
        self._resync_requested = True
        if self._poll_scope is not None:
            self._poll_scope.cancel()
        with anyio.move_on_after(DISCOVER_TIMEOUT):
            await done.wait()
        return self._ids()

    # -- writes and data loggers -------------------------------------------------------------------
    @hookimpl
    async def write(self, ioserver: IOServer, point: Point, value: Any, namespace: str) -> None:
        client = self.client
        if client is None:
            raise WriteError(f"{point.name}: {self.where} is not connected to "
                             f"https://{self.address}:{self.port}")
        remote = point.name[len(ioserver.name) + 1 :]
        await client.write(namespace, remote, value, point.name)

    @hookimpl
    async def replicate(
        self, ioserver: IOServer, logger: str, source_id: str, since: int, limit: int
    ) -> list[tuple[int, float, str, Any, Quality]]:
        client = self.client
        if client is None:
            raise ConnectionError(f"{self.where} is not connected: data logger {logger!r} "
                                  "will catch up once it is")
        rows = await client.samples(source_id, since, limit)
        return [
            (int(seq), float(t), point, value, QUALITIES.get(quality, Quality.BAD))
            for seq, t, point, value, quality in rows
        ]
