"""Send-to-remote rows (decision-matrix action 0x43) against a real remote server."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import ioplex
import ioplex_vscp_link as vscp
import pytest

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"


def rows_config(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"plugins": {"vscp_link": {"send_to_remote": list(rows)}}}


def row(address: tuple[str, int], **more: Any) -> dict[str, Any]:
    return {
        "host": address[0],
        "port": address[1],
        "user": "admin",
        "password": "secret",
        "timeout": 2.0,
        **more,
    }


def closed_port() -> int:
    """A loopback port nobody listens on (bound, read back, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def retr_all(client: Any, count: int) -> list[bytes]:
    with anyio.fail_after(5):
        while (await client.reply("CDTA")).split(b"\r\n")[0] != str(count).encode():
            await anyio.sleep(0.01)
    return (await client.reply(f"RETR {count}")).split(b"\r\n")[:count]


async def test_matching_events_are_sent_to_the_remote(tmp_path: Any, tools: Any) -> None:
    rec = tools.Recorder()
    async with (
        tools.running_server(tmp_path / "remote", ("recorder", rec)) as (_remote, srv),
        await tools.Wire.open(srv.address) as client,
    ):
        await client.login()
        local = tools.make_host(
            tmp_path / "local",
            rows_config(
                row(srv.address, filter="0,10,6", mask="0,0xFFFF,0xFFFF"),
                row(
                    srv.address,
                    filter="0,10,6",
                    mask="0,0xFFFF,0xFFFF",
                    event="0,20,3,,,,-,%event.data[3],1,%event.sizedata",
                ),
            ),
        )
        async with local:
            await anyio.sleep(0.05)  # the rows are up once serve runs
            local.publish(vscp.Event(20, 1, b"\x01"), source="test")  # no match
            local.publish(vscp.Event(10, 6, bytes([0x88, 0x81, 0x00, 0xEB])), source="test")
            lines = sorted(await retr_all(client, 2))
            assert lines[0].startswith(b"0,10,6,") and lines[0].endswith(b",0x88,0x81,0x00,0xEB")
            assert lines[1].startswith(b"0,20,3,") and lines[1].endswith(b",0xEB,0x01,0x04")
            state = vscp.state_of(local)
            assert [r.sent for r in state.rows] == [1, 1]
            assert [r.matched for r in state.rows] == [1, 1]
            assert await client.reply("CDTA") == b"0\r\n" + OK
        # each send was its own short connection: login, SEND, QUIT
        assert len(srv.clients) == 1


async def test_failures_are_retried_counted_and_never_block_the_bus(
    tmp_path: Any, tools: Any, caplog: Any
) -> None:
    async with (
        tools.running_server(tmp_path / "remote") as (
            _remote,
            srv,
        ),
        await tools.Wire.open(srv.address) as client,
    ):
        await client.login()
        local = tools.make_host(
            tmp_path / "local",
            rows_config(
                row(("127.0.0.1", closed_port()), retries=3),
                row(srv.address, password="hunter2-nope", retries=2),  # refused at PASS
                row(srv.address),
            ),
        )
        async with local:
            await anyio.sleep(0.05)
            for i in range(5):
                local.publish(vscp.Event(20, 3, bytes([i])), source="test")
            lines = await retr_all(client, 5)  # the good row is not held up by the others
            assert [line.rsplit(b",", 1)[1] for line in lines] == [
                b"0x00",
                b"0x01",
                b"0x02",
                b"0x03",
                b"0x04",
            ]
            dead, refused, good = vscp.state_of(local).rows
            with anyio.fail_after(15):
                while dead.failed < 5 or refused.failed < 5:
                    await anyio.sleep(0.05)
            assert (dead.sent, refused.sent, good.sent) == (0, 0, 5)
    assert "try 1 of 3 failed" in caplog.text and "giving up on" in caplog.text
    assert "Invalid username or password" in caplog.text
    assert "hunter2-nope" not in caplog.text


async def test_a_bad_row_names_its_setting(tmp_path: Any, tools: Any) -> None:
    with pytest.raises(ioplex.ConfigError) as info:  # before anything starts
        tools.make_host(
            tmp_path, rows_config(row(("127.0.0.1", 1), event="0,20,3,,,,-,%event.colour"))
        )
    [problem] = info.value.problems
    assert str(problem).startswith(
        "plugins.vscp_link.send_to_remote[0].event: "
        "'0,20,3,,,,-,%event.colour' does not make an event line"
    )


def test_template_escapes() -> None:
    from datetime import UTC, datetime

    from ioplex_vscp_link.remote import render

    event = vscp.Event(
        10,
        6,
        bytes([0x88, 0x81, 0x00, 0xEB]),
        bytes(range(16)),
        head=0x60,
        obid=2,
        timestamp=77,
        datetime=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
    )
    now = datetime(2026, 11, 29, 13, 14, 15, 678_000, tzinfo=UTC)  # a Sunday

    def r(template: str) -> str:
        return render(template, event, now)

    assert r("%event") == event.line().replace(",2,", ",0,", 1)  # obid 0 goes out
    assert r("%event.obid %event.priority %event.nickname %event.sizedata") == "2 3 15 4"
    assert r("%event.data[3];%event.year-%event.month-%event.day %event.hour:%event.minute")
    assert r("%event.year-%event.month-%event.day %event.hour:%event.minute:%event.second") == (
        "2026-3-4 5:6:7"
    )
    assert r("%measurement.float %measurement.string %measurement.unit") == "23.5 23.5 1"
    assert r("%measurement.index %measurement.coding %measurement.quantity") == "0 4 temperature"
    assert r("%isoboth|%isobothms|%isodate|%isotime") == (
        "2026-11-29T13:14:15|2026-11-29T13:14:15.678|2026-11-29|13:14:15"
    )
    assert r("%unixtime %mstime") == f"{int(now.timestamp())} {int(now.timestamp() * 1000)}"
    assert r("%weekday %weekdaytxt %weekdaytxtfull") == "0 Sun Sunday"
    assert r("%month %monthtxt %monthtxtfull %quarter %dayofyear %week") == (
        "11 Nov November 4 333 48"
    )
    assert r("%year %day %hour %minute %second %% %;") == "2026 29 13 14 15 % ;"
    with pytest.raises(ValueError, match="carries no measurement"):
        render("%measurement.float", vscp.Event(20, 3), now)


async def test_a_template_that_cannot_be_filled_is_counted(tmp_path: Any, tools: Any) -> None:
    async with tools.running_server(tmp_path / "remote") as (_remote, srv):
        local = tools.make_host(
            tmp_path / "local",
            rows_config(row(srv.address, event="0,20,3,,,,-,%measurement.unit")),
        )
        async with local:
            await anyio.sleep(0.05)
            local.publish(vscp.Event(20, 3, b"\x01"), source="test")  # no measurement
            [state_row] = vscp.state_of(local).rows
            with anyio.fail_after(5):
                while state_row.failed < 1:
                    await anyio.sleep(0.01)
            assert state_row.sent == 0
