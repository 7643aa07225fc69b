"""Relay cycles end, and channel ids stay local to the server that assigned them.

Two real ioplex hosts on loopback linked both ways, or with two one-way `out` links, and a
send-to-remote row pointing back at its own host: one event SENT is seen exactly once on
each side. A client that behaves like vscpd's tcp/ip link driver (two connections, drops
events whose obid is its send channel's CHID) receives every event relayed through ioplex.
"""

from __future__ import annotations

import socket
from typing import Any

import anyio
import ioplex_vscp_link as vscp
import pytest

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"
GUID = "FF:FF:FF:FF:FF:FF:FF:FE:00:11:22:33:00:03:00:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_config(tools: Any, own: int, other: int, direction: str) -> dict[str, Any]:
    config = tools.server_config(listen=f"127.0.0.1:{own}")
    config["ioservers"] = {
        "peer": {
            "plugin": "vscp_link",
            "address": "127.0.0.1",
            "port": other,
            "user": "admin",
            "password": "secret",
            "options": {"direction": direction},
        }
    }
    return config


async def count_events(client: Any, marker: bytes, seconds: float) -> int:
    """Event lines ending in `marker` that a client in RCVLOOP receives within `seconds`."""
    seen = 0
    with anyio.move_on_after(seconds):
        while True:
            line = await client.line(seconds + 1)
            if line.rstrip().endswith(marker):
                seen += 1
    return seen


@pytest.mark.parametrize("direction", ["both", "out"])
async def test_one_send_is_seen_once_on_each_side(
    tmp_path: Any, tools: Any, direction: str
) -> None:
    port_a, port_b = free_port(), free_port()
    rec_a, rec_b = tools.Recorder(), tools.Recorder()
    a = tools.make_host(tmp_path / "a", host_config(tools, port_a, port_b, direction), ("r", rec_a))
    b = tools.make_host(tmp_path / "b", host_config(tools, port_b, port_a, direction), ("r", rec_b))
    async with a, b:
        await a.wait_online("peer")
        await b.wait_online("peer")
        async with (
            await tools.Wire.open(("127.0.0.1", port_a)) as sender,
            await tools.Wire.open(("127.0.0.1", port_a)) as watch_a,
            await tools.Wire.open(("127.0.0.1", port_b)) as watch_b,
        ):
            for client in (sender, watch_a, watch_b):
                await client.login()
            for client in (watch_a, watch_b):
                assert (await client.reply("RCVLOOP")).startswith(b"+OK - Receive loop")
            assert await sender.reply(f"SEND 0,20,3,0,,,{GUID},0x01,0x02,0x03") == OK
            async with anyio.create_task_group() as tg:
                counts: dict[str, int] = {}

                async def watch(name: str, client: Any) -> None:
                    counts[name] = await count_events(client, b",0x01,0x02,0x03", 1.5)

                tg.start_soon(watch, "a", watch_a)
                tg.start_soon(watch, "b", watch_b)
        mine = [e for e in rec_a.vscp() if e.data == b"\x01\x02\x03"]
        theirs = [e for e in rec_b.vscp() if e.data == b"\x01\x02\x03"]
        assert (len(mine), len(theirs), counts) == (1, 1, {"a": 1, "b": 1})
        guard_a, guard_b = vscp.state_of(a).loops, vscp.state_of(b).loops
        assert guard_a.repeats + guard_b.repeats >= 1  # the cycle was there, and cut


async def test_a_row_sending_to_its_own_host_does_not_loop(tmp_path: Any, tools: Any) -> None:
    port = free_port()
    rec = tools.Recorder()
    config = tools.server_config(listen=f"127.0.0.1:{port}")
    config["plugins"]["vscp_link"]["send_to_remote"] = [
        {"host": "127.0.0.1", "port": port, "user": "admin", "password": "secret"}
    ]
    host = tools.make_host(tmp_path, config, ("r", rec))
    async with host:
        await vscp.wait_server(host)
        host.publish(vscp.Event(20, 3, b"\x07", vscp.parse_guid(GUID), timestamp=5), "test")
        state = vscp.state_of(host)
        with anyio.fail_after(5):
            while state.loops.repeats < 1:
                await anyio.sleep(0.01)
        await anyio.sleep(0.5)
        assert len(rec.vscp()) == 1 and state.rows[0].sent == 1


class LinkDriverClient:
    """What vscpl2drv-tcpiplink does on a server (notes §7): a send connection that asks
    CHID, and a receive connection in RCVLOOP that drops every event whose obid is that
    CHID ("our own")."""

    def __init__(self, tx: Any, rx: Any) -> None:
        self.tx, self.rx = tx, rx
        self.chid = 0
        self.kept: list[bytes] = []
        self.dropped = 0

    @classmethod
    async def open(cls, tools: Any, address: tuple[str, int]) -> LinkDriverClient:
        tx, rx = await tools.Wire.open(address), await tools.Wire.open(address)
        driver = cls(tx, rx)
        for wire in (tx, rx):
            await wire.login()
            await wire.reply("VERS")
        driver.chid = int((await tx.reply("CHID")).split(b"\r\n")[0])
        assert (await rx.reply("RCVLOOP")).startswith(b"+OK - Receive loop")
        return driver

    async def receive(self, count: int, timeout: float = 5.0) -> list[bytes]:
        with anyio.move_on_after(timeout):
            while len(self.kept) < count:
                line = (await self.rx.line(timeout)).rstrip()
                if line.startswith(b"+OK"):
                    continue
                if int(line.split(b",")[3]) == self.chid:
                    self.dropped += 1
                    continue
                self.kept.append(line)
        return self.kept

    async def aclose(self) -> None:
        await self.tx.aclose()
        await self.rx.aclose()


async def test_a_link_driver_on_our_server_gets_every_relayed_event(
    tmp_path: Any, tools: Any
) -> None:
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg)
        config = tools.server_config()
        config["ioservers"] = {
            "remote": {
                "plugin": "vscp_link",
                "address": peer.address[0],
                "port": peer.address[1],
                "user": "admin",
                "password": "secret",
                "options": {"direction": "in"},
            }
        }
        host = tools.make_host(tmp_path, config)
        async with host:
            await host.wait_online("remote")
            server = await vscp.wait_server(host)
            driver = await LinkDriverClient.open(tools, server.address)
            try:
                assert driver.chid <= 10  # small ids: collisions are the rule
                with anyio.fail_after(5):
                    while not any(c.in_loop for c in peer.clients.values()):
                        await anyio.sleep(0.01)
                # events from the peer's other clients: obids 2..11 on the peer (1 is the
                # link's receive connection there, which the peer skips for obid 1)
                for obid in range(2, 12):
                    peer.emit(f"0,20,3,{obid},,{obid},{GUID},{obid}")
                # and an event another client SENDs to our server
                async with await tools.Wire.open(server.address) as other:
                    await other.login()
                    assert await other.reply(f"SEND 0,20,3,{driver.chid},,99,{GUID},99") == OK
                kept = await driver.receive(11)
                assert sorted(int(line.rsplit(b",", 1)[1], 0) for line in kept) == [
                    *range(2, 12),
                    99,
                ]
                assert driver.dropped == 0
                link = host.ioservers["remote"].driver
                assert {int(line.split(b",")[3]) for line in kept[:10]} == {link.channel}
            finally:
                await driver.aclose()
        tg.cancel_scope.cancel()
