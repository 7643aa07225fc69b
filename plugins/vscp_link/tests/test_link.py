"""The link driver against the server interface: two real hosts on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import ioplex
import ioplex_vscp_link as vscp
import pytest

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"
TEMPERATURE = "0,10,6,0,,,-,0x88,0x81,0x00,0xEB"  # 23.5 °C, sensor 0


def link_config(address: tuple[str, int], **options: Any) -> dict[str, Any]:
    return {
        "ioservers": {
            "vscp": {
                "plugin": "vscp_link",
                "address": address[0],
                "port": address[1],
                "user": "admin",
                "password": "secret",
                "options": options,
            }
        }
    }


@asynccontextmanager
async def linked(
    tmp_path: Any, tools: Any, server: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[Any]:
    """Host A with the server interface, host B linked to it; both with recorders."""
    rec_a, rec_b = tools.Recorder(), tools.Recorder()
    async with tools.running_server(tmp_path / "a", ("recorder", rec_a), **(server or {})) as (
        a,
        srv,
    ):
        b = tools.make_host(
            tmp_path / "b", link_config(srv.address, **options), ("recorder", rec_b)
        )
        async with b:
            await b.wait_online("vscp")

            class Pair:
                host_a, server_a, recorder_a = a, srv, rec_a
                host_b, recorder_b = b, rec_b
                link = b.ioservers["vscp"].driver

            yield Pair


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def test_both_directions_measurements_and_no_echo(tmp_path: Any, tools: Any) -> None:
    async with linked(tmp_path, tools) as p, await tools.Wire.open(p.server_a.address) as client:
        await client.login()
        # remote → this host: the bus, vscp.event, a measurement point
        assert await client.reply(f"SEND {TEMPERATURE}") == OK
        got = await p.recorder_b.wait_for(1)
        assert got[0].data == bytes([0x88, 0x81, 0x00, 0xEB])
        assert p.recorder_b.events[0][0] == "vscp"
        guid = (await client.reply("GGID")).split(b"\r\n")[0].decode()
        name = f"vscp.{guid}.temperature.0"
        await wait_until(lambda: name in p.host_b.points)
        point = p.host_b.points[name]
        assert point.value == 23.5 and point.meta["unit"] == "°C" and point.meta["unit_code"] == 1
        event_line = p.host_b.points["vscp.event"].value
        assert event_line.startswith("0,10,6,") and event_line.endswith(",0x88,0x81,0x00,0xEB")
        assert sorted(await p.host_b.discover("vscp")) == sorted(
            ["event", f"{guid}.temperature.0", *(f"stats.{n}" for n in vscp.link.STAT_POINTS)]
        )
        # this host → remote: with the link's send channel as obid, not echoed back
        p.host_b.publish(vscp.Event(20, 3, b"\x00\x01\x23"), source="test")
        with anyio.fail_after(5):
            while (await client.reply("CDTA")) == b"0\r\n" + OK:
                await anyio.sleep(0.01)
        line = (await client.reply("RETR")).split(b"\r\n")[0]
        assert line.split(b",")[:4] == [b"0", b"20", b"3", str(p.link.tx_channel).encode()]
        await wait_until(lambda: p.link.stats["suppressed"] == 1)
        assert [s for s, e in p.recorder_b.events if e.vscp_class == 20] == ["test"]
        assert [s for s, e in p.recorder_a.events] == ["plugin:vscp_link", "plugin:vscp_link"]
        # a measurement changes the point
        assert await client.reply("SEND 0,10,6,0,,,-,0x88,0x82,0xFD,0xF3") == OK
        await wait_until(lambda: point.value == -5.25)


async def test_in_and_out_filters(tmp_path: Any, tools: Any) -> None:
    async with (
        linked(
            tmp_path,
            tools,
            in_filter="0,10",
            in_mask="0,0xFFFF",
            out_filter="0,30",
            out_mask="0,0xFFFF",
        ) as p,
        await tools.Wire.open(p.server_a.address) as client,
    ):
        await client.login()
        await client.reply("SEND 0,20,1,0,,,-,1")
        await client.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB")
        got = await p.recorder_b.wait_for(1)
        await anyio.sleep(0.1)
        assert [e.vscp_class for e in p.recorder_b.vscp()] == [10]
        p.host_b.publish(vscp.Event(40, 1, b"\x01"), source="test")
        p.host_b.publish(vscp.Event(30, 1, b"\x02"), source="test")
        await p.recorder_a.wait_for(1)
        await anyio.sleep(0.1)
        assert [
            e.vscp_class for e in p.recorder_a.vscp() if e.vscp_class != 10 and e.vscp_class != 20
        ] == [30]
        assert got


async def test_out_only_link_lets_nothing_in(tmp_path: Any, tools: Any) -> None:
    async with (
        linked(tmp_path, tools, direction="out") as p,
        await tools.Wire.open(p.server_a.address) as client,
    ):
        await client.login()
        assert len(p.server_a.clients) == 2  # the link's send connection and this client
        for _ in range(3):
            assert await client.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB") == OK
        p.host_b.publish(vscp.Event(20, 3, b"\x00"), source="test")
        await p.recorder_a.wait_for(4)  # B's event reached A, after A's own three
        await anyio.sleep(0.2)
        assert [s for s, _ in p.recorder_b.events] == ["test"]  # nothing came in
        assert p.link.stats["received"] == 0
        assert not [n for n in p.host_b.points if n.count(".") > 1 and ".stats." not in n]


async def test_in_only_link_sends_nothing(tmp_path: Any, tools: Any) -> None:
    async with linked(tmp_path, tools, direction="in") as p:
        p.host_b.publish(vscp.Event(20, 3, b"\x00"), source="test")
        with pytest.raises(ioplex.WriteError, match="direction is 'in'"):
            await p.host_b.write("vscp.event", "0,20,3,,,,-,0")
        async with await tools.Wire.open(p.server_a.address) as client:
            await client.login()
            await client.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB")
            await p.recorder_b.wait_for(2)
        assert p.recorder_a.vscp()[0].vscp_class == 10 and len(p.recorder_a.vscp()) == 1


async def test_writing_vscp_event_sends_it(tmp_path: Any, tools: Any) -> None:
    async with linked(tmp_path, tools) as p, await tools.Wire.open(p.server_a.address) as client:
        await client.login()
        await p.host_b.write("vscp.event", "0,20,3,,,,-,0,1,35")
        line = (await client.reply("RETR")).split(b"\r\n")[0]
        assert line.startswith(b"0,20,3,") and line.endswith(b",0x00,0x01,0x23")
        with pytest.raises(
            ioplex.WriteError, match=r"vscp\.event: data byte 1 '0x1FF' is out of range"
        ):
            await p.host_b.write("vscp.event", "0,20,3,,,,-,0,0x1FF")
        with pytest.raises(ioplex.WriteError, match="at least 7 comma-separated fields"):
            await p.host_b.write("vscp.event", "hello")


async def test_the_server_restarts_under_a_live_link(tmp_path: Any, tools: Any) -> None:
    rec_b = tools.Recorder()
    async with anyio.create_task_group() as tg:
        a1 = await tools.Running.start(tg, tools.make_host(tmp_path / "a1", tools.server_config()))
        address = (await vscp.wait_server(a1.host)).address
        b = tools.make_host(
            tmp_path / "b",
            link_config(address, in_filter="0,10", in_mask="0,0xFFFF"),
            ("recorder", rec_b),
        )
        async with b:
            await b.wait_online("vscp")
            link = b.ioservers["vscp"].driver
            # host A stops: the link goes down ...
            await a1.stop()
            await wait_until(lambda: b.points["vscp.connection"].value == "offline")
            # ... and comes back on the same port: the link reconnects and sets its filter again
            a2 = tools.make_host(
                tmp_path / "a2", tools.server_config(listen=f"{address[0]}:{address[1]}")
            )
            async with a2:
                srv2 = await vscp.wait_server(a2)
                await b.wait_online("vscp", timeout=10)
                async with await tools.Wire.open(srv2.address) as client:
                    await client.login()
                    await client.reply("SEND 0,20,1,0,,,-,1")
                    await client.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB")
                    await rec_b.wait_for(1)
                    await anyio.sleep(0.1)
                    assert [e.vscp_class for e in rec_b.vscp()] == [10]
                    b.publish(vscp.Event(30, 1, b"\x01"), source="test")
                    with anyio.fail_after(5):
                        while (await client.reply("CDTA")) == b"0\r\n" + OK:
                            await anyio.sleep(0.01)
                    line = (await client.reply("RETR")).split(b"\r\n")[0]
                    # the send channel's id was asked again: it is the new server's
                    assert line.split(b",")[3] == str(link.tx_channel).encode()
                    assert srv2.clients[link.tx_channel].username == "admin"


async def test_a_silent_receive_loop_is_declared_dead(
    tmp_path: Any, tools: Any, caplog: Any
) -> None:
    # The server sends no keep-alive for 60 s; the link waits 0.3 s for a byte.
    async with linked(tmp_path, tools, server={"keepalive": 60}, dead_after=0.3) as p:
        await wait_until(lambda: max(p.server_a.clients, default=0) >= 4)  # reconnected
    assert "for 0.3 s in the receive loop: the link is dead" in caplog.text


async def test_noop_keeps_the_send_side_alive(tmp_path: Any, tools: Any) -> None:
    async with linked(
        tmp_path, tools, server={"idle_timeout": 0.5}, keepalive=0.1, direction="out"
    ) as p:
        channel = p.link.tx_channel
        await anyio.sleep(1.2)
        assert list(p.server_a.clients) == [channel]  # never idle long enough to be dropped


async def test_a_refused_login_is_retried_slowly_and_heals(
    tmp_path: Any, tools: Any, caplog: Any
) -> None:
    # The remote refuses the password for a while (restarted with an old user table, an
    # account locked), then accepts it again: the link comes back without a host restart.
    password = "s3cr3t-later"
    refusing = [{**tools.USERS[0], "password": "another"}]
    accepting = [{**tools.USERS[0], "password": password}]
    async with anyio.create_task_group() as tg:
        server = tools.make_host(tmp_path / "a", tools.server_config(users=refusing))
        running = await tools.Running.start(tg, server)
        port = (await vscp.wait_server(server)).address[1]
        config = link_config(("127.0.0.1", port))
        config["ioservers"]["vscp"]["password"] = password
        b = tools.make_host(tmp_path / "b", config)
        async with b:
            io = b.ioservers["vscp"]
            await wait_until(lambda: io.state is ioplex.State.RETRYING and bool(io.detail))
            assert "ioservers.vscp.user / .password" in io.detail
            assert "Invalid username or password" in io.detail
            await anyio.sleep(0.7)  # several slow retries (restart_max_delay 0.2 s)
            assert io.state is not ioplex.State.FAILED
            await running.stop()
            server = tools.make_host(
                tmp_path / "a2",
                tools.server_config(users=accepting, listen=f"127.0.0.1:{port}"),
            )
            running = await tools.Running.start(tg, server)
            await wait_until(lambda: io.online)
            await running.stop()
    assert password not in caplog.text
    refusals = [r for r in caplog.records if "refused the login" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]  # once, not per retry


async def test_link_config_errors_name_the_option(tmp_path: Any, tools: Any) -> None:
    with pytest.raises(ioplex.ConfigError) as info:  # before anything starts
        tools.make_host(tmp_path, link_config(("127.0.0.1", 1), out_filter="0,0x10000"))
    assert [str(p) for p in info.value.problems] == [
        "ioservers.vscp.options.out_filter: class '0x10000' is out of range 0..65535"
    ]


async def test_link_instances_are_listed_as_interfaces(tmp_path: Any, tools: Any) -> None:
    async with tools.running_server(tmp_path / "a") as (_a, srv):
        address = srv.address
        config = {**link_config(address), **tools.server_config()}
        b = tools.make_host(tmp_path / "b", config)
        async with b:
            await b.wait_online("vscp")
            server_b = await vscp.wait_server(b)
            async with await tools.Wire.open(server_b.address) as client:
                await client.login()
                listing = (await client.reply("INTERFACE LIST")).decode()
    assert (
        f",3,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00,ioplex link vscp to "
        f"{address[0]}:{address[1]} | Started at " in listing
    )
