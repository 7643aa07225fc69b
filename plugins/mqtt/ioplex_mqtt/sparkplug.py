"""The Sparkplug B profile (``profile = "sparkplug"``): an mqtt instance as a Sparkplug edge
node, a Sparkplug host application, or both (Eclipse Sparkplug 3.0, MQTT 3.1.1).

- **Edge node** (``publish``): ``spBv1.0/<group>/NBIRTH/<edge_node>`` at connect with every
  published point as a metric (name, alias, datatype, value, timestamp), the ``bdSeq`` and
  ``Node Control/Rebirth`` metrics; then ``NDATA`` by alias, ``seq`` 0..255 wrapping; the
  ``NDEATH`` with the same ``bdSeq`` is the MQTT last will (and is published on a clean stop).
  ``bdSeq`` counts connections across restarts (kept in the data directory), so a late will
  of an earlier process never kills the current one. ``NCMD`` ``Node Control/Rebirth`` makes
  a new ``NBIRTH``; other ``NCMD`` metrics are writes, applied as the default profile's set
  requests are (``accept_writes``, the kernel's checks). With ``primary_host``, nothing is
  published before that host application's ``STATE`` says it is online, and the node
  disconnects (publishing ``NDEATH``) when it goes offline, to be born again when it returns.
- **Host application** (``subscribe``): ``spBv1.0/<group>/#``; a node's ``NBIRTH`` defines the
  points ``<instance>.<edge node>.<metric>`` ("/" in metric names becomes "."); ``NDATA``
  updates them by alias; an ``NDEATH`` with the birth's ``bdSeq``, a ``seq`` out of order, an
  unknown alias or data from a node never seen born make its points bad (or leave them so) and
  ask it for a rebirth (``NCMD`` ``Node Control/Rebirth``, at most once per
  `REBIRTH_INTERVAL` per node). Writes to mirrored points are ``NCMD``. With ``host_id`` it
  publishes ``spBv1.0/STATE/<host_id>`` (retained; the will says offline).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import aiomqtt
import anyio
from ioplex import FatalError, IOServer, Point, PointError, Quality, State, WriteError, hookimpl
from ioplex.points import describe_value, printable
from ioplex.serving import jsontext

from .clientio import messages, publish_many
from .driver import SET_QUEUE, SET_WORKERS, Bridge
from .sparkplug_payload import (
    PYTHON_TYPE,
    DataType,
    SparkplugError,
    datatype_of,
    decode,
    encode,
    fits,
    value_as,
)
from .topics import check_id

NAMESPACE = "spBv1.0"
BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
REBIRTH_INTERVAL = 5.0
"""Seconds between two rebirth requests to the same edge node."""
REBIRTH_DELAY = 0.2
"""Seconds an edge node waits after seeing a new point before its new birth certificate, so
points declared together are born together."""
MIN_BIRTH_INTERVAL = 1.0
"""Seconds between two births of this node: a host application asking in a loop cannot make
it send nothing but births."""
NDATA_METRICS = 1000
"""Metrics per NDATA message at most."""
_BIRTH_MARK = ""
"""Put in the outbox to wake the publisher for a rebirth (no point has an empty name)."""


def metric_name(point: str) -> str | None:
    """The metric of a local point: its dots become "/" (folders in Ignition); None when a
    segment holds "/" (it would not come back as the same point)."""
    if "/" in point:
        return None
    return point.replace(".", "/")


def now_ms() -> int:
    return int(time.time() * 1000)


class _Node:
    """What a host application knows of one remote edge node."""

    __slots__ = ("asked", "bdseq", "by_alias", "by_name", "seq")

    def __init__(self) -> None:
        self.bdseq: int | None = None
        self.seq: int | None = None
        """The last seq received; None until the node is (re)born."""
        self.by_name: dict[str, tuple[Point, int, int | None]] = {}
        """(point, datatype, alias) by metric name, from the last birth."""
        self.by_alias: dict[int, tuple[Point, int, int | None]] = {}
        self.asked = -REBIRTH_INTERVAL


class SparkplugBridge(Bridge):
    """The driver of an mqtt instance with ``profile = "sparkplug"``."""

    def __init__(self, ioserver: IOServer) -> None:
        super().__init__(ioserver)
        options = ioserver.options
        where = self.where
        self.group: str = options["group"]
        self.edge_node: str = options["edge_node"] or self.local
        self.primary_host: str = options["primary_host"]
        self.host_id: str = options["host_id"]
        for key, text in (
            ("group", self.group),
            ("edge_node", self.edge_node),
            ("primary_host", self.primary_host),
            ("host_id", self.host_id),
        ):
            why = check_id(text) if text or key in ("group", "edge_node") else None
            if why:
                raise FatalError(f"{where}.options.{key}: {text!r} {why} (profile sparkplug)")
        self.is_edge = bool(self.publish_patterns)
        if self.host_id and self.is_edge:
            raise FatalError(
                f"{where}.options.host_id: an instance is a Sparkplug edge node (publish) or a "
                "host application (host_id), not both: their MQTT last wills differ"
            )
        self.persistent = False  # Sparkplug 3.0: clean sessions only
        self.bdseq_path = ioserver.host.data_dir / f"sparkplug-{ioserver.name}.bdseq"
        self.bdseq = self._load_bdseq()
        self.seq = 0
        self.births: dict[str, tuple[int, int]] = {}
        """(alias, datatype) of each point of the last birth, by point name."""
        self.metric_point: dict[str, str] = {}
        """Point name by metric name, from the last birth."""
        self.alias_point: dict[int, str] = {}
        self._birthed = False
        self._last_birth = -MIN_BIRTH_INTERVAL
        self._primary = anyio.Event()
        self._primary_ts = -1
        self.state_ts = 0
        self.nodes: dict[str, _Node] = {}
        self.stats.update(
            births=0,
            births_received=0,
            deaths_received=0,
            seq_gaps=0,
            rebirths_requested=0,
            rebirths_answered=0,
            unsupported_metrics=0,
            commands_applied=0,
            commands_refused=0,
        )

    # -- topics and the connection ----------------------------------------------------------------
    def topic(self, kind: str, node: str) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{node}"

    def state_topic(self, host: str) -> str:
        return f"{NAMESPACE}/STATE/{host}"

    def _load_bdseq(self) -> int:
        try:
            return int(self.bdseq_path.read_text().strip()) % 256
        except (OSError, ValueError):
            return 255  # the first connection says 0

    def _save_bdseq(self) -> None:
        tmp = self.bdseq_path.with_suffix(".tmp")
        try:
            tmp.write_text(f"{self.bdseq}\n")
            os.replace(tmp, self.bdseq_path)
        except OSError as exc:  # a full disk: the count still goes on in memory
            self.ratelog.warning(
                "bdseq", "%s: cannot keep bdSeq in %s: %s", self.where, self.bdseq_path, exc
            )

    def _death(self) -> bytes:
        return encode(now_ms(), None, [(BDSEQ, None, DataType.Int64, self.bdseq, None, None)])

    def _state(self, online: bool) -> bytes:
        return jsontext.dumps({"online": online, "timestamp": self.state_ts}).encode()

    def _will(self) -> aiomqtt.Will | None:
        """NDEATH with the next bdSeq (edge node), STATE offline (host application)."""
        if self.is_edge:
            self.bdseq = (self.bdseq + 1) % 256
            self._save_bdseq()
            return aiomqtt.Will(self.topic("NDEATH", self.edge_node), self._death(), qos=1)
        if self.host_id:
            self.state_ts = now_ms()
            return aiomqtt.Will(self.state_topic(self.host_id), self._state(False), 1, True)
        return None

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One connected session of the Sparkplug profile (see `Bridge._serve`)."""
        self._birthed = False
        self._primary = anyio.Event()
        self._primary_ts = -1
        if not self.primary_host:
            self._primary.set()
        filters = []
        if self.is_edge:
            filters.append((self.topic("NCMD", self.edge_node), 1))
        if self.primary_host:
            filters.append((self.state_topic(self.primary_host), 1))
        if self.host_id:
            filters.append((self.state_topic(self.host_id), 1))
        if self.mirrors.rules:
            filters.append((f"{NAMESPACE}/{self.group}/#", self.qos))
        if filters:
            await client.subscribe(filters)
        if self.host_id:
            await client.publish(
                self.state_topic(self.host_id), self._state(True), qos=1, retain=True
            )
        self.io.set_online(restore_quality=False)
        self.io.set_state(State.ONLINE, f"broker {self.broker}")
        self.io.log.info(
            "%s: connected to %s as %s (Sparkplug group %s%s)",
            self.where,
            self.broker,
            self.client_id,
            self.group,
            f", edge node {self.edge_node}, bdSeq {self.bdseq}" if self.is_edge else "",
        )
        for node in self.nodes:  # what was missed while away: every node is born again
            self.nodes[node].seq = None
            await self._ask_rebirth(client, node, "this host reconnected")
        listener = (
            self.host.points.listen(self._changed, *self.publish_patterns) if self.is_edge else None
        )
        try:
            self.outbox.clear()
            send, receive = anyio.create_memory_object_stream[tuple[str, Any]](SET_QUEUE)
            async with anyio.create_task_group() as tg, send, receive:
                if self.is_edge:
                    tg.start_soon(self._edge_publisher, client)
                for _ in range(SET_WORKERS if self.is_edge and self.accept.enabled else 0):
                    tg.start_soon(self._apply_commands, receive.clone())
                await self._receive_sp(client, send)
        finally:
            if listener is not None:
                listener.close()

    async def _farewell(self, client: aiomqtt.Client) -> None:
        """What the will would have said: NDEATH of the edge node, STATE offline of the host
        application."""
        if self.is_edge:
            await client.publish(self.topic("NDEATH", self.edge_node), self._death(), qos=1)
        elif self.host_id:
            await client.publish(
                self.state_topic(self.host_id), self._state(False), qos=1, retain=True
            )

    # -- the edge node: publishing ------------------------------------------------------------
    def _rebirth_soon(self) -> None:
        self._birthed = False
        self.outbox.add(_BIRTH_MARK)

    async def _edge_publisher(self, client: aiomqtt.Client) -> None:
        """NBIRTH once the primary host application (if any) is online, then NDATA of what
        the outbox holds; a point that was not born, a datatype that changed or a rebirth
        command lead to a new NBIRTH. One task: seq numbers leave in order."""
        points = self.host.points
        while True:
            if not self._birthed:
                await self._primary.wait()
                await anyio.sleep(
                    max(0.0, self._last_birth + MIN_BIRTH_INTERVAL - time.monotonic())
                )
                await self._birth(client)
            await self.outbox.wait()
            names = self.outbox.take(NDATA_METRICS)
            metrics = []
            new_point = False
            for name in names:
                point = points.get(name)
                born = self.births.get(name)
                if point is None or born is None:
                    if point is not None:  # a new point: born with the next NBIRTH
                        new_point = True
                        self._birthed = False
                    elif name == _BIRTH_MARK:
                        self._birthed = False
                    continue
                alias, datatype = born
                value = point.value
                if value is not None and datatype_of(point.type, value) != datatype:
                    self._birthed = False  # an untyped point changed type
                    continue
                quality = point.quality
                metrics.append(
                    (
                        None,
                        alias,
                        datatype,
                        value,
                        int(point.last_changed * 1000),
                        None if quality is Quality.GOOD else quality,
                    )
                )
            if not self._birthed:
                if new_point:
                    await anyio.sleep(REBIRTH_DELAY)
                continue  # the birth carries every current value
            if metrics:
                self.seq = (self.seq + 1) % 256
                payload = encode(now_ms(), self.seq, metrics)
                await publish_many(
                    client, [(self.topic("NDATA", self.edge_node), payload)], 0, False, self.timeout
                )
                self.stats["published"] += len(metrics)

    async def _birth(self, client: aiomqtt.Client) -> None:
        """Publish NBIRTH: every published point with its alias, datatype and value."""
        self.outbox.clear()  # the birth carries the current values
        births: dict[str, tuple[int, int]] = {}
        metric_point: dict[str, str] = {}
        metrics: list[Any] = [
            (BDSEQ, None, DataType.Int64, self.bdseq, None, None),
            (REBIRTH, None, DataType.Boolean, False, None, None),
        ]
        alias = 0
        for point in sorted(self.host.points.match(*self.publish_patterns), key=_by_name):
            if point.name.startswith(self.own_prefix):
                continue
            metric = metric_name(point.name)
            if metric is None:
                self.stats["unpublishable"] += 1
                self.ratelog.warning(
                    "unpublishable",
                    "%s: not publishing %s: a name segment holding '/' cannot be a "
                    "Sparkplug metric name ('/' separates its folders)",
                    self.where,
                    printable(point.name),
                )
                continue
            alias += 1
            datatype = datatype_of(point.type, point.value)
            births[point.name] = (alias, datatype)
            metric_point[metric] = point.name
            quality = point.quality
            metrics.append(
                (
                    metric,
                    alias,
                    datatype,
                    point.value,
                    int(point.last_changed * 1000),
                    None if quality is Quality.GOOD else quality,
                )
            )
        self.births, self.metric_point = births, metric_point
        self.alias_point = {a: name for name, (a, _) in births.items()}
        self.seq = 0
        payload = encode(now_ms(), 0, metrics)
        await publish_many(
            client, [(self.topic("NBIRTH", self.edge_node), payload)], 0, False, self.timeout
        )
        self._birthed = True
        self._last_birth = time.monotonic()
        self.stats["births"] += 1
        self.ratelog.info(
            "birth",
            "%s: published NBIRTH of edge node %s/%s: %d metrics, bdSeq %d",
            self.where,
            self.group,
            self.edge_node,
            len(births),
            self.bdseq,
        )

    # -- the edge node: commands --------------------------------------------------------------
    def _on_ncmd(self, requests: anyio.abc.ObjectSendStream[tuple[str, Any]], data: bytes) -> None:
        try:
            payload = decode(data, self.max_payload)
        except SparkplugError as exc:
            self._refused("ncmd", self.topic("NCMD", self.edge_node), exc)
            return
        for metric in payload.metrics:
            name = metric.name
            if name is None and metric.alias is not None:
                point_name = self.alias_point.get(metric.alias)
            else:
                point_name = self.metric_point.get(name) if name is not None else None
            if name == REBIRTH:
                if metric.value is True:
                    self.stats["rebirths_answered"] += 1
                    self._rebirth_soon()
                continue
            if point_name is None:
                self._command_refused(
                    f"{printable(name or f'alias {metric.alias}')}: not a metric of the last "
                    "NBIRTH of this edge node"
                )
                continue
            try:
                value, problem = value_as(metric, self.births[point_name][1])
            except SparkplugError as exc:
                value, problem = None, str(exc)
            if problem is not None:
                self._command_refused(f"{printable(point_name)}: {problem}")
                continue
            try:
                requests.send_nowait((point_name, value))
            except anyio.WouldBlock:
                self.stats["set_dropped"] += 1
                self.ratelog.warning(
                    "set-queue",
                    "%s: %d commands waiting; dropping the one for %s",
                    self.where,
                    SET_QUEUE,
                    printable(point_name),
                )

    def _command_refused(self, why: str) -> None:
        self.stats["commands_refused"] += 1
        self.ratelog.warning("ncmd-refused", "%s: NCMD refused: %s", self.where, why)

    async def _apply_commands(
        self, requests: anyio.abc.ObjectReceiveStream[tuple[str, Any]]
    ) -> None:
        async with requests:
            async for name, value in requests:
                error = await self._apply(name, value, "NCMD", time.time())
                if error is None:
                    self.stats["commands_applied"] += 1
                else:
                    self._command_refused(error)

    # -- receiving -------------------------------------------------------------------------------
    async def _receive_sp(
        self, client: aiomqtt.Client, requests: anyio.abc.ObjectSendStream[tuple[str, Any]]
    ) -> None:
        stats = self.stats
        group = self.group
        own = self.edge_node if self.is_edge else None
        async for batch in messages(client):
            stats["received"] += len(batch)
            try:
                for topic, payload, _retain in batch:
                    parts = topic.split("/")
                    if parts[0] != NAMESPACE:
                        continue
                    if parts[1] == "STATE" and len(parts) == 3:
                        self._store()
                        await self._on_host_state(client, parts[2], payload)
                        continue
                    if len(parts) != 4 or parts[1] != group:
                        continue  # device messages (DBIRTH, DDATA, ...) are not mirrored
                    kind, node = parts[2], parts[3]
                    if node == own:
                        if kind == "NCMD":
                            self._on_ncmd(requests, payload)
                        continue
                    if kind == "NDATA":
                        await self._on_ndata(client, node, payload)
                    elif kind == "NBIRTH":
                        self._on_nbirth(node, payload)
                    elif kind == "NDEATH":
                        self._on_ndeath(node, payload)
            finally:
                self._store()

    async def _on_host_state(self, client: aiomqtt.Client, host: str, data: bytes) -> None:
        try:
            state = jsontext.loads(data)
            online = state["online"]
            ts = state["timestamp"]
            if not isinstance(online, bool) or type(ts) is not int:
                raise ValueError("online must be a boolean and timestamp an integer")
        except KeyError as exc:
            self._refused("state", self.state_topic(host), ValueError(f"no {exc} field"))
            return
        except (ValueError, TypeError) as exc:
            self._refused("state", self.state_topic(host), ValueError(str(exc)))
            return
        if host == self.host_id:
            if not online:  # a stale will of an earlier session: we are here
                await client.publish(
                    self.state_topic(self.host_id), self._state(True), qos=1, retain=True
                )
            return
        if host != self.primary_host or ts < self._primary_ts:
            return  # someone else's, or older than what we know
        self._primary_ts = ts
        if online:
            if not self._primary.is_set():
                self.io.log.info(
                    "%s: primary host application %s is online", self.where, printable(host)
                )
                self._primary.set()
            return
        if self._primary.is_set():
            self.io.log.info(
                "%s: primary host application %s is offline: disconnecting (NDEATH)",
                self.where,
                printable(host),
            )
            await client.publish(self.topic("NDEATH", self.edge_node), self._death(), qos=1)
            raise ConnectionError(f"primary host application {host} went offline")

    def _queue(self, point: Point, value: Any, ts: float, quality: Quality) -> None:
        """Hold one received value for the next registry update (see `Bridge._store`)."""
        id = point.name
        if quality is not self._batch_quality or id in self._batch_ids:
            self._store()
            self._batch_quality = quality
        self._batch.append((point, value, ts))
        self._batch_ids.add(id)

    def _on_nbirth(self, node: str, data: bytes) -> None:
        try:
            payload = decode(data, self.max_payload)
        except SparkplugError as exc:
            self._refused("nbirth", self.topic("NBIRTH", node), exc)
            return
        if not self.mirrors.host(node):
            return
        self._store()
        state = self.nodes.setdefault(node, _Node())
        old = {entry[0].name for entry in state.by_name.values()}
        state.by_name, state.by_alias = {}, {}
        state.bdseq = None
        state.seq = payload.seq if payload.seq is not None else 0
        base = (payload.timestamp or now_ms()) / 1000
        for metric in payload.metrics:
            name = metric.name
            if name == BDSEQ:
                state.bdseq = metric.value if isinstance(metric.value, int) else None
                continue
            if name is None or name.startswith("Node Control/"):
                continue
            if metric.problem is not None:
                self.stats["unsupported_metrics"] += 1
                self.ratelog.warning(
                    "unsupported",
                    "%s: not mirroring %s/%s: %s",
                    self.where,
                    printable(node),
                    printable(name),
                    metric.problem,
                )
                continue
            point = self._mirror_point(node, name, metric.datatype)  # type: ignore[arg-type]
            if point is None:
                continue
            entry = (point, metric.datatype, metric.alias)
            state.by_name[name] = entry  # type: ignore[assignment]
            if metric.alias is not None:
                state.by_alias[metric.alias] = entry  # type: ignore[assignment]
            ts = metric.timestamp / 1000 if metric.timestamp is not None else base
            self._queue(point, metric.value, ts, metric.quality)
        self._store()
        kept = {entry[0].name for entry in state.by_name.values()}
        for gone in old - kept:  # metrics of the last birth that are no more
            self._forget(node, gone[len(self.own_prefix) :])
        self.stats["births_received"] += 1
        self.ratelog.info(
            f"born:{node}",
            "%s: edge node %s/%s born: %d metrics, bdSeq %s",
            self.where,
            self.group,
            printable(node),
            len(state.by_name),
            state.bdseq,
        )

    def _mirror_point(self, node: str, metric: str, datatype: int) -> Point | None:
        """The mirrored point of a metric, declared (or declared again with a new type)."""
        name = metric.replace("/", ".")
        if not self.mirrors.point(node, name):
            return None
        id = f"{node}.{name}"
        kind = PYTHON_TYPE[datatype]
        point = self.mirrored.get(id)
        if point is not None and point.type is kind:
            self.remote_of[point.name] = (node, metric)
            return point
        if point is not None:
            self._forget(node, id)
        elif len(self.mirrored) >= self.max_points:
            self.stats["refused_points"] += 1
            self.ratelog.warning(
                "max-points",
                "%s: not mirroring %s/%s: %d points are mirrored already (%s.options.max_points)",
                self.where,
                printable(node),
                printable(metric),
                self.max_points,
                self.where,
            )
            return None
        try:
            point = self.io.declare(
                id,
                None,
                writable=True,
                type=kind,
                meta={"origin": node, "hops": 1},
                quality=Quality.BAD,
                quiet=True,
                nonfinite=kind is float,
            )
        except PointError as exc:
            self.stats["refused_points"] += 1
            self.ratelog.warning(
                "declare",
                "%s: cannot mirror %s/%s: %s",
                self.where,
                printable(node),
                printable(metric),
                exc,
            )
            return None
        self.mirrored[id] = point
        self.remote_of[point.name] = (node, metric)
        self.by_host.setdefault(node, set()).add(id)
        self.stats["mirrored"] += 1
        return point

    def _node_bad(self, node: str) -> int:
        self._store()
        ids = self.by_host.get(node, ())
        self.host.points.set_quality([self.mirrored[i] for i in ids], Quality.BAD)
        return len(ids)

    async def _on_ndata(self, client: aiomqtt.Client, node: str, data: bytes) -> None:
        if not self.mirrors.host(node):
            return
        try:
            payload = decode(data, self.max_payload)
        except SparkplugError as exc:
            self._refused("ndata", self.topic("NDATA", node), exc)
            return
        state = self.nodes.get(node)
        if state is None or state.seq is None:
            await self._ask_rebirth(client, node, "data from a node not (re)born yet")
            return
        expected = (state.seq + 1) % 256
        if payload.seq != expected:
            self.stats["seq_gaps"] += 1
            state.seq = None
            count = self._node_bad(node)
            await self._ask_rebirth(
                client,
                node,
                f"seq {payload.seq} where {expected} was expected; its {count} points are bad",
            )
            return
        state.seq = expected
        base = (payload.timestamp or now_ms()) / 1000
        for metric in payload.metrics:
            entry = (
                state.by_alias.get(metric.alias)
                if metric.alias is not None
                else state.by_name.get(metric.name)  # type: ignore[arg-type]
            )
            if entry is None:
                state.seq = None
                self._node_bad(node)
                await self._ask_rebirth(
                    client,
                    node,
                    f"metric {printable(metric.name or f'alias {metric.alias}')} was not in "
                    "its birth certificate",
                )
                return
            point, datatype, _ = entry
            if metric.datatype is not None and metric.datatype != datatype:
                value, problem = None, f"datatype {metric.datatype}, born {datatype}"
            else:
                try:
                    value, problem = value_as(metric, datatype)
                except SparkplugError as exc:
                    value, problem = None, str(exc)
            if problem is not None:
                self._refused("ndata-metric", f"{node}/{point.name}", ValueError(problem))
                continue
            ts = metric.timestamp / 1000 if metric.timestamp is not None else base
            self._queue(point, value, ts, metric.quality)

    def _on_ndeath(self, node: str, data: bytes) -> None:
        state = self.nodes.get(node)
        if state is None:
            return
        try:
            payload = decode(data, self.max_payload)
        except SparkplugError as exc:
            self._refused("ndeath", self.topic("NDEATH", node), exc)
            return
        bdseq = next((m.value for m in payload.metrics if m.name == BDSEQ), None)
        if bdseq is not None and state.bdseq is not None and bdseq != state.bdseq:
            return  # the will of an earlier connection: the node was born again since
        state.seq = None
        count = self._node_bad(node)
        self.stats["deaths_received"] += 1
        self.ratelog.info(
            f"death:{node}",
            "%s: edge node %s/%s is dead (NDEATH, bdSeq %s); its %d points are bad",
            self.where,
            self.group,
            printable(node),
            bdseq,
            count,
        )

    async def _ask_rebirth(self, client: aiomqtt.Client, node: str, why: str) -> None:
        """NCMD ``Node Control/Rebirth`` to `node`, at most once per `REBIRTH_INTERVAL`."""
        state = self.nodes.setdefault(node, _Node())
        now = time.monotonic()
        if now - state.asked < REBIRTH_INTERVAL:
            return
        state.asked = now
        self.stats["rebirths_requested"] += 1
        self.ratelog.info(
            f"rebirth:{node}",
            "%s: asking edge node %s/%s for a rebirth: %s",
            self.where,
            self.group,
            printable(node),
            why,
        )
        payload = encode(now_ms(), None, [(REBIRTH, None, DataType.Boolean, True, None, None)])
        with contextlib.suppress(TimeoutError):
            await publish_many(
                client, [(self.topic("NCMD", node), payload)], 0, False, self.timeout
            )

    # -- writes to mirrored points ------------------------------------------------------------
    @hookimpl
    async def write(self, ioserver: IOServer, point: Point, value: Any, namespace: str) -> None:
        """An NCMD to the owning edge node; done once sent (Sparkplug has no answer: the new
        value comes back in its NDATA)."""
        remote = self.remote_of.get(point.name)
        if remote is None:
            raise WriteError(f"{point.name}: not a mirrored point of {self.where}")
        node, metric = remote
        client = self.client
        if client is None:
            raise WriteError(f"{point.name}: {self.where} is not connected to a broker")
        state = self.nodes.get(node)
        entry = state.by_name.get(metric) if state is not None else None
        if state is None or state.seq is None or entry is None:
            raise WriteError(
                f"{point.name}: edge node {node} is not online (no birth certificate since "
                "its last death or this host's last connection)"
            )
        _, datatype, alias = entry
        if not fits(datatype, value):
            raise WriteError(
                f"{point.name}: value {describe_value(value)} does not fit the metric's "
                f"datatype {DataType(datatype).name}"
            )
        payload = encode(now_ms(), None, [(metric, alias, datatype, value, None, None)])
        self.stats["writes"] += 1
        try:
            await publish_many(
                client, [(self.topic("NCMD", node), payload)], 0, False, self.timeout
            )
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise WriteError(
                f"{point.name}: could not send the NCMD to {self.broker}: {exc}"
            ) from None


def _by_name(point: Point) -> str:
    return point.name
