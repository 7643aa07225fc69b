"""The ``mqtt`` I/O server type: one broker connection that publishes, mirrors and writes.

How it stays right:

- **Publishing**: every local point matching ``publish`` is sent retained to
  ``<prefix>/<host>/<point>`` at each (re)connect, then on every change. The outbox holds each
  point once (latest value wins) while the broker is slow; a state the broker has not
  acknowledged when the link drops stays in the outbox and is sent again.
- **Liveness**: ``<prefix>/<host>/$state`` is ``online`` (retained) once connected and
  ``offline`` as the MQTT last will, and on a clean stop. If this host ever reads its own
  liveness as ``offline`` while connected (a stale will fired by an old session on another
  cluster node), it publishes ``online`` again.
- **Mirroring**: retained states give the full picture at every (re)connect; a host whose
  liveness is ``offline`` has its mirrored points ``bad`` until it publishes them again.
- **Writes**: a write to a mirrored point is a request on ``…/set``; the owner applies it
  through the kernel (``accept_writes`` decides, sensitive points only by name) and answers on
  ``…/set/result``; no answer within ``write_timeout`` is an error for the writer.
- **Failover**: ``address`` then each of ``servers`` in turn; a broker that refuses, times out
  or drops the link is left for the next one; a full round of failures goes to the
  supervisor's backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
from ioplex import (
    FatalError,
    IoplexError,
    IOServer,
    Point,
    PointError,
    PointTypeError,
    Quality,
    State,
    WriteError,
    hookimpl,
)
from ioplex.points import describe_value, printable
from ioplex.provenance import LoopGuard, provenance
from ioplex.serving import RateLimitedLog, RemoteWrites, parse_listen

from .clientio import abandon, guard_loop, install_lane, messages, publish_many
from .outbox import Outbox
from .payload import (
    PayloadError,
    decode_result,
    decode_set,
    decode_state,
    encode_result,
    encode_set,
    encode_state,
)
from .topics import (
    LIVE,
    OFFLINE,
    ONLINE,
    RESULT,
    SET,
    STATE,
    Mirrors,
    Topics,
    parse_rules,
    publishable,
)

SET_WORKERS = 4
"""Write requests applied at once (a write may wait on a slow device)."""
SET_QUEUE = 256
"""Write requests waiting for a worker; past this they are dropped and counted (the writer
gets its timeout)."""
MAX_PENDING_WRITES = 1024
"""Writes to mirrored points waiting for their answer at once, per instance."""
PUBLISHERS = 2
"""Batches of publications in flight at once (one is filled while the other is confirmed)."""
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
"""Small messages go out at once: with Nagle's algorithm and the broker's delayed ACKs a
window of QoS 1 publications can wait for a delayed ACK (up to 40 ms) per round trip."""
STOP_TIMEOUT = 2.0
"""Seconds spent publishing ``offline`` when the host stops."""


def tls_context(where: str, options: dict[str, Any], base_dir: Path) -> ssl.SSLContext | None:
    """The TLS context for the broker, or None without TLS; FatalError naming the option."""
    if not options["tls"]:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for key in ("cafile", "certfile"):
        if options[key] and key == "cafile":
            path = base_dir / os.path.expanduser(options[key])
            try:
                context.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError) as exc:
                raise FatalError(
                    f"{where}.options.cafile: cannot load {str(path)!r}: "
                    f"{getattr(exc, 'strerror', None) or exc}"
                ) from None
    if options["certfile"]:
        cert = base_dir / os.path.expanduser(options["certfile"])
        key = base_dir / os.path.expanduser(options["keyfile"]) if options["keyfile"] else None
        try:
            context.load_cert_chain(str(cert), str(key) if key else None)
        except (OSError, ssl.SSLError) as exc:
            raise FatalError(
                f"{where}.options.certfile: cannot load {str(cert)!r}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
    return context


def parse_server(entry: str) -> tuple[str, int]:
    """One entry of ``servers``; ValueError saying what is wrong (no path)."""
    address, port = parse_listen(entry)
    if port == 0:
        raise ValueError(f"{entry!r}: port 0 is not a broker's port")
    return address, port


def brokers(where: str, settings: dict[str, Any], servers: list[str]) -> list[tuple[str, int]]:
    """``address``/``port`` then each of ``options.servers``; ValueError naming the entry."""
    found = [(settings["address"], settings["port"])]
    for i, entry in enumerate(servers):
        try:
            found.append(parse_server(entry))
        except ValueError as exc:
            raise ValueError(f"{where}.options.servers[{i}]: {exc}") from None
    return found


def client_id(host: str, instance: str, configured: str) -> str:
    """The configured id, or ``ioplex-<host>-<instance>`` (a digest when over 23 chars, the
    length every MQTT 3.1.1 broker must accept)."""
    if configured:
        return configured
    name = f"ioplex-{host}-{instance}"
    if len(name) <= 23:
        return name
    return "ioplex-" + hashlib.sha256(f"{host}/{instance}".encode()).hexdigest()[:16]


LINK_ERRORS = (aiomqtt.MqttError, OSError, TimeoutError)


def link_error(exc: BaseException) -> BaseException | None:
    """The broker link's failure behind `exc` (the first one, when several tasks of the
    session failed at once), or None when `exc` is something else (a bug: not hidden)."""
    if isinstance(exc, LINK_ERRORS):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        found = [link_error(e) for e in exc.exceptions]
        if all(found):
            return found[0]
    return None


class _PendingWrite:
    __slots__ = ("done", "error", "host", "name")

    def __init__(self, host: str, name: str) -> None:
        self.host, self.name = host, name
        self.done = anyio.Event()
        self.error: str | None = None


class Bridge:
    """The driver of one ``[ioservers.<name>]`` table of type mqtt."""

    def __init__(self, ioserver: IOServer) -> None:
        self.io = ioserver
        self.host = ioserver.host
        self.local: str = ioserver.host.name
        self.where = where = f"ioservers.{ioserver.name}"
        settings, options = ioserver.settings, ioserver.options
        try:
            self.brokers = brokers(where, settings, options["servers"])
            rules = parse_rules(options["subscribe"], f"{where}.options.subscribe")
            self.accept = RemoteWrites(options["accept_writes"], f"{where}.options.accept_writes")
        except ValueError as exc:
            raise FatalError(str(exc)) from None
        self.tls = tls_context(where, options, ioserver.host.config.base_dir)
        self.user: str = settings["user"]
        self._password: str = settings["password"]
        self.client_id = client_id(self.local, ioserver.name, options["client_id"])
        self.topics = Topics(options["prefix"], cache=options["max_points"] + 1024)
        self.mirrors = Mirrors(rules, self.topics)
        self.publish_patterns: list[str] = list(options["publish"])
        self.qos: int = options["qos"]
        self.keepalive: int = options["keepalive"]
        self.persistent: bool = options["persistent"]
        self.timeout: float = options["timeout"]
        self.write_timeout: float = options["write_timeout"]
        self.max_set_age: float = options["max_set_age"]
        self.max_inflight: int = options["max_inflight"]
        self.max_incoming: int = options["max_incoming"]
        self.max_payload: int = options["max_payload"]
        self.max_points: int = options["max_points"]
        self.loops = LoopGuard(self.local, options["max_hops"], where, ioserver.log)
        self.outbox = Outbox(options["max_pending"])
        self.ratelog = RateLimitedLog(ioserver.log, 60.0)
        self.own_prefix = ioserver.name + "."
        self.mirrored: dict[str, Point] = {}
        """Mirrored points by id (``<host>.<point>``)."""
        self.remote_of: dict[str, tuple[str, str]] = {}
        """(host, point) of each mirrored point, by full local name."""
        self.by_host: dict[str, set[str]] = {}
        self.offline_hosts: set[str] = set()
        self.pending: dict[str, _PendingWrite] = {}
        self._batch: list[tuple[Point, Any, float]] = []
        """Received states not stored yet: (point, value, origin timestamp); see `_store`."""
        self._batch_ids: set[str] = set()
        self._batch_quality = Quality.GOOD
        self._local_topics: dict[str, str | None] = {}
        self.client: aiomqtt.Client | None = None
        self.broker: str | None = None
        """``host:port`` of the broker of the current (or last) session."""
        self._next = 0
        self.stats = {
            "sessions": 0,
            "failovers": 0,
            "published": 0,
            "received": 0,
            "mirrored": 0,
            "refused_payloads": 0,
            "refused_points": 0,
            "unpublishable": 0,
            "incoming_dropped": 0,
            "set_applied": 0,
            "set_refused": 0,
            "set_dropped": 0,
            "writes": 0,
            "write_timeouts": 0,
        }
        self._client_log = logging.getLogger(f"ioplex.ioserver.{ioserver.name}.mqttclient")
        self._client_log.setLevel(logging.ERROR)  # the queue-full line per message: counted instead

    # -- the connection ---------------------------------------------------------------------------
    @hookimpl
    async def connect(self, ioserver: IOServer) -> None:
        """Try the brokers in turn, starting from the last that worked; raise after a full
        round of failures (the supervisor waits, with backoff, before the next round)."""
        failures: list[str] = []
        for attempt in range(len(self.brokers)):
            index = (self._next + attempt) % len(self.brokers)
            address, port = self.brokers[index]
            try:
                await self._session(address, port)
                return
            except Exception as exc:
                link = link_error(exc)
                if link is None:
                    raise
                reason = printable(str(link) or type(link).__name__, 200)
                failures.append(f"{address}:{port}: {reason}")
                self.io.set_offline()
                self._next = (index + 1) % len(self.brokers)
                if len(self.brokers) > 1:
                    self.stats["failovers"] += 1
                    self.ratelog.warning(
                        f"fail:{index}",
                        "%s: broker %s:%d: %s; trying %s:%d",
                        self.where,
                        address,
                        port,
                        reason,
                        *self.brokers[self._next],
                    )
        raise ConnectionError("; ".join(failures))

    def _will(self) -> aiomqtt.Will | None:
        """The last will of a new connection: this host's liveness ``offline``."""
        return aiomqtt.Will(self.topics.liveness(self.local), OFFLINE, qos=1, retain=True)

    def _client(self, address: str, port: int) -> aiomqtt.Client:
        bridge = self

        class Incoming(asyncio.Queue):  # counts what the bounded queue refuses
            def put_nowait(self, item: Any) -> None:
                if self.full():
                    bridge.stats["incoming_dropped"] += 1
                super().put_nowait(item)

        return aiomqtt.Client(
            address,
            port,
            username=self.user or None,
            password=self._password or None,
            identifier=self.client_id,
            will=self._will(),
            clean_session=not self.persistent,
            keepalive=self.keepalive,
            timeout=self.timeout,
            tls_context=self.tls,
            max_inflight_messages=self.max_inflight,
            max_queued_incoming_messages=self.max_incoming,
            queue_type=Incoming,
            logger=self._client_log,
            socket_options=NO_DELAY,
        )

    async def _session(self, address: str, port: int) -> None:
        client = self._client(address, port)
        install_lane(client)
        guard_loop(client)
        client._client.connect_timeout = self.timeout  # the TCP connect, in a thread
        try:
            await client.__aenter__()  # CONNACK within `timeout` (the client's own)
        except BaseException:
            abandon(client)
            raise
        stopping = False
        try:
            self.client = client
            self.broker = f"{address}:{port}"
            self.stats["sessions"] += 1
            await self._serve(client)
        except anyio.get_cancelled_exc_class():
            stopping = True
            raise
        finally:
            self.client = None
            await self._close(client, stopping)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One connected session: subscribe, say online, publish and receive until the link
        fails (the profile's own part of `_session`)."""
        filters = list(self.mirrors.filters)
        live = self.topics.liveness(self.local)
        if self.topics.host_filter("+") not in filters:
            filters.append(live)
        if self.accept.enabled and self.topics.host_filter("+") not in filters:
            filters.append(self.topics.requests_filter(self.local))
        if filters:
            await client.subscribe([(f, self.qos) for f in filters])
        await client.publish(live, ONLINE, qos=1, retain=True)
        # mirrored points come back with their retained states: no stale restore here
        self.io.set_online(restore_quality=False)
        self.io.set_state(State.ONLINE, f"broker {self.broker}")
        self.io.log.info("%s: connected to %s as %s", self.where, self.broker, self.client_id)
        listener = (
            self.host.points.listen(self._changed, *self.publish_patterns)
            if self.publish_patterns
            else None
        )
        try:
            self.outbox.clear()
            for point in (
                self.host.points.match(*self.publish_patterns) if self.publish_patterns else ()
            ):
                if not point.name.startswith(self.own_prefix):
                    self.outbox.add(point.name)
            send, receive = anyio.create_memory_object_stream[tuple[str, str, bytes, bool]](
                SET_QUEUE
            )
            async with anyio.create_task_group() as tg, send, receive:
                for _ in range(PUBLISHERS):
                    tg.start_soon(self._publisher, client)
                for _ in range(SET_WORKERS if self.accept.enabled else 0):
                    tg.start_soon(self._apply_sets, client, receive.clone())
                await self._receive(client, send)
        finally:
            if listener is not None:
                listener.close()

    async def _close(self, client: aiomqtt.Client, stopping: bool) -> None:
        """When the host stops, say ``offline`` (a clean disconnect sends no will) and
        disconnect, briefly; after a failure the link is gone and the will speaks."""
        if not stopping:
            abandon(client)
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_TIMEOUT):
            try:
                if not client._disconnected.done():
                    await self._farewell(client)
                await client.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass
        abandon(client)

    async def _farewell(self, client: aiomqtt.Client) -> None:
        """What the will would have said, published on a clean stop."""
        await client.publish(
            self.topics.liveness(self.local), OFFLINE, qos=1, retain=True, timeout=STOP_TIMEOUT
        )

    # -- publishing ---------------------------------------------------------------------------
    def _changed(self, event: Any) -> None:
        name = event[0]
        if not name.startswith(self.own_prefix):
            self.outbox.add(name)

    def state_payload(self, point: Point) -> bytes:
        """The retained state of a local (or mirrored-from-elsewhere) point."""
        src, hops = provenance(point, self.local)
        return encode_state(
            point.value,
            point.quality,
            point.last_changed,
            src,
            hops,
            point.type,
            point.nonfinite,
            point.sensitive,
        )

    async def _publisher(self, client: aiomqtt.Client) -> None:
        """Send what the outbox holds, up to `max_inflight` states at a time; a batch leaves
        the outbox only once the broker acknowledged all of it."""
        points = self.host.points
        while True:
            await self.outbox.wait()
            names = self.outbox.take(max(1, self.max_inflight // PUBLISHERS))
            batch = []
            for name in names:
                point = points.get(name)
                if point is None:
                    continue
                topic = self._topic_of(name)
                if topic is None:
                    continue
                batch.append((topic, self.state_payload(point)))
            try:
                await publish_many(client, batch, self.qos, True, self.timeout)
            except BaseException:
                for name in names:  # not acknowledged: sent again after reconnecting
                    self.outbox.add(name)
                raise
            self.stats["published"] += len(batch)

    def _topic_of(self, name: str) -> str | None:
        """The state topic of a local point, or None (counted, logged) when its name cannot
        be one; remembered per point (a bound: the registry's points, cleared when full)."""
        topics = self._local_topics
        topic = topics.get(name, "")
        if topic != "":
            return topic
        if publishable(name):
            topic = self.topics.state(self.local, name)
        else:
            topic = None
            self.stats["unpublishable"] += 1
            self.ratelog.warning(
                "unpublishable",
                "%s: not publishing %s: a name "
                "segment holding '/', '+', '#' or starting with '$' "
                "cannot be an MQTT topic level",
                self.where,
                printable(name),
            )
        if len(topics) >= max(1024, 2 * len(self.host.points)):
            topics.clear()
        topics[name] = topic
        return topic

    # -- receiving ------------------------------------------------------------------------------
    async def _receive(
        self,
        client: aiomqtt.Client,
        requests: anyio.abc.ObjectSendStream[tuple[str, str, bytes, bool]],
    ) -> None:
        parse = self.topics.parse_cached
        stats = self.stats
        local = self.local
        async for batch in messages(client):
            stats["received"] += len(batch)
            try:
                for topic, payload, retain in batch:
                    parsed = parse(topic)
                    if parsed is None:
                        continue
                    kind, host, name = parsed
                    if kind is STATE:
                        if host != local:
                            self._on_state(host, name, payload)
                        continue
                    self._store()  # what came before this message, before it
                    if kind is LIVE:
                        await self._on_liveness(client, host, payload)
                    elif kind is SET:
                        self._on_set(requests, host, name, payload, retain, topic)
                    elif kind is RESULT:
                        self._on_result(host, name, payload)
            finally:
                self._store()

    def _on_set(
        self,
        requests: anyio.abc.ObjectSendStream[tuple[str, str, bytes, bool]],
        host: str,
        name: str,
        payload: bytes,
        retain: bool,
        topic: str,
    ) -> None:
        if host != self.local or not self.accept.enabled:
            return
        if retain:
            self.stats["set_refused"] += 1
            self.ratelog.warning(
                "retained-set",
                "%s: ignoring a retained write "
                "request on %s: it would be applied again at "
                "every reconnect",
                self.where,
                printable(topic),
            )
            return
        try:
            requests.send_nowait((host, name, payload, retain))
        except anyio.WouldBlock:
            self.stats["set_dropped"] += 1
            self.ratelog.warning(
                "set-queue",
                "%s: %d write requests waiting; dropping the one for %s",
                self.where,
                SET_QUEUE,
                printable(name),
            )

    def _refused(self, key: str, what: str, exc: Exception) -> None:
        self.stats["refused_payloads"] += 1
        self.ratelog.warning(
            key, "%s: ignoring %s: %s", self.where, printable(what, 120), printable(str(exc), 200)
        )

    def _on_state(self, host: str, name: str, payload: bytes) -> None:
        id = f"{host}.{name}"
        point = self.mirrored.get(id)
        if point is None and not self.mirrors.point(host, name):
            return
        if not payload:  # the retained state was cleared: the point is gone
            self._store()
            self._forget(host, id)
            return
        try:
            state = decode_state(payload, self.max_payload)
        except PayloadError as exc:
            self._refused("payload", self.topics.state(host, name), exc)
            return
        meta = self.loops.meta(f"{host}/{name}", state.src, state.hops, via=host)
        if meta is None:
            return
        if point is None or (
            (state.type is not None and point.type is not state.type)
            or point.nonfinite is not state.nonfinite
        ):
            if point is not None:
                self._store()
                self._forget(host, id)
            elif len(self.mirrored) >= self.max_points:
                self.stats["refused_points"] += 1
                self.ratelog.warning(
                    "max-points",
                    "%s: not mirroring %s/%s: %d points are "
                    "mirrored already (%s.options.max_points)",
                    self.where,
                    printable(host),
                    printable(name),
                    self.max_points,
                    self.where,
                )
                return
            try:
                point = self.io.declare(
                    id,
                    None,
                    writable=True,
                    type=state.type,
                    meta=meta,
                    quality=Quality.BAD,
                    quiet=True,
                    nonfinite=state.nonfinite,
                    sensitive=state.sensitive,
                )
            except PointError as exc:
                self.stats["refused_points"] += 1
                self.ratelog.warning(
                    "declare",
                    "%s: cannot mirror %s/%s: %s",
                    self.where,
                    printable(host),
                    printable(name),
                    exc,
                )
                return
            self.mirrored[id] = point
            self.remote_of[point.name] = (host, name)
            self.by_host.setdefault(host, set()).add(id)
            self.stats["mirrored"] += 1
        else:
            if point.meta != meta:
                point.meta = meta
            if point.sensitive is not state.sensitive:
                point.sensitive = state.sensitive
        quality = Quality.BAD if host in self.offline_hosts else state.quality
        if quality is not self._batch_quality or id in self._batch_ids:
            self._store()
            self._batch_quality = quality
        self._batch.append((point, state.value, state.ts))
        self._batch_ids.add(id)

    def _store(self) -> None:
        """Store the received states held in the batch: one registry update for a burst
        (they all have the batch's quality, and a point appears once at most)."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        self._batch_ids.clear()
        quality = self._batch_quality
        registry = self.host.points
        refused = registry.refused
        try:
            self.io.update_many([(p, v) for p, v, _ in batch], quality)
        except PointTypeError as exc:
            self.stats["refused_payloads"] += registry.refused - refused
            self.ratelog.warning(
                "value", "%s: ignoring a received value: %s", self.where, printable(str(exc), 300)
            )
        # the time of a change is the origin's: set where the registry stored a change
        for point, value, ts in batch:
            if point.last_updated == point.last_changed and point.value is value:
                point.last_changed = ts

    def _forget(self, host: str, id: str) -> None:
        point = self.mirrored.pop(id, None)
        if point is not None:
            self.io.undeclare(id)
            self.remote_of.pop(point.name, None)
            self.by_host.get(host, set()).discard(id)

    async def _on_liveness(self, client: aiomqtt.Client, host: str, payload: bytes) -> None:
        if host == self.local:
            if payload == OFFLINE:  # a stale will of an earlier session: we are here
                await client.publish(self.topics.liveness(self.local), ONLINE, qos=1, retain=True)
            return
        if not self.mirrors.host(host):
            return
        if payload == ONLINE:
            self.offline_hosts.discard(host)
        elif (payload == OFFLINE or not payload) and host not in self.offline_hosts:
            # (empty: the retained liveness was cleared)
            self.offline_hosts.add(host)
            ids = self.by_host.get(host, ())
            self.host.points.set_quality([self.mirrored[i] for i in ids], Quality.BAD)
            self.io.log.info(
                "%s: host %s is offline; its %d points are bad",
                self.where,
                printable(host),
                len(ids),
            )

    # -- writes: this host as the owner ---------------------------------------------------------
    async def _apply_sets(
        self,
        client: aiomqtt.Client,
        requests: anyio.abc.ObjectReceiveStream[tuple[str, str, bytes, bool]],
    ) -> None:
        async with requests:
            async for host, name, payload, _ in requests:
                try:
                    request = decode_set(payload, self.max_payload)
                except PayloadError as exc:
                    self._refused("set-payload", self.topics.set(host, name), exc)
                    continue
                error = await self._apply(name, request.value, request.sender, request.ts)
                self.stats["set_applied" if error is None else "set_refused"] += 1
                await client.publish(
                    self.topics.result(host, name), encode_result(request.id, error), qos=1
                )

    async def _apply(self, name: str, value: Any, sender: str, ts: float) -> str | None:
        """Apply one write request; the error text for the writer, or None."""
        age = time.time() - ts
        if age > self.max_set_age:
            return (
                f"{self.local}: request expired ({age:.0f} s old, more than "
                f"{self.where}.options.max_set_age = {self.max_set_age:g})"
            )
        if not self.accept.allows_point(self.host, name):
            point = self.host.points.get(name)
            why = (
                "a sensitive point is writable only through a pattern naming it"
                if point is not None and point.sensitive
                else "not matched"
            )
            return (
                f"{self.local}: {name} is not writable from the broker ({why} by "
                f"{self.where}.options.accept_writes)"
            )
        try:
            with anyio.fail_after(self.write_timeout):
                await self.host.write(name, value)
        except TimeoutError:
            return f"{self.local}: writing {name} took more than {self.write_timeout:g} s"
        except IoplexError as exc:
            return f"{self.local}: {exc}"
        except Exception as exc:  # a driver's bug must not stop the request loop
            self.io.log.exception(
                "%s: write of %s from %s failed", self.where, name, printable(sender)
            )
            return f"{self.local}: {name}: {type(exc).__name__}"
        return None

    # -- writes: this host as the writer --------------------------------------------------------
    def _on_result(self, host: str, name: str, payload: bytes) -> None:
        try:
            result = decode_result(payload, self.max_payload)
        except PayloadError as exc:
            self._refused("result", self.topics.result(host, name), exc)
            return
        waiter = self.pending.get(result.id)
        if waiter is None or waiter.host != host or waiter.name != name:
            return  # someone else's, or too late
        waiter.error = result.error
        waiter.done.set()

    @hookimpl
    async def write(self, ioserver: IOServer, point: Point, value: Any, namespace: str) -> None:
        """Ask the owning host to write; its refusal or silence is this write's error."""
        remote = self.remote_of.get(point.name)
        if remote is None:
            raise WriteError(f"{point.name}: not a mirrored point of {self.where}")
        client = self.client
        if client is None:
            raise WriteError(f"{point.name}: {self.where} is not connected to a broker")
        if len(self.pending) >= MAX_PENDING_WRITES:
            raise WriteError(
                f"{point.name}: {MAX_PENDING_WRITES} writes of {self.where} are "
                "already waiting for their answer"
            )
        host, name = remote
        id = secrets.token_hex(8)
        waiter = self.pending[id] = _PendingWrite(host, name)
        self.stats["writes"] += 1
        try:
            with anyio.move_on_after(self.write_timeout):
                await client.publish(
                    self.topics.set(host, name),
                    encode_set(value, id, self.local, time.time()),
                    qos=1,
                )
                await waiter.done.wait()
        except aiomqtt.MqttError as exc:
            raise WriteError(
                f"{point.name}: could not send the write to {self.broker}: {exc}"
            ) from None
        finally:
            del self.pending[id]
        if not waiter.done.is_set():
            self.stats["write_timeouts"] += 1
            raise WriteError(
                f"{point.name}: host {host} did not answer within "
                f"{self.write_timeout:g} s ({self.where}.options.write_timeout); "
                f"value {describe_value(value)}"
            )
        if waiter.error is not None:
            raise WriteError(f"{point.name}: refused by {waiter.error}")
