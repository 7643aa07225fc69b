"""The link driver against the strict peer (a server that behaves as vscpd and uvscpd do on
the wire, tests/strict_peer.py): nothing lost, nothing duplicated, counts asserted."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import ioplex_vscp_link as vscp
import pytest

pytestmark = pytest.mark.anyio

GUID = "FF:FF:FF:FF:FF:FF:FF:FE:00:11:22:33:00:03:00:00"


def link_config(address: tuple[str, int], **options: Any) -> dict[str, Any]:
    return {
        "ioservers": {
            "vscp": {
                "plugin": "vscp_link",
                "address": address[0],
                "port": address[1],
                "user": "admin",
                "password": "secret",
                "options": {"response_timeout": 2.0, **options},
            }
        }
    }


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def numbered(i: int) -> vscp.Event:
    """Event number i: distinct data, a fixed GUID and timestamp i (as a node would send)."""
    return vscp.Event(20, 3, i.to_bytes(4, "big"), vscp.parse_guid(GUID), timestamp=i + 1, obid=7)


def numbers(lines: list[str]) -> list[int]:
    return [int("".join(f[2:] for f in line.split(",")[7:11]), 16) for line in lines]


async def test_5000_events_one_in_flight_none_lost_none_twice(tmp_path: Any, tools: Any) -> None:
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg)
        host = tools.make_host(tmp_path, link_config(peer.address, direction="out"))
        async with host:
            await host.wait_online("vscp")
            link = host.ioservers["vscp"].driver
            for i in range(5000):
                host.publish(numbered(i), source="test")
                if i % 500 == 0:
                    await anyio.lowlevel.checkpoint()
            await wait_until(lambda: len(peer.received) >= 5000, 60)
            await anyio.sleep(0.2)
            assert numbers(peer.received) == list(range(5000))
            assert peer.reads_with_more == 0  # never more than one command in flight
            assert link.send_window == 1  # a vscpd banner: no pipelining
            # relayed with obid 0: the peer put the link's own client id there
            assert {line.split(",")[3] for line in peer.received} == {str(link.tx_channel)}
            assert link.stats["sent"] == 5000 and link.dropped == 0 and not link.pending
            await wait_until(lambda: host.points["vscp.stats.sent"].value == 5000, 3)
            assert host.points["vscp.stats.lost"].value == 0
        tg.cancel_scope.cancel()


async def test_a_broken_connection_sends_the_unanswered_again_in_order(
    tmp_path: Any, tools: Any
) -> None:
    # The peer drops the connection instead of handling SEND number 700 and 1,500: the
    # answers are lost, the events not taken. They must come again, in their place.
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg, break_at={700, 1500})
        host = tools.make_host(tmp_path, link_config(peer.address, direction="out"))
        async with host:
            await host.wait_online("vscp")
            link = host.ioservers["vscp"].driver
            for i in range(2000):
                host.publish(numbered(i), source="test")
            await wait_until(lambda: len(peer.received) >= 2000, 60)
            await anyio.sleep(0.2)
            assert numbers(peer.received) == list(range(2000))
            assert link.stats["sent"] == 2000 and link.dropped == 0
        tg.cancel_scope.cancel()


async def test_pipelining_only_with_an_ioplex_remote_or_when_asked(
    tmp_path: Any, tools: Any
) -> None:
    async with tools.running_server(tmp_path / "a") as (_a, srv):
        b = tools.make_host(tmp_path / "b", link_config(srv.address, direction="out"))
        async with b:
            await b.wait_online("vscp")
            assert b.ioservers["vscp"].driver.send_window == 64  # the banner says ioplex
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg)
        host = tools.make_host(
            tmp_path / "c",
            link_config(peer.address, direction="out", pipelining="off"),
        )
        async with host:
            await host.wait_online("vscp")
            assert host.ioservers["vscp"].driver.send_window == 1
        tg.cancel_scope.cancel()


async def test_chid_zero_and_obid_zero_events_are_not_taken_for_our_own(
    tmp_path: Any, tools: Any
) -> None:
    rec = tools.Recorder()
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg, chid_zero=True)
        host = tools.make_host(tmp_path, link_config(peer.address), ("recorder", rec))
        async with host:
            await host.wait_online("vscp")
            link = host.ioservers["vscp"].driver
            assert link.tx_channel == 0
            await wait_until(lambda: any(c.in_loop for c in peer.clients.values()))
            # two events from the peer's CAN bus, obid 0
            peer.emit(f"0,10,6,0,,1000,{GUID},0x88,0x81,0x00,0xEB")
            peer.emit(f"0,10,6,0,,2000,{GUID},0x88,0x82,0xFD,0xF3")
            got = await rec.wait_for(2)
            assert [e.timestamp for e in got] == [1000, 2000]
            # they carry the link's own channel id in this host, not the remote's
            assert {e.obid for e in got} == {link.channel}
            # our own event comes back from this peer with obid 0: the loop guard drops it
            host.publish(numbered(1), source="test")
            await wait_until(lambda: link.stats["repeats"] == 1, 5)
            assert len(rec.vscp()) == 3 and link.stats["received"] == 2
        tg.cancel_scope.cancel()


async def test_a_refused_mask_is_narrowed_and_filtered_here(
    tmp_path: Any, tools: Any, caplog: Any
) -> None:
    rec = tools.Recorder()
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg, refuse_wide_masks=True)
        host = tools.make_host(
            tmp_path,
            link_config(peer.address, in_filter="0,10", in_mask="0,0xFFFF"),
            ("recorder", rec),
        )
        async with host:
            await host.wait_online("vscp")  # a refused SMSK is no connection failure
            link = host.ioservers["vscp"].driver
            assert peer.masks == [
                "0x00,0xFFFF,0x0000," + ":".join(["00"] * 16),
                "0x00,0x01FF,0x0000," + ":".join(["00"] * 16),
            ]
            await wait_until(lambda: any(c.in_loop for c in peer.clients.values()))
            peer.emit(f"0,20,3,0,,1,{GUID},0x01")  # the peer's narrowed filter stops it
            peer.emit(f"0,522,6,0,,2,{GUID}," + ",".join(["0x00"] * 16) + ",0x88,0x81,0x00,0xEB")
            peer.emit(f"0,10,6,0,,3,{GUID},0x88,0x81,0x00,0xEB")
            await rec.wait_for(1)
            await wait_until(lambda: link.stats["filtered"] == 1)  # 522 passed the peer
            assert [e.vscp_class for e in rec.vscp()] == [10]
        tg.cancel_scope.cancel()
    assert "refused the in mask 0x00,0xFFFF" in caplog.text
    assert "took the Level I mask 0x00,0x01FF" in caplog.text


async def test_a_filter_refused_outright_is_applied_here(tmp_path: Any, tools: Any) -> None:
    class NoFilters(tools.StrictPeer):
        def _filter(self, client: Any, word: str, arg: str) -> bytes:
            return b"-OK - Unknown command\r\n"

    rec = tools.Recorder()
    async with anyio.create_task_group() as tg:
        peer = NoFilters()
        await tg.start(peer.serve)
        host = tools.make_host(
            tmp_path,
            link_config(peer.address, in_filter="0,10", in_mask="0,0xFFFF"),
            ("recorder", rec),
        )
        async with host:
            await host.wait_online("vscp")
            await wait_until(lambda: any(c.in_loop for c in peer.clients.values()))
            peer.emit(f"0,20,3,0,,1,{GUID},0x01")
            peer.emit(f"0,10,6,0,,2,{GUID},0x88,0x81,0x00,0xEB")
            await rec.wait_for(1)
            await anyio.sleep(0.1)
            assert [e.vscp_class for e in rec.vscp()] == [10]
        tg.cancel_scope.cancel()


async def test_zoned_and_float_measurements_become_points(tmp_path: Any, tools: Any) -> None:
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg)
        host = tools.make_host(tmp_path, link_config(peer.address, direction="in"))
        async with host:
            await host.wait_online("vscp")
            await wait_until(lambda: any(c.in_loop for c in peer.clients.values()))
            peer.emit(f"0,65,6,0,,1,{GUID},3,5,7,0x88,0x81,0x00,0xEB")  # zone 5, index 3
            peer.emit(f"0,70,35,0,,2,{GUID},0x42,0x34,0xCC,0xCD")  # 45.2 %
            zoned, humidity = f"vscp.{GUID}.temperature.3", f"vscp.{GUID}.humidity.0"
            await wait_until(lambda: zoned in host.points and humidity in host.points)
            point = host.points[zoned]
            assert point.value == 23.5 and point.meta["unit"] == "°C"
            assert (point.meta["zone"], point.meta["subzone"], point.meta["class"]) == (5, 7, 65)
            assert host.points[humidity].value == pytest.approx(45.2)
        tg.cancel_scope.cancel()


async def test_a_frozen_peer_times_out_and_nothing_is_lost(tmp_path: Any, tools: Any) -> None:
    # The peer stops answering on SEND number 300 (as if stopped with SIGSTOP): the link
    # gives up after response_timeout, reconnects, and sends that event and the rest.
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg, freeze_at={300})
        host = tools.make_host(
            tmp_path, link_config(peer.address, direction="out", response_timeout=0.5)
        )
        async with host:
            await host.wait_online("vscp")
            link = host.ioservers["vscp"].driver
            for i in range(1000):
                host.publish(numbered(i), source="test")
            await wait_until(lambda: len(peer.received) >= 1000, 30)
            await anyio.sleep(0.2)
            assert numbers(peer.received) == list(range(1000))
            assert peer.frozen == 1 and link.stats["sent"] == 1000 and not link.pending
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("sends", "error"),
    [
        (b"x" * 70_000, "sent a line longer than 65536 bytes"),  # no line end, ever
        (b"Welcome.\r\n", "closed the connection"),  # and then nothing
    ],
)
async def test_a_hostile_banner_is_a_link_error(sends: bytes, error: str) -> None:
    from ioplex_vscp_link.client import LinkClient, LinkError

    async def serve(stream: Any) -> None:
        async with stream:
            await stream.send(sends)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        with pytest.raises(LinkError, match=error):
            await LinkClient.open("127.0.0.1", port, timeout=2.0, connect_timeout=2.0)
        tg.cancel_scope.cancel()
