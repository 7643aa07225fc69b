"""Faults on a real Mosquitto: hostile publishers, refused and later accepted passwords, a
frozen broker, a chain longer than max_hops."""

from __future__ import annotations

import logging
from pathlib import Path

import aiomqtt
import anyio
import pytest
from ioplex_mqtt.testing import Mosquitto, host_config, running, until, value

pytestmark = pytest.mark.anyio


async def test_hostile_publisher(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Garbage on every kind of topic is refused and counted; the mirror keeps working and
    a retained write request is never applied."""
    a_cfg = host_config(
        tmp_path,
        "site-a",
        mosquitto.port,
        {"x": 1},
        publish=["dummy.*"],
        accept_writes=True,
        max_payload=1024,
    )
    b_cfg = host_config(tmp_path, "site-b", mosquitto.port, subscribe=["*/*"], max_payload=1024)
    async with running(a_cfg) as a, running(b_cfg) as b:
        await until(lambda: value(b, "mqtt.site-a.dummy.x") == (1, "good"))
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as evil:
            garbage = [
                b"",
                b"\xff",
                b"[]",
                b'{"v":1}',
                b"{" * 5000,
                b"x" * 5000,
                b'{"v":1e999,"q":"good","ts":0,"src":"evil","hops":0}',
                b'{"v":"\\ud800","q":"good","ts":0,"src":"evil","hops":0}',
            ]
            for i, payload in enumerate(garbage):
                await evil.publish(f"ioplex/evil/p{i}", payload, qos=1)
                await evil.publish("ioplex/site-a/$set/dummy/x", payload, qos=1)
                await evil.publish("ioplex/site-a/$result/dummy/x", payload, qos=1)
            await evil.publish("ioplex/evil/$state", b"\x00garbage", qos=1)
            # a valid state under a name the kernel refuses (a zero-width space)
            await evil.publish(
                "ioplex/evil/bad\u200bname",
                b'{"v":1,"q":"good","ts":0,"src":"evil","hops":0}',
                qos=1,
            )
            # a retained write request would be applied at every reconnect: ignored
            await evil.publish(
                "ioplex/site-a/$set/dummy/x",
                b'{"v":5,"id":"r","from":"evil","ts":%d}' % 0,
                qos=1,
                retain=True,
            )
            await evil.publish(
                "ioplex/evil/ok", b'{"v":7,"q":"good","ts":0,"src":"evil","hops":0}', qos=1
            )
        await until(lambda: value(b, "mqtt.evil.ok") == (7, "good"))
        stats_b = b.ioservers["mqtt"].driver.stats
        stats_a = a.ioservers["mqtt"].driver.stats
        await until(lambda: stats_a["set_refused"] >= 1)
        assert stats_b["refused_payloads"] >= len(garbage)
        assert stats_b["refused_points"] >= 1
        assert a.points["dummy.x"].value == 1
        assert a.ioservers["mqtt"].online and b.ioservers["mqtt"].online
        assert not any(n.startswith("mqtt.evil.p") for n in b.points)
        # still working
        await b.write("mqtt.site-a.dummy.x", 2)
        assert a.points["dummy.x"].value == 2


async def test_password_refused_then_accepted(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with Mosquitto(tmp_path / "broker", users={"site-a": "old-password"}) as broker:
        cfg = host_config(tmp_path, "site-a", broker.port, {"x": 1}, publish=["dummy.*"])
        cfg["ioservers"]["mqtt"].update(user="site-a", password="new-password-42")
        async with running(cfg, online=False) as host:
            io = host.ioservers["mqtt"]
            await until(
                lambda: (
                    "not authori" in (io.detail or "").lower()
                    or "bad user name or password" in (io.detail or "").lower()
                ),
                what=f"a refusal in the state (is {io.state}: {io.detail})",
            )
            assert not io.online
            broker.set_users({"site-a": "new-password-42"})  # the operator fixes the broker
            await host.wait_online("mqtt", timeout=20)
        assert "new-password-42" not in caplog.text
        assert "old-password" not in caplog.text


async def test_frozen_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A broker that stops answering (SIGSTOP) is noticed through keepalive and timeouts;
    thawed, both hosts come back and realign."""
    a_cfg = host_config(tmp_path, "site-a", mosquitto.port, {"x": 1}, publish=["dummy.*"])
    b_cfg = host_config(tmp_path, "site-b", mosquitto.port, subscribe=["site-a/*"])
    async with running(a_cfg) as a, running(b_cfg) as b:
        await until(lambda: value(b, "mqtt.site-a.dummy.x") == (1, "good"))
        mosquitto.freeze()
        try:
            await a.write("dummy.x", 2)
            await until(
                lambda: not a.ioservers["mqtt"].online and not b.ioservers["mqtt"].online,
                timeout=20,
                what="both hosts notice the frozen broker",
            )
            assert value(b, "mqtt.site-a.dummy.x") == (1, "bad")
        finally:
            mosquitto.thaw()
        await until(lambda: value(b, "mqtt.site-a.dummy.x") == (2, "good"), timeout=30)


async def test_chain_longer_than_max_hops(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """site-a → (prefix "ioplex") → site-b relays on prefix "up" → site-c: each mirror adds
    a hop; site-c with max_hops = 1 refuses what came through two mirrors."""
    a_cfg = host_config(tmp_path, "site-a", mosquitto.port, {"x": 1}, publish=["dummy.*"])
    b_cfg = host_config(tmp_path, "site-b", mosquitto.port, subscribe=["site-a/*"])
    b_cfg["ioservers"]["up"] = {
        "plugin": "mqtt",
        "address": "127.0.0.1",
        "port": mosquitto.port,
        "options": {"prefix": "up", "publish": ["mqtt.site-a.*"]},
    }
    c_cfg = host_config(
        tmp_path, "site-c", mosquitto.port, subscribe=["site-b/*"], prefix="up", max_hops=1
    )
    c_cfg["ioservers"]["wide"] = {
        "plugin": "mqtt",
        "address": "127.0.0.1",
        "port": mosquitto.port,
        "options": {"prefix": "up", "subscribe": ["site-b/*"]},
    }
    async with running(a_cfg), running(b_cfg) as b, running(c_cfg) as c:
        await until(lambda: value(c, "wide.site-b.mqtt.site-a.dummy.x") == (1, "good"))
        assert c.points["wide.site-b.mqtt.site-a.dummy.x"].meta == {"origin": "site-a", "hops": 2}
        assert b.points["mqtt.site-a.dummy.x"].meta == {"origin": "site-a", "hops": 1}
        await anyio.sleep(0.3)
        assert "mqtt.site-b.mqtt.site-a.dummy.x" not in c.points
        assert c.ioservers["mqtt"].driver.loops.refused >= 1


async def test_cleared_states_and_the_point_limit(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A cleared retained state (empty payload) removes the mirrored point; past max_points
    new points are refused and counted, so a publisher inventing topics cannot fill memory."""
    cfg = host_config(tmp_path, "site-b", mosquitto.port, subscribe=["*/*"], max_points=2)
    state = b'{"v":1,"q":"good","ts":0,"src":"other","hops":0}'
    async with running(cfg) as b, aiomqtt.Client("127.0.0.1", mosquitto.port) as other:
        for i in range(4):
            await other.publish(f"ioplex/other/p{i}", state, qos=1, retain=True)
        driver = b.ioservers["mqtt"].driver
        await until(lambda: driver.stats["refused_points"] == 2)
        assert sorted(n for n in b.points if n.startswith("mqtt.other")) == [
            "mqtt.other.p0",
            "mqtt.other.p1",
        ]
        await other.publish("ioplex/other/p0", b"", qos=1, retain=True)
        await until(lambda: "mqtt.other.p0" not in b.points)
        await other.publish("ioplex/other/p2", state, qos=1, retain=True)
        await until(lambda: value(b, "mqtt.other.p2") == (1, "good"))
        for i in range(4):  # leave the broker clean
            await other.publish(f"ioplex/other/p{i}", b"", qos=1, retain=True)


async def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    """TLS verified against cafile, the client authenticated by its certificate; without the
    client certificate the broker refuses, and the host keeps retrying."""
    from ioplex_mqtt.testing import make_certificates

    files = make_certificates(tmp_path / "pki")
    tls = {
        "cafile": files["cacert"],
        "certfile": files["servercert"],
        "keyfile": files["serverkey"],
    }
    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        cfg = host_config(
            tmp_path,
            "site-a",
            broker.port,
            {"x": 1},
            publish=["dummy.*"],
            tls=True,
            cafile=str(files["cacert"]),
            certfile=str(files["clientcert"]),
            keyfile=str(files["clientkey"]),
        )
        other = host_config(
            tmp_path,
            "site-b",
            broker.port,
            subscribe=["site-a/*"],
            tls=True,
            cafile=str(files["cacert"]),
            certfile=str(files["clientcert"]),
            keyfile=str(files["clientkey"]),
        )
        async with running(cfg), running(other) as b:
            await until(lambda: value(b, "mqtt.site-a.dummy.x") == (1, "good"))
        anonymous = host_config(
            tmp_path, "site-c", broker.port, tls=True, cafile=str(files["cacert"])
        )
        async with running(anonymous, online=False) as c:
            io = c.ioservers["mqtt"]
            await until(lambda: io.detail, what="a refusal")
            await anyio.sleep(1)
            assert not io.online
