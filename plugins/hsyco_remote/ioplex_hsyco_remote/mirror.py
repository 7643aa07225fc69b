"""The replicating side: the ``hsyco_remote`` I/O server type, mirroring a remote host.

The remote point ``dummy.light.1`` becomes ``<name>.dummy.light.1`` here, with the remote's
type, writability and quality; with ``ui = true`` its UI variables are mirrored the same way.
Two protocols: API v1 (an ioplex remote, everything below) and HSYCO's public rioget (a real
HSYCO server: its I/O points, read-only, see `RiogetMirror`); ``protocol = "auto"`` asks for
API v1 and falls back to rioget when the remote has none.

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
- **Refusals heal**: a wrong password, an address not allowed or a refused certificate is
  retried slowly for as long as it lasts (`refusals`), never a permanent stop; a throttle
  (429) is waited out with the points keeping their quality, up to ``throttlehold``.
- **Loops**: points that originate on this host, or came through more than ``maxhops``
  replications, are not imported (`ioplex.provenance`).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import anyio
from ioplex import (
    FatalError,
    IOServer,
    Point,
    PointError,
    PointTypeError,
    Quality,
    ReplicatedRows,
    State,
    WriteError,
    hookimpl,
)
from ioplex.provenance import LoopGuard
from ioplex.serving import RateLimitedLog

from . import trust
from .certificates import normalize_fingerprint
from .client import RemoteClient
from .clock import DELTA_ID, ClockWatch
from .dataloggers import Feeds, record_aligned
from .refusals import NotIoplex, RefusalRetry, Refused, RemoteError, Throttled
from .riogetmirror import RiogetMirror
from .wire import QUALITIES, TYPES, row_provenance

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
        raise FatalError(
            f"{where}.options.cafile: cannot load {str(cafile)!r}: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    if pin is not None:
        hint = f"only the certificate with {where}.options.fingerprint is accepted"
    elif cafile is not None:
        hint = f"it must be signed by {where}.options.cafile ({cafile}) and name the address"
    else:
        hint = (
            f"set {where}.options.cafile to the remote's CA or certificate file, or "
            f"{where}.options.fingerprint to the SHA-256 fingerprint its log shows"
        )
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
        self.protocol: str = options["protocol"]
        self.spaces = tuple(ns for ns in ("io", "ui") if options[ns])
        self.discovery: bool = options["discovery"]
        self.startup_events: bool = options["startupevents"]
        self.mirrored: dict[str, dict[str, Point]] = {"io": {}, "ui": {}}
        """Mirrored points by remote name, per namespace."""
        self._skipped: dict[str, set[str]] = {"io": set(), "ui": set()}
        """Remote names that are not mirrored (a clash with this instance's own, a loop)."""
        self._not_good: dict[str, dict[str, Quality]] = {"io": {}, "ui": {}}
        """The remote quality of points whose remote quality is not good (to restore it
        after an outage without fetching every point again)."""
        self.epoch: str | None = None
        self.seq = 0
        self.aligned = False
        self.remote_host: str | None = None
        self.client: RemoteClient | None = None
        self.clock = ClockWatch(ioserver, options["clocksync"], options["drift"], self.where)
        self.feeds = Feeds(ioserver, options, self.where)
        self.loops = LoopGuard(ioserver.host.name, options["maxhops"], self.where, ioserver.log)
        self.refusals = RefusalRetry(options["retryrefused"])
        self.throttle_hold: float = options["throttlehold"]
        self.bad_values = RateLimitedLog(ioserver.log, 60.0)
        """Names and values this host refuses, logged once a minute at most (a remote can
        send thousands)."""
        self.rioget = RiogetMirror(self)
        self.speaking: str | None = None
        """The protocol of the current (or last) session: "api" or "rioget"."""
        self.stats = {
            "full": 0,
            "resumed": 0,
            "polls": 0,
            "changes": 0,
            "described": 0,
            "refused": 0,
            "throttled": 0,
        }
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
        """Run sessions; wait out refusals and throttles here, slowly and quietly, rather
        than failing for good (anything else goes to the supervisor's backoff)."""
        while True:
            try:
                await self._session()
                return
            except Refused as exc:
                self.stats["refused"] += 1
                delay, new = self.refusals.refused(str(exc))
                self._waiting(f"refused: {exc}", delay)
                if new:
                    ioserver.log.error(
                        "%s; retrying in %.0f s, then every %g s at most, until it is accepted",
                        exc,
                        delay,
                        self.refusals.cap,
                    )
            except Throttled as exc:
                self.stats["throttled"] += 1
                delay = max(exc.retry_after, MIN_POLL_INTERVAL)
                self._waiting(f"throttled: {exc}", delay)
                ioserver.log.warning("%s; waiting %.0f s", exc, delay)
            await anyio.sleep(delay)

    def _waiting(self, detail: str, delay: float) -> None:
        """Offline, with the reason and the next attempt in the instance state."""
        self.io.set_offline()
        self.io.set_state(State.RETRYING, f"{detail} (next attempt in {delay:.0f} s)")

    def _accepted(self) -> None:
        ended = self.refusals.accepted()
        if ended is not None:
            self.io.log.warning(
                "%s: accepted again by https://%s:%d (was: %s)",
                self.where,
                self.address,
                self.port,
                ended,
            )

    async def _session(self) -> None:
        if self.protocol != "rioget":
            async with RemoteClient(
                self.address,
                self.port,
                self._password,
                self.ssl_context,
                self.where,
                self.trust_hint,
            ) as client:
                try:
                    info = await client.info()
                except NotIoplex as exc:
                    if self.protocol == "api":
                        raise RemoteError(
                            f"{self.where}: {exc}: the remote is not an ioplex host; set "
                            f'{self.where}.options.protocol = "rioget" (or "auto") to '
                            "mirror an HSYCO server"
                        ) from None
                    self.rioget.fell_back(str(exc))
                else:
                    await self._api_session(client, info)
                    return
        await self.rioget.session()

    async def _api_session(self, client: RemoteClient, info: dict[str, Any]) -> None:
        ioserver = self.io
        self.speaking = "api"
        self._accepted()
        host = info.get("host")
        self.remote_host = host if isinstance(host, str) and host else self.address
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
            self.where,
            "resumed with" if resumed else "aligned with",
            client.url,
            len(self.mirrored["io"]),
            len(self.mirrored["ui"]),
        )
        try:
            if self.spaces:
                await self._follow(client)
            else:
                await self._heartbeat(client)
        finally:
            self.client = None
            self._discovered()  # a discovery waiting for this connection gets its answer

    async def _heartbeat(self, client: RemoteClient) -> None:
        """A mirror of data loggers only: no changes to follow; the clock answer every long
        poll period is the heartbeat (and keeps the clock delta fresh)."""
        while True:
            await anyio.sleep(LONG_POLL)
            answer = await self._throttled(client.clock)
            self.stats["polls"] += 1
            if isinstance(answer, dict) and isinstance(answer.get("time"), int | float):
                self.clock.observe(answer["time"])

    async def _throttled(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """`request(...)`, waiting out 429s (Retry-After) for up to `throttle_hold` seconds
        while the mirrored points keep their quality; past that, the link counts as lost."""
        held = 0.0
        while True:
            try:
                return await request(*args, **kwargs)
            except Throttled as exc:
                self.stats["throttled"] += 1
                if held + exc.retry_after > self.throttle_hold:
                    raise RemoteError(
                        f"{exc}; throttled for longer than "
                        f"{self.where}.options.throttlehold = "
                        f"{self.throttle_hold:g} s"
                    ) from None
                if held == 0.0:
                    self.io.log.warning("%s; mirrored points keep their quality meanwhile", exc)
                held += exc.retry_after
                await anyio.sleep(exc.retry_after)

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
                answer = await self._throttled(
                    client.changes, self.epoch, self.seq, min(wait, LONG_POLL), self.spaces
                )
            self._poll_scope = None
            if scope.cancelled_caught:
                continue
            self.stats["polls"] += 1
            if answer.get("resync"):
                self.io.log.info(
                    "%s: realigning with %s: %s", self.where, client.url, answer.get("reason")
                )
                await self._align(client, quiet=False)
                continue
            applied = await self._apply_answer(client, answer)
            self.clock.observe(answer["time"])
            if self.clock.sync_due():
                await self.clock.sync(client)
            if (
                self.discovery
                and self._resync_at is None
                and self._count_differs(answer.get("count") or {})
            ):
                self._resync_at = self._last_resync + max(
                    self.min_resync_interval, 4 * self._align_seconds
                )
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
            self._skipped[ns].clear()
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
        if quiet:
            record_aligned(self.io.host, self.mirrored["io"].values())
        self._discovered()

    def _declare(self, ns: str, row: list[Any], quiet: bool) -> None:
        """Mirror one state row ``[name, value, quality, type, writable(, origin, hops)]``."""
        name, value, quality_name, type_name, writable = row[:5]
        quality = QUALITIES[quality_name]
        type_ = TYPES[type_name]
        table = self.mirrored[ns]
        point = table.get(name)
        if point is not None and point.type is not type_:
            self._forget(ns, name)  # the remote point was redeclared with another type
            point = None
        ui = ns == "ui"
        via = self.remote_host or self.address
        meta = self.loops.meta(name, *row_provenance(row, via), via)
        if meta is None:  # a loop, or too many hops
            self._forget(ns, name)
            self._skipped[ns].add(name)
            return
        if point is None:
            if ns == "io" and name == DELTA_ID:
                self._skipped[ns].add(name)
                self.io.log.warning(
                    "%s: remote point %r clashes with %s.%s and is not mirrored",
                    self.where,
                    name,
                    self.io.name,
                    DELTA_ID,
                )
                return
            # A point of any type is declared empty first, or it would take its value's type.
            initial = value if type_ is not None else None
            how = {
                "writable": bool(writable),
                "type": type_,
                "ui": ui,
                "quiet": quiet,
                "meta": meta,
            }
            try:
                try:
                    point = self.io.declare(name, initial, quality=quality, **how)
                except PointTypeError:  # the value is refused, not the point: set() says so
                    if initial is None:
                        raise
                    point = self.io.declare(name, None, quality=Quality.BAD, **how)
            except PointError as exc:  # a name this host's contract refuses
                self._skipped[ns].add(name)
                self.bad_values.warning(
                    "name", "%s: remote point not mirrored: %s", self.where, exc
                )
                return
            table[name] = point
        else:
            point.writable = bool(writable)
            point.meta = {**(point.meta or {}), **meta}
        try:
            self.io.set(point, value, quality=quality, ui=ui, quiet=quiet)
        except PointTypeError as exc:  # a huge int, NaN, an overlong string: kept empty, bad
            self.io.set(point, None, quality=Quality.BAD, ui=ui, quiet=quiet)
            self.bad_values.warning(
                "value", "%s: remote value refused, the point is bad: %s", self.where, exc
            )
            quality = Quality.BAD
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
            raise RemoteError(
                f"{client.url}: the change log position went from {seq} to "
                f"{new}{' with more to come' if answer.get('more') else ''}"
            )
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
        if self.speaking == "rioget":
            raise WriteError(
                f"{point.name}: {self.where} mirrors https://{self.address}:"
                f"{self.port} through HSYCO's public rioget API, which is read-only: "
                'HSYCO\'s write API ("Sending I/O Commands") is not public'
            )
        client = self.client
        if client is None:
            raise WriteError(
                f"{point.name}: {self.where} is not connected to https://{self.address}:{self.port}"
            )
        remote = point.name[len(ioserver.name) + 1 :]
        await client.write(namespace, remote, value, point.name)

    @hookimpl
    async def replicate(
        self, ioserver: IOServer, logger: str, source_id: str, since: int, limit: int
    ) -> ReplicatedRows:
        """The remote logger's samples after `since`, with the identity of its database:
        the kernel replicates a replaced or restored one again from its beginning."""
        client = self.client
        if client is None:
            raise ConnectionError(
                f"{self.where} is not connected: data logger {logger!r} will catch up once it is"
            )
        rows, store = await self._throttled(client.samples, source_id, since, limit)
        return ReplicatedRows(rows, store=store)
