"""The `vscp_link` I/O server: a link to a remote VSCP server, like vscpl2drv-tcpiplink.

Two connections, as the C driver has (notes §7), with the behaviour it means to have
rather than its bugs:

- *send*: login, VERS, CHID (this channel's id on the remote), then SEND for every event of
  this host's VSCP bus that passes the out filter, pipelined; NOOP when idle for `keepalive`
  seconds, so a dead send side is noticed too.
- *receive*: login, SFLT/SMSK with the in filter (again after every reconnect), RCVLOOP.
  Events whose obid is the send channel's id are our own coming back and are dropped; the
  rest go onto this host's bus. No byte for `dead_after` seconds (the remote sends ``+OK``
  every few seconds) means the link is dead.

Reconnecting, with backoff and jitter, is the kernel supervisor's job: `connect` raises when
either connection fails. `direction = "out"` opens only the send side, so nothing from the
remote ever enters this host (the one-way upward link); `"in"` only the receive side.

Points (instance ``vscp``): ``vscp.event`` reads as the last event line received and takes
an event line to send when written; each measurement received becomes
``vscp.<GUID>.<quantity>.<sensor index>`` (e.g. ``vscp.FF:…:00:01.temperature.0``), a number
in the unit sent, with the unit in the point's metadata.
"""

from __future__ import annotations

from typing import Any

import anyio
from ioplex import ConfigError, FatalError, IOServer, Point, Problem, Value, WriteError, hookimpl
from ioplex.queues import DropOldestQueue

from .bus import state_of
from .client import LinkClient, LinkError, LoginError
from .event import Event, make_timestamp, parse_line, utc_now
from .filter import Filter, parse_fields
from .guid import NULL_GUID, format_guid
from .measurement import MEASUREMENT_CLASSES, decode

INTERFACE_LEVEL2_DRIVER = 3


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
        self.measurements: bool = options["measurements"]
        self.max_points: int = options["max_points"]
        self.queue: DropOldestQueue[Event] = DropOldestQueue(options["send_queue"])
        self.event_point = ioserver.declare("event", None, writable=True, type=str)
        self._points: dict[str, tuple[Point, tuple[Any, ...]]] = {}
        self._tx: LinkClient | None = None
        self._tx_lock = anyio.Lock()
        self.tx_channel: int | None = None
        self.stats = dict.fromkeys(
            ("received", "sent", "suppressed", "refused", "malformed", "points_dropped"), 0
        )
        state = state_of(ioserver.host)
        self.channel = state.next_channel()
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
            await client.command("VERS")
        except LoginError as exc:
            await client.aclose()
            raise FatalError(
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
                    self.tx_channel = await tx.channel_id()
                if self.direction != "out":
                    rx = await self._open("receive")
                    await rx.command(f"SFLT {self.in_filter.filter.text()}")
                    await rx.command(f"SMSK {self.in_filter.mask.text()}")
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
                "vscp_link %s: linked to %s (direction %s, send channel %s)",
                ioserver.name,
                self.where,
                self.direction,
                self.tx_channel,
            )
            async with anyio.create_task_group() as tg:
                if tx is not None:
                    tg.start_soon(self._send_loop, tx)
                if rx is not None:
                    tg.start_soon(self._receive_loop, rx)
        finally:
            self._tx = None
            for client in (tx, rx):
                if client is not None:
                    await client.aclose()

    async def _send_loop(self, tx: LinkClient) -> None:
        queue = self.queue
        try:
            while True:
                with anyio.move_on_after(self.keepalive):
                    await queue.wait()
                async with self._tx_lock:
                    if not len(queue):
                        await tx.command("NOOP")
                        continue
                    batch = [queue.get_nowait() for _ in range(min(len(queue), self.window))]
                    refused = await tx.send_events(batch, obid=self.tx_channel)  # type: ignore[arg-type]
                self.stats["sent"] += len(batch) - len(refused)
                if refused:
                    self.stats["refused"] += len(refused)
                    self.io.log.warning(
                        "vscp_link %s: %s refused %d event(s): %s",
                        self.io.name,
                        self.where,
                        len(refused),
                        refused[0],
                    )
        except TimeoutError:
            raise LinkError(
                f"{self.where} did not answer on the send connection within "
                f"{self.response_timeout} s"
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise LinkError(f"the send connection to {self.where} broke: {exc!r}") from None

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
        if event.obid == self.tx_channel:  # our own event, back from the remote
            stats["suppressed"] += 1
            return
        stats["received"] += 1
        if event.datetime is None:
            event.datetime = utc_now()
        if not event.timestamp:
            event.timestamp = make_timestamp()
        io = self.io
        io.set(self.event_point, line, force=True)
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
        return ["event", *self._points]

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
        try:
            async with self._tx_lock:
                refused = await tx.send_events([event], obid=self.tx_channel)
        except (TimeoutError, LinkError, OSError, anyio.BrokenResourceError) as exc:
            raise WriteError(f"{point.name}: sending to {self.where} failed: {exc}") from None
        if refused:
            self.stats["refused"] += 1
            raise WriteError(f"{point.name}: {self.where} refused the event: {refused[0]}")
        self.stats["sent"] += 1


__all__ = ["Link"]
