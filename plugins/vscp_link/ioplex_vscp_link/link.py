"""The `vscp_link` I/O server: a link to a remote VSCP server, like vscpl2drv-tcpiplink.

Two connections, as the C driver has (notes §7), with the behaviour it means to have
rather than its bugs:

- *send*: login, VERS, CHID (this channel's id on the remote), then SEND for every event of
  this host's VSCP bus that passes the out filter, with obid 0 (an obid is meaningful only
  on the server that assigned it). One SEND in flight at a time: vscpd handles one command
  per TCP read and leaves the rest of the buffer until more bytes arrive (notes §12), so a
  pipelining sender stalls it. Pipelining (`send_window` at once) only where the remote is
  known to take it: `pipelining = "auto"` when its banner says ioplex, or ``"on"``. Events
  taken from the queue stay in `pending` until answered, so a broken connection sends them
  again, first and in order, after the reconnect (at least once: the one in flight may
  arrive twice; a remote ioplex host's loop guard drops it). NOOP when idle for
  `keepalive` seconds, so a dead send side is noticed too.
- *receive*: login, SFLT/SMSK with the in filter (again after every reconnect; a refusal
  is a warning, and a class mask that does not fit Level I is narrowed and tried again),
  RCVLOOP. The in filter is always applied here too. Events whose obid is the send
  channel's id are our own coming back and are dropped (a CHID of 0 means the remote does
  not say: nothing is dropped for it); the rest enter this host's bus with this link's
  own local channel id as obid, through the host's loop guard (`bus.LoopGuard`). No byte
  for `dead_after` seconds (the remote sends ``+OK`` every few seconds) means the link is
  dead.

Reconnecting, with backoff and jitter, is the kernel supervisor's job: `connect` raises when
either connection fails. `direction = "out"` opens only the send side, so nothing from the
remote ever enters this host (the one-way upward link); `"in"` only the receive side.

Points (instance ``vscp``): ``vscp.event`` reads as the last event line received and takes
an event line to send when written; each measurement received becomes
``vscp.<GUID>.<quantity>.<sensor index>`` (e.g. ``vscp.FF:…:00:01.temperature.0``), a number
in the unit sent, with the unit in the point's metadata.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio
from ioplex import (
    ConfigError,
    IOServer,
    Point,
    Problem,
    Refused,
    Value,
    WriteError,
    hookimpl,
)
from ioplex.queues import DropOldestQueue
from ioplex.serving import RateLimitedLog

from .bus import state_of
from .client import CommandError, LinkClient, LinkError, LoginError, with_obid
from .event import Event, make_timestamp, parse_line, utc_now
from .filter import Fields, Filter, parse_fields
from .guid import NULL_GUID, format_guid
from .measurement import MEASUREMENT_CLASSES, decode

INTERFACE_LEVEL2_DRIVER = 3
STAT_POINTS = ("sent", "received", "lost", "refused", "suppressed", "repeats", "filtered")
"""Counters published as points ``<name>.stats.<counter>`` (once a second while linked)."""
STATS_INTERVAL = 1.0
MAX_PENDING = 1024
"""Most events taken from the queue into one round of sending."""


def narrowed(mask: Fields) -> Fields:
    """A mask cut to what a Level I node can hold (priority 3 bits, class 9, type 8): it
    lets more events through, never fewer, and the local in filter removes the rest."""
    return Fields(mask.priority & 0x07, mask.vscp_class & 0x1FF, mask.vscp_type & 0xFF, mask.guid)


class Link:
    """The driver of one `vscp_link` instance."""

    def __init__(self, ioserver: IOServer) -> None:
        self.io = ioserver
        where = f"ioservers.{ioserver.name}"
        settings, options = ioserver.settings, ioserver.options
        self.address: str = settings["address"]
        self.port: int = settings["port"]
        self.user: str = settings["user"]
        self._password: str = settings["password"]
        self.where = f"{self.address}:{self.port}"
        self.direction: str = options["direction"]
        self.in_filter = self.parse_filter(options, "in", where)
        self.out_filter = self.parse_filter(options, "out", where)
        self.response_timeout: float = options["response_timeout"]
        self.connect_timeout: float = options["connect_timeout"]
        self.keepalive: float = options["keepalive"]
        self.dead_after: float = options["dead_after"]
        self.window: int = options["send_window"]
        self.pipelining: str = options.get("pipelining", "auto")
        self.measurements: bool = options["measurements"]
        self.max_points: int = options["max_points"]
        self.queue: DropOldestQueue[Event] = DropOldestQueue(options["send_queue"])
        self.pending: deque[Event] = deque()
        """Events taken from the queue and not yet answered by the remote: sent first,
        in order, after a reconnect."""
        self.event_point = ioserver.declare("event", None, writable=True, type=str)
        self._stat_points = {
            name: ioserver.declare(f"stats.{name}", 0, type=int, follows_connection=False)
            for name in STAT_POINTS
        }
        self._points: dict[str, tuple[Point, tuple[Any, ...]]] = {}
        self._tx: LinkClient | None = None
        self._tx_lock = anyio.Lock()
        self.tx_channel: int | None = None
        self.send_window = 1
        """SENDs in flight at once on the current connection (1 unless pipelining)."""
        self.stats = dict.fromkeys(
            (
                "received",
                "sent",
                "suppressed",
                "refused",
                "malformed",
                "points_dropped",
                "filtered",
                "repeats",
            ),
            0,
        )
        self._warn = RateLimitedLog(ioserver.log, 600.0)
        state = state_of(ioserver.host)
        self.loops = state.loops
        self.channel = state.next_channel()
        """This link's channel id in this host: the obid of every event it brings in."""
        self.started = utc_now()
        state.links[ioserver.name] = self

    @staticmethod
    def parse_filter(options: dict[str, Any], side: str, where: str) -> Filter:
        """The `side` (in or out) filter and mask of an instance's options."""
        parts = []
        for key in (f"{side}_filter", f"{side}_mask"):
            try:
                parts.append(parse_fields(options[key]))
            except ValueError as exc:
                raise ConfigError([Problem(f"{where}.options.{key}", str(exc))]) from None
        return Filter(*parts)

    @property
    def dropped(self) -> int:
        """Events for the remote lost because the send queue was full."""
        return self.queue.dropped

    def publish_stats(self) -> None:
        """Copy the counters to the ``stats.*`` points."""
        stats = self.stats
        values = {**stats, "lost": self.queue.dropped}
        for name, point in self._stat_points.items():
            self.io.set(point, values[name])

    def interface(self) -> tuple[int, int, bytes, str, Any]:
        return (
            self.channel,
            INTERFACE_LEVEL2_DRIVER,
            NULL_GUID,
            f"ioplex link {self.io.name} to {self.where}",
            self.started,
        )

    # -- the connection ------------------------------------------------------------------------
    async def _open(self, role: str) -> LinkClient:
        client = await LinkClient.open(
            self.address,
            self.port,
            timeout=self.response_timeout,
            connect_timeout=self.connect_timeout,
        )
        try:
            if self.user:
                await client.login(self.user, self._password)
            try:
                await client.command("VERS")
            except CommandError as exc:  # a link node may not know it: nothing depends on it
                self.io.log.debug("vscp_link %s: VERS refused: %s", self.io.name, exc.reply)
        except LoginError as exc:
            await client.aclose()
            raise Refused(
                f"vscp_link {self.io.name}: {self.where} refused the login as {self.user!r} "
                f"(ioservers.{self.io.name}.user / .password): {exc.reply}"
            ) from None
        except BaseException:
            await client.aclose()
            raise
        self.io.log.debug("vscp_link %s: %s connection to %s open", self.io.name, role, self.where)
        return client

    @hookimpl
    async def connect(self, ioserver: IOServer) -> None:
        tx = rx = None
        try:
            try:
                if self.direction != "in":
                    tx = await self._open("send")
                    try:
                        self.tx_channel = await tx.channel_id()
                    except CommandError as exc:  # unknown: no echo suppression
                        self.tx_channel = 0
                        self.io.log.debug("vscp_link %s: CHID refused: %s", self.io.name, exc)
                    pipelined = self.pipelining == "on" or (
                        self.pipelining == "auto" and tx.is_ioplex
                    )
                    self.send_window = self.window if pipelined else 1
                if self.direction != "out":
                    rx = await self._open("receive")
                    await self._set_remote_filter(rx)
                    await rx.command("RCVLOOP")
            except TimeoutError:
                raise LinkError(
                    f"{self.where} did not answer within {self.response_timeout} s "
                    f"(ioservers.{ioserver.name}.options.response_timeout)"
                ) from None
            except OSError as exc:
                raise LinkError(f"cannot connect to {self.where}: {exc.strerror or exc}") from None
            self._tx = tx
            ioserver.set_online()
            ioserver.log.info(
                "vscp_link %s: linked to %s (direction %s, send channel %s, %d in flight)",
                ioserver.name,
                self.where,
                self.direction,
                self.tx_channel,
                self.send_window,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stats_loop)
                if tx is not None:
                    tg.start_soon(self._send_loop, tx)
                if rx is not None:
                    tg.start_soon(self._receive_loop, rx)
        finally:
            self._tx = None
            self.publish_stats()
            for client in (tx, rx):
                if client is not None:
                    await client.aclose()

    async def _set_remote_filter(self, rx: LinkClient) -> None:
        """SFLT/SMSK the in filter on the remote; refusals are warnings, never failures (the
        filter is applied here anyway), and a mask too wide for Level I is narrowed."""
        flt, mask = self.in_filter.filter, self.in_filter.mask
        try:
            await rx.command(f"SFLT {flt.text()}")
        except CommandError as exc:  # leave the remote's mask alone: it takes everything
            self._filter_refused("SFLT", exc.reply)
            return
        try:
            await rx.command(f"SMSK {mask.text()}")
            return
        except CommandError as exc:
            first = exc.reply
        smaller = narrowed(mask)
        if smaller != mask:
            try:
                await rx.command(f"SMSK {smaller.text()}")
            except CommandError as exc:
                first = f"{first}; narrowed to {smaller.text()}: {exc.reply}"
            else:
                self._warn.warning(
                    "narrowed",
                    "vscp_link %s: %s refused the in mask %s (%s); it took the Level I mask %s "
                    "and the rest is filtered here (ioservers.%s.options.in_mask)",
                    self.io.name,
                    self.where,
                    mask.text(),
                    first,
                    smaller.text(),
                    self.io.name,
                )
                return
        self._filter_refused("SMSK", first)

    def _filter_refused(self, command: str, reply: str) -> None:
        self._warn.warning(
            f"refused-{command}",
            "vscp_link %s: %s refused %s (%s); every event comes over the link and the in "
            "filter is applied here (ioservers.%s.options.in_filter / in_mask)",
            self.io.name,
            self.where,
            command,
            reply,
            self.io.name,
        )

    async def _stats_loop(self) -> None:
        while True:
            self.publish_stats()
            await anyio.sleep(STATS_INTERVAL)

    def _answered(self, index: int, refusal: str | None) -> None:
        """The remote answered the oldest pending SEND."""
        event = self.pending.popleft()
        if refusal is None:
            self.stats["sent"] += 1
            return
        self.stats["refused"] += 1
        self._warn.warning(
            "refused-send",
            "vscp_link %s: %s refused an event (%d so far): %s: %s",
            self.io.name,
            self.where,
            self.stats["refused"],
            refusal,
            event.line(),
        )

    async def _send_loop(self, tx: LinkClient) -> None:
        queue, pending = self.queue, self.pending
        try:
            while True:
                if not pending:
                    with anyio.move_on_after(self.keepalive):
                        await queue.wait()
                    if not len(queue):
                        async with self._tx_lock:
                            await tx.command("NOOP")
                        continue
                    take = min(len(queue), max(MAX_PENDING, self.send_window))
                    pending.extend([queue.get_nowait() for _ in range(take)])  # type: ignore[misc]
                lines = [with_obid(event, 0) for event in pending]
                async with self._tx_lock:
                    await tx.send_events(lines, self._answered, self.send_window)
        except TimeoutError:
            raise LinkError(
                f"{self.where} did not answer on the send connection within "
                f"{self.response_timeout} s ({len(pending)} event(s) kept to send again)"
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise LinkError(
                f"the send connection to {self.where} broke: {exc!r} ({len(pending)} event(s) "
                "kept to send again)"
            ) from None

    async def _receive_loop(self, rx: LinkClient) -> None:
        take = self._take
        while True:
            try:
                line = await rx.readline(self.dead_after)
            except TimeoutError:
                raise LinkError(
                    f"no byte from {self.where} for {self.dead_after} s in the receive "
                    "loop: the link is dead"
                ) from None
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise LinkError(f"the receive connection to {self.where} broke: {exc!r}") from None
            if not line or line[0] in "+-":  # "+OK" keep-alives (and anything not an event)
                continue
            take(line)

    def _take(self, line: str) -> None:
        stats = self.stats
        try:
            event = parse_line(line)
        except ValueError as exc:
            stats["malformed"] += 1
            if stats["malformed"] <= 10 or stats["malformed"] % 1000 == 0:
                self.io.log.warning(
                    "vscp_link %s: unreadable event line from %s (%d so far): %s",
                    self.io.name,
                    self.where,
                    stats["malformed"],
                    exc,
                )
            return
        obid = event.obid
        if obid and obid == self.tx_channel:  # our own event, back from the remote
            stats["suppressed"] += 1
            return
        flt = self.in_filter
        if not flt.accepts_all and not flt.accepts(event):  # the remote may not filter
            stats["filtered"] += 1
            return
        if event.datetime is None:
            event.datetime = utc_now()
        if not event.timestamp:
            event.timestamp = make_timestamp()
        event.obid = self.channel  # the remote's ids mean nothing here
        if not self.loops.admit(event, f"vscp_link {self.io.name} ({self.where})"):
            stats["repeats"] += 1
            return
        stats["received"] += 1
        io = self.io
        io.set(self.event_point, event.line(), force=True)  # canonical: bounded, whatever came
        io.publish(event)
        if self.measurements and event.vscp_class in MEASUREMENT_CLASSES:
            self._measure(event)

    def _measure(self, event: Event) -> None:
        try:
            measurement = decode(event)
        except ValueError as exc:
            self.stats["malformed"] += 1
            self.io.log.debug(
                "vscp_link %s: undecodable measurement %s: %s", self.io.name, event.line(), exc
            )
            return
        if measurement is None:
            return
        guid = format_guid(event.guid)
        id = f"{guid}.{measurement.quantity}.{measurement.sensor}"
        key = (measurement.unit, measurement.coding, measurement.zone, measurement.subzone)
        known = self._points.get(id)
        if known is not None and known[1] == key:
            self.io.set(known[0], measurement.value)
            return
        if known is None and len(self._points) >= self.max_points:
            self.stats["points_dropped"] += 1
            if self.stats["points_dropped"] == 1:
                self.io.log.warning(
                    "vscp_link %s: %d measurement points already (ioservers.%s.options."
                    "max_points); further ones are not created",
                    self.io.name,
                    self.max_points,
                    self.io.name,
                )
            return
        symbol = measurement.symbol
        meta: dict[str, Any] = {
            "unit": symbol if symbol is not None else f"unit {measurement.unit}",
            "unit_code": measurement.unit,
            "quantity": measurement.quantity,
            "sensor": measurement.sensor,
            "guid": guid,
            "class": event.vscp_class,
            "type": event.vscp_type,
            "coding": measurement.coding,
        }
        if measurement.zone is not None:
            meta["zone"], meta["subzone"] = measurement.zone, measurement.subzone
        point = self.io.declare(id, measurement.value, type=float, meta=meta)
        self._points[id] = (point, key)
        self.io.set(point, measurement.value)

    # -- the host's side -----------------------------------------------------------------------
    @hookimpl
    def on_event(self, host: Any, source: str, event: Any) -> None:
        """Forward the host's VSCP events to the remote (not those that came from it)."""
        if (
            event.__class__ is Event
            and source != self.io.name
            and self.direction != "in"
            and (self.out_filter.accepts_all or self.out_filter.accepts(event))
        ):
            self.queue.put(event)

    @hookimpl
    def discover(self, ioserver: IOServer) -> list[str]:
        return ["event", *(f"stats.{name}" for name in STAT_POINTS), *self._points]

    @hookimpl
    async def write(self, ioserver: IOServer, point: Point, value: Value, namespace: str) -> None:
        if point is not self.event_point:
            raise WriteError(f"{point.name} is read-only")
        if self.direction == "in":
            raise WriteError(
                f"{point.name}: the link sends nothing (ioservers.{ioserver.name}."
                "options.direction is 'in')"
            )
        try:
            event = parse_line(str(value))
        except ValueError as exc:
            raise WriteError(f"{point.name}: {exc}") from None
        tx = self._tx
        if tx is None:
            raise WriteError(f"{point.name}: the link to {self.where} is down")
        replies: list[str | None] = []
        try:
            async with self._tx_lock:
                await tx.send_events([event.line()], lambda i, refusal: replies.append(refusal))
        except (TimeoutError, LinkError, OSError, anyio.BrokenResourceError) as exc:
            raise WriteError(f"{point.name}: sending to {self.where} failed: {exc}") from None
        self.loops.note(event)
        if replies[0] is not None:
            self.stats["refused"] += 1
            raise WriteError(f"{point.name}: {self.where} refused the event: {replies[0]}")
        self.stats["sent"] += 1


__all__ = ["Link"]
