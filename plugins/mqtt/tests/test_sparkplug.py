"""The Sparkplug B profile through a real Mosquitto: an edge host, a concentrator host (the
host application) and a bare MQTT client standing for third-party Sparkplug peers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import ioplex
import pytest
from ioplex_mqtt.sparkplug_payload import DataType, decode, encode
from ioplex_mqtt.testing import Mosquitto, host_config, host_process, running, until, value

pytestmark = pytest.mark.anyio

GROUP = "plant"


def edge_config(tmp_path: Path, port: int, **options: Any) -> dict:
    return host_config(
        tmp_path,
        "edge-1",
        port,
        {"light.1": 0, "temp": 21.5, "name": "hall", "on": True, "secret": 1},
        profile="sparkplug",
        group=GROUP,
        publish=["dummy.*"],
        accept_writes=["dummy.light.*", "dummy.temp"],
        **options,
    )


def central_config(tmp_path: Path, port: int, **options: Any) -> dict:
    return host_config(
        tmp_path, "central", port, None, profile="sparkplug", group=GROUP,
        subscribe=["*/*"], **options,
    )  # fmt: skip


class Peer:
    """A bare MQTT client: sees what the hosts publish, publishes as a third party would."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[tuple[str, bytes]] = []

    def of(self, kind: str, node: str) -> list[Any]:
        topic = f"spBv1.0/{GROUP}/{kind}/{node}"
        return [decode(p, 1 << 20) for t, p in self.seen if t == topic]

    async def send(self, kind: str, node: str, seq: int | None, metrics: list) -> None:
        await self.client.publish(
            f"spBv1.0/{GROUP}/{kind}/{node}", encode(1_767_225_600_000, seq, metrics), qos=0
        )


