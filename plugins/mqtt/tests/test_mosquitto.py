"""Two hosts through a real Mosquitto: mirror, write-through, last will, restarts."""

from __future__ import annotations

from pathlib import Path

import anyio
import ioplex
import pytest
from ioplex_mqtt.testing import Mosquitto, host_config, host_process, running, until, value

pytestmark = pytest.mark.anyio


def pair(tmp_path: Path, port: int) -> tuple[dict, dict]:
    a = host_config(
        tmp_path,
        "site-a",
        port,
        {"light.1": 0, "temp": 21.5, "name": "hall", "secret": 1},
        publish=["dummy.*"],
        accept_writes=["dummy.light.*", "dummy.temp"],
    )
    b = host_config(tmp_path, "site-b", port, {"x": 1}, subscribe=["site-a/*"], write_timeout=2)
    return a, b


async def test_mirror_and_write_through(tmp_path: Path, mosquitto: Mosquitto) -> None:
    a_cfg, b_cfg = pair(tmp_path, mosquitto.port)
    async with running(a_cfg) as a, running(b_cfg) as b:
        await until(lambda: value(b, "mqtt.site-a.dummy.temp") == (21.5, "good"))
        point = b.points["mqtt.site-a.dummy.temp"]
        assert point.meta == {"origin": "site-a", "hops": 1}
        assert point.type is float
        assert value(b, "mqtt.site-a.dummy.name") == ("hall", "good")
        # a change on A reaches B
        await a.write("dummy.light.1", 7)
        await until(lambda: value(b, "mqtt.site-a.dummy.light.1") == (7, "good"))
        # a write on B goes to A through the broker, and comes back as A's new state
        await b.write("mqtt.site-a.dummy.light.1", 3)
        assert a.points["dummy.light.1"].value == 3
        await until(lambda: value(b, "mqtt.site-a.dummy.light.1") == (3, "good"))
        # refusals reach the writer: not in accept_writes, and a value of the wrong type
        with pytest.raises(ioplex.WriteError, match="not writable from the broker"):
            await b.write("mqtt.site-a.dummy.secret", 2)
        assert a.points["dummy.secret"].value == 1
        # the mirror has the remote's type: a wrong one is refused before anything is sent
        with pytest.raises(ioplex.PointTypeError):
            await b.write("mqtt.site-a.dummy.temp", "warm")
        # B's own points are not published (B publishes nothing) and never mirrored back
        assert not any(n.startswith("mqtt.site-b") for n in a.points)
        assert a.ioservers["mqtt"].driver.stats["set_applied"] == 1


async def test_write_without_answer_times_out(tmp_path: Path, mosquitto: Mosquitto) -> None:
    a_cfg, b_cfg = pair(tmp_path, mosquitto.port)
    b_cfg["ioservers"]["mqtt"]["options"]["write_timeout"] = 0.5
    async with running(a_cfg) as a, running(b_cfg) as b:
        await until(lambda: value(b, "mqtt.site-a.dummy.temp") == (21.5, "good"))
    # A is gone (its will says offline); B alone: nobody answers
    async with running(b_cfg) as b:
        await until(lambda: b.points.get("mqtt.site-a.dummy.temp"))
        await until(
            lambda: value(b, "mqtt.site-a.dummy.temp") == (21.5, "bad"),
            what="site-a's points bad while it is offline",
        )
        with pytest.raises(ioplex.WriteError, match="did not answer within 0.5 s"):
            await b.write("mqtt.site-a.dummy.temp", 1.0)
    del a


