"""Send-to-remote against the strict peer (one command per read, vscpd's obid rule)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import ioplex_vscp_link as vscp
import pytest

pytestmark = pytest.mark.anyio

GUID = "FF:FF:FF:FF:FF:FF:FF:FE:00:11:22:33:00:03:00:00"


def rows_config(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"plugins": {"vscp_link": {"send_to_remote": list(rows)}}}


def row(address: tuple[str, int], **more: Any) -> dict[str, Any]:
    return {
        "host": address[0],
        "port": address[1],
        "user": "admin",
        "password": "secret",
        "timeout": 2.0,
        "queue_size": 10_000,
        **more,
    }


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def test_5000_events_in_order_none_lost_none_twice(tmp_path: Any, tools: Any) -> None:
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg, break_at={1234})
        host = tools.make_host(
            tmp_path,
            rows_config(
                row(peer.address, filter="0,20", mask="0,0xFFFF"),
                # a second row to the same remote: one order for both
                row(peer.address, filter="0,30", mask="0,0xFFFF", event="%event"),
            ),
        )
        async with host:
            await anyio.sleep(0.05)
            guid = vscp.parse_guid(GUID)
            for i in range(5000):
                cls = 30 if i % 10 == 0 else 20
                host.publish(vscp.Event(cls, 3, i.to_bytes(2, "big"), guid, timestamp=i), "t")
                if i % 500 == 0:
                    await anyio.lowlevel.checkpoint()
            await wait_until(lambda: len(peer.received) >= 5000, 60)
            await anyio.sleep(0.2)
            got = [int(line.split(",")[5]) for line in peer.received]
            assert got == list(range(5000))
            assert peer.reads_with_more == 0
            rows = vscp.state_of(host).rows
            assert [r.sent for r in rows] == [4500, 500]
            assert [r.failed + r.dropped for r in rows] == [0, 0]
        tg.cancel_scope.cancel()


async def test_event_goes_out_with_obid_zero(tmp_path: Any, tools: Any) -> None:
    # Two clients of the peer listen (ids 1 and 2). The event had obid 2 in its own host:
    # relayed with it, the peer would skip its client 2 as "the originator".
    async with anyio.create_task_group() as tg:
        peer = await tools.start_peer(tg)
        listeners = [await tools.Wire.open(peer.address) for _ in range(2)]
        for wire in listeners:
            await wire.login()
            assert (await wire.reply("RCVLOOP")).startswith(b"+OK - Receive loop")
        host = tools.make_host(tmp_path, rows_config(row(peer.address)))
        async with host:
            await anyio.sleep(0.05)
            event = vscp.Event(20, 3, b"\x05", vscp.parse_guid(GUID), obid=2, timestamp=9)
            host.publish(event, "t")
            for wire in listeners:
                while (line := await wire.line()).startswith(b"+OK"):
                    pass
                assert line.rstrip().endswith(b",0x05")
                assert line.split(b",")[3] == b"3"  # the peer's id for the row's connection
        for wire in listeners:
            await wire.aclose()
        tg.cancel_scope.cancel()