@asynccontextmanager
async def peer(port: int, *filters: str) -> AsyncIterator[Peer]:
    async with aiomqtt.Client("127.0.0.1", port, identifier="peer") as client:
        result = Peer(client)
        for f in filters or ("spBv1.0/#",):
            await client.subscribe(f, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                result.seen.append((message.topic.value, bytes(message.payload)))  # type: ignore[arg-type]

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            yield result
            tg.cancel_scope.cancel()


async def test_birth_data_writes_and_rebirth(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with (
        peer(mosquitto.port) as spy,
        running(central_config(tmp_path, mosquitto.port)) as central,
        running(edge_config(tmp_path, mosquitto.port)) as edge,
    ):
        # NBIRTH: every published point, typed, with bdSeq and Node Control/Rebirth
        await until(lambda: value(central, "mqtt.edge-1.dummy.temp") == (21.5, "good"))
        births = spy.of("NBIRTH", "edge-1")
        assert len(births) == 1 and births[0].seq == 0
        by_name = {m.name: m for m in births[0].metrics}
        assert by_name["bdSeq"].datatype == DataType.Int64
        assert by_name["Node Control/Rebirth"].value is False
        assert by_name["dummy/temp"].datatype == DataType.Double
        assert by_name["dummy/light/1"].datatype == DataType.Int64
        assert by_name["dummy/on"].datatype == DataType.Boolean
        assert by_name["dummy/name"].datatype == DataType.String
        assert all(m.alias is not None for n, m in by_name.items() if n.startswith("dummy/"))
        assert central.points["mqtt.edge-1.dummy.temp"].type is float
        assert central.points["mqtt.edge-1.dummy.light.1"].type is int
        assert value(central, "mqtt.edge-1.dummy.on") == (True, "good")
        assert value(central, "mqtt.edge-1.dummy.name") == ("hall", "good")

        # NDATA by alias, seq counting on from the birth's
        await edge.write("dummy.light.1", -7)
        await until(lambda: value(central, "mqtt.edge-1.dummy.light.1") == (-7, "good"))
        data = spy.of("NDATA", "edge-1")
        assert data[0].seq == 1 and data[0].metrics[0].name is None
        assert data[0].metrics[0].alias == by_name["dummy/light/1"].alias

        # writes on the concentrator are NCMD, applied by the edge through accept_writes
        await central.write("mqtt.edge-1.dummy.light.1", 3)
        await until(lambda: edge.points["dummy.light.1"].value == 3)
        await until(lambda: value(central, "mqtt.edge-1.dummy.light.1") == (3, "good"))
        await central.write("mqtt.edge-1.dummy.secret", 2)  # sent, and refused by the edge
        driver = edge.ioservers["mqtt"].driver
        await until(lambda: driver.stats["commands_refused"] == 1)
        assert edge.points["dummy.secret"].value == 1
        with pytest.raises(ioplex.PointTypeError):
            await central.write("mqtt.edge-1.dummy.temp", "warm")

        # Node Control/Rebirth from a third-party host application: a new NBIRTH
        await spy.send(
            "NCMD", "edge-1", None, [("Node Control/Rebirth", None, 11, True, None, None)]
        )
        await until(lambda: len(spy.of("NBIRTH", "edge-1")) == 2)
        assert spy.of("NBIRTH", "edge-1")[1].seq == 0
        assert driver.stats["rebirths_answered"] == 1
        # a new point is born with a new NBIRTH, and mirrored
        edge.ioservers["dummy"].declare("extra", 5, writable=True)
        await until(lambda: value(central, "mqtt.edge-1.dummy.extra") == (5, "good"))


async def test_edge_killed_and_restarted(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """kill -9: the broker publishes the NDEATH will (same bdSeq as the birth): the points go
    bad; the restarted edge is born again with the next bdSeq and realigns them."""
    edge_cfg = edge_config(tmp_path, mosquitto.port)
    async with peer(mosquitto.port) as spy, running(central_config(tmp_path, mosquitto.port)) as c:
        edge = host_process(edge_cfg, tmp_path / "edge.log")
        try:
            await until(lambda: value(c, "mqtt.edge-1.dummy.temp") == (21.5, "good"), timeout=20)
        finally:
            edge.kill()
            edge.wait()
        await until(
            lambda: value(c, "mqtt.edge-1.dummy.temp") == (21.5, "bad"),
            timeout=15,
            what="the edge's points bad through its NDEATH will",
        )
        (death,) = spy.of("NDEATH", "edge-1")
        (birth,) = spy.of("NBIRTH", "edge-1")
        bdseq = next(m.value for m in birth.metrics if m.name == "bdSeq")
        assert [m.value for m in death.metrics if m.name == "bdSeq"] == [bdseq]
        with pytest.raises(ioplex.WriteError, match="not online"):
            await c.write("mqtt.edge-1.dummy.temp", 1.0)
        edge_cfg["ioservers"]["dummy"]["options"]["points"]["temp"] = 19.0
        async with running(edge_cfg):
            await until(lambda: value(c, "mqtt.edge-1.dummy.temp") == (19.0, "good"))
            assert value(c, "mqtt.edge-1.dummy.light.1") == (0, "good")
            births = spy.of("NBIRTH", "edge-1")
            assert (
                next(m.value for m in births[-1].metrics if m.name == "bdSeq") == (bdseq + 1) % 256
            )
        # a clean stop publishes NDEATH itself
        await until(lambda: value(c, "mqtt.edge-1.dummy.temp") == (19.0, "bad"))


async def test_late_concentrator_asks_for_rebirth(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with (
        running(edge_config(tmp_path, mosquitto.port)) as edge,
        running(central_config(tmp_path, mosquitto.port)) as central,
    ):
        assert "mqtt.edge-1.dummy.temp" not in central.points  # born before it came
        await edge.write("dummy.temp", 22.0)  # NDATA from a node it never saw born
        await until(lambda: value(central, "mqtt.edge-1.dummy.temp") == (22.0, "good"))
        assert value(central, "mqtt.edge-1.dummy.name") == ("hall", "good")
        assert central.ioservers["mqtt"].driver.stats["rebirths_requested"] >= 1
        assert edge.ioservers["mqtt"].driver.stats["births"] == 2


async def test_seq_gap_and_death_of_a_third_party_node(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A third-party edge node: Int8/UInt32/Float/Text metrics, NDATA by alias, a missed seq
    (points bad, rebirth asked), an NDEATH with an older bdSeq (ignored), then the real one."""
    async with (
        running(central_config(tmp_path, mosquitto.port)) as central,
        peer(mosquitto.port, f"spBv1.0/{GROUP}/NCMD/#") as node,
    ):
        birth = [
            ("bdSeq", None, DataType.Int64, 7, None, None),
            ("Node Control/Rebirth", None, DataType.Boolean, False, None, None),
            ("Motor/Speed", 1, DataType.Float, 1.5, None, None),
            ("Motor/Dir", 2, DataType.Int8, -3, None, None),
            ("Count", 3, DataType.UInt32, 4_000_000_000, None, None),
            ("Label", 4, DataType.Text, "α", None, None),
            ("Blob", 5, DataType.Bytes, None, None, None),
        ]
        await node.send("NBIRTH", "plc-9", 0, birth)
        await until(lambda: value(central, "mqtt.plc-9.Motor.Speed") == (1.5, "good"))
        assert value(central, "mqtt.plc-9.Motor.Dir") == (-3, "good")
        assert value(central, "mqtt.plc-9.Count") == (4_000_000_000, "good")
        assert value(central, "mqtt.plc-9.Label") == ("α", "good")
        assert "mqtt.plc-9.Blob" not in central.points  # unsupported datatype: counted
        driver = central.ioservers["mqtt"].driver
        assert driver.stats["unsupported_metrics"] == 1
        await node.send("NDATA", "plc-9", 1, [(None, 2, DataType.Int8, -4, None, None)])
        await until(lambda: value(central, "mqtt.plc-9.Motor.Dir") == (-4, "good"))
        await node.send("NDATA", "plc-9", 3, [(None, 2, DataType.Int8, 9, None, None)])  # 2 lost
        await until(lambda: value(central, "mqtt.plc-9.Motor.Dir") == (-4, "bad"))
        await until(lambda: node.of("NCMD", "plc-9"), what="a rebirth request")
        (request,) = node.of("NCMD", "plc-9")
        assert [(m.name, m.value) for m in request.metrics] == [("Node Control/Rebirth", True)]
        assert driver.stats["seq_gaps"] == 1
        await node.send("NBIRTH", "plc-9", 0, birth)
        await until(lambda: value(central, "mqtt.plc-9.Motor.Dir") == (-3, "good"))
        # a write is an NCMD naming the metric, with its alias and datatype; one that does
        # not fit the datatype is refused here
        await central.write("mqtt.plc-9.Motor.Dir", 5)
        await until(lambda: len(node.of("NCMD", "plc-9")) == 2)
        command = node.of("NCMD", "plc-9")[1].metrics[0]
        assert (command.name, command.alias, command.datatype, command.value) == (
            "Motor/Dir", 2, DataType.Int8, 5,
        )  # fmt: skip
        with pytest.raises(ioplex.WriteError, match="does not fit"):
            await central.write("mqtt.plc-9.Motor.Dir", 300)
        # NDEATH of an older connection: ignored; with the birth's bdSeq: the node is dead
        await node.send("NDEATH", "plc-9", None, [("bdSeq", None, DataType.Int64, 6, None, None)])
        await node.send("NDATA", "plc-9", 1, [(None, 1, DataType.Float, 2.5, None, None)])
        await until(lambda: value(central, "mqtt.plc-9.Motor.Speed") == (2.5, "good"))
        await node.send("NDEATH", "plc-9", None, [("bdSeq", None, DataType.Int64, 7, None, None)])
        await until(lambda: value(central, "mqtt.plc-9.Motor.Speed") == (2.5, "bad"))
        assert driver.stats["deaths_received"] == 1


async def test_primary_host_state(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """An edge naming a primary host application publishes nothing before its STATE is
    online; it dies when the host goes offline and is born again when it comes back."""
    edge_cfg = edge_config(tmp_path, mosquitto.port, primary_host="scada")
    central_cfg = central_config(tmp_path, mosquitto.port, host_id="scada")
    async with peer(mosquitto.port) as spy, running(edge_cfg) as edge:
        await anyio.sleep(0.5)
        assert spy.of("NBIRTH", "edge-1") == []
        async with running(central_cfg) as central:
            await until(lambda: value(central, "mqtt.edge-1.dummy.temp") == (21.5, "good"))
            states = [json.loads(p) for t, p in spy.seen if t == "spBv1.0/STATE/scada"]
            assert states[0]["online"] is True and isinstance(states[0]["timestamp"], int)
        # the host application stopped (STATE offline): the edge sent NDEATH and went away
        await until(lambda: spy.of("NDEATH", "edge-1"), what="NDEATH after STATE offline")
        async with running(central_cfg) as central:
            await edge.wait_online("mqtt", timeout=15)
            await until(lambda: value(central, "mqtt.edge-1.dummy.temp") == (21.5, "good"))
        assert len(spy.of("NBIRTH", "edge-1")) >= 2


async def test_hostile_messages_are_counted_and_survived(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Garbage on every Sparkplug topic, names the kernel refuses, an out-of-range UInt64:
    refused and counted; both hosts go on working."""
    async with (
        running(central_config(tmp_path, mosquitto.port, host_id="central")) as central,
        running(edge_config(tmp_path, mosquitto.port)) as edge,
        peer(mosquitto.port, "nothing") as bad,
    ):
        await until(lambda: value(central, "mqtt.edge-1.dummy.temp") == (21.5, "good"))
        c, e = central.ioservers["mqtt"].driver, edge.ioservers["mqtt"].driver
        for kind in ("NBIRTH", "NDATA", "NDEATH"):
            await bad.client.publish(f"spBv1.0/{GROUP}/{kind}/x", b"\xff\x01garbage", qos=1)
        await bad.client.publish(f"spBv1.0/{GROUP}/NCMD/edge-1", b"\x12\x05\x0a", qos=1)
        await bad.client.publish("spBv1.0/STATE/central", b'{"online": 1}', qos=1)
        await bad.send(
            "NBIRTH",
            "odd",
            0,
            [
                ("bdSeq", None, DataType.Int64, 0, None, None),
                ("a\u200bb", 1, DataType.Int64, 1, None, None),  # refused name
                ("", 2, DataType.Int64, 1, None, None),
                ("big", 3, DataType.UInt64, 2**64 - 1, None, None),  # over int64
                ("ok", 4, DataType.Int64, 5, None, None),
            ],
        )
        await until(lambda: value(central, "mqtt.odd.ok") == (5, "good"))
        # NBIRTH, NDATA, STATE and the UInt64 value (an NDEATH of a node never born is
        # not even read)
        await until(lambda: c.stats["refused_payloads"] >= 4, what=str(c.stats))
        await until(lambda: e.stats["refused_payloads"] >= 1, what=str(e.stats))
        assert c.stats["refused_points"] >= 2
        assert central.points["mqtt.odd.big"].value is None  # declared, its value refused
        await edge.write("dummy.temp", 23.0)
        await until(lambda: value(central, "mqtt.edge-1.dummy.temp") == (23.0, "good"))