async def test_host_killed_and_restarted(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A host killed with SIGKILL goes bad through its last will; restarted, it realigns
    the mirrors, and a mirror restarted meanwhile is aligned from the retained states."""
    a_cfg, b_cfg = pair(tmp_path, mosquitto.port)
    a_cfg["ioservers"]["dummy"]["options"]["points"]["temp"] = 30.0
    async with running(b_cfg) as b:
        a = host_process(a_cfg, tmp_path / "site-a.log")
        try:
            await until(lambda: value(b, "mqtt.site-a.dummy.temp") == (30.0, "good"))
        finally:
            a.kill()
            a.wait()
        # keepalive 5 s: the broker gives up on it after 7.5 s and publishes its will
        await until(
            lambda: value(b, "mqtt.site-a.dummy.temp") == (30.0, "bad"),
            timeout=15,
            what="site-a's points bad through its last will",
        )
    # B restarted while A is down: aligned from retained states, A still offline
    async with running(b_cfg) as b:
        await until(lambda: value(b, "mqtt.site-a.dummy.temp") == (30.0, "bad"))
        a_cfg["ioservers"]["dummy"]["options"]["points"]["temp"] = 21.5
        async with running(a_cfg):
            await until(lambda: value(b, "mqtt.site-a.dummy.temp") == (21.5, "good"))
            assert value(b, "mqtt.site-a.dummy.light.1") == (0, "good")


async def test_broker_restarted(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A broker that loses everything (no persistence) is refilled by the hosts: both
    reconnect and B ends with A's final values, including changes made while it was down."""
    a_cfg, b_cfg = pair(tmp_path, mosquitto.port)
    async with running(a_cfg) as a, running(b_cfg) as b:
        await until(lambda: value(b, "mqtt.site-a.dummy.temp") == (21.5, "good"))
        mosquitto.kill()
        await until(lambda: not a.ioservers["mqtt"].online and not b.ioservers["mqtt"].online)
        assert value(b, "mqtt.site-a.dummy.temp") == (21.5, "bad")
        await a.write("dummy.temp", 22.25)  # changed while the broker is down
        mosquitto.start()
        await a.wait_online("mqtt", timeout=15)
        await until(lambda: value(b, "mqtt.site-a.dummy.temp") == (22.25, "good"), timeout=15)
        await a.write("dummy.light.1", 5)
        await until(lambda: value(b, "mqtt.site-a.dummy.light.1") == (5, "good"))


async def test_loop_through_the_broker_ends(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Each host republishes what it mirrors (a second instance on the same broker, as a
    concentrator would for the level above): the points come back to their origin and are
    refused there at once; nothing grows."""
    configs = []
    for name in ("site-a", "site-b"):
        cfg = host_config(
            tmp_path, name, mosquitto.port, {"v": 1}, publish=["dummy.v"], subscribe=["*/*"]
        )
        cfg["ioservers"]["relay"] = {
            "plugin": "mqtt",
            "address": "127.0.0.1",
            "port": mosquitto.port,
            "options": {
                "publish": ["mqtt.site-*"],
                "prefix": "ioplex",
                "keepalive": 5,
                "timeout": 3,
            },
        }
        configs.append(cfg)
    async with running(configs[0]) as a, running(configs[1]) as b:
        await a.wait_online("relay")
        await b.wait_online("relay")
        await until(lambda: value(b, "mqtt.site-a.dummy.v") == (1, "good"))
        await until(
            lambda: a.ioservers["mqtt"].driver.loops.refused > 0,
            what="site-a refuses its own point coming back",
        )
        await until(lambda: b.ioservers["mqtt"].driver.loops.refused > 0)
        received = a.ioservers["mqtt"].driver.stats["received"]
        await anyio.sleep(0.5)
        names_a = sorted(n for n in a.points if n.startswith("mqtt."))
        names_b = sorted(n for n in b.points if n.startswith("mqtt."))
        # each mirrors the other's own point, and the other's relay of its own mirrors is
        # a copy of a point that originates here: refused
        assert names_a == ["mqtt.connection", "mqtt.site-b.dummy.v"]
        assert names_b == ["mqtt.connection", "mqtt.site-a.dummy.v"]
        assert b.points["mqtt.site-a.dummy.v"].meta == {"origin": "site-a", "hops": 1}
        # the loop ended: nothing more circulates
        assert a.ioservers["mqtt"].driver.stats["received"] == received
