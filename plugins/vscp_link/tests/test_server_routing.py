"""Who gets which event: other clients (never the sender), filters, rights, the host's bus."""

from __future__ import annotations

from typing import Any

import anyio
import ioplex
import ioplex_vscp_link as vscp
import pytest

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"
NO_RIGHTS = b"-OK - User does not have rights to perform this operation.\r\n"


async def test_an_event_goes_to_every_other_accepting_client_and_the_bus(
    tmp_path: Any, tools: Any
) -> None:
    recorder = tools.Recorder()
    async with tools.running_server(tmp_path, ("recorder", recorder)) as (host, server):
        W = tools.Wire
        async with (
            await W.open(server.address) as a,
            await W.open(server.address) as b,
            await W.open(server.address) as c,
        ):
            for w in (a, b, c):
                await w.login()
            # b takes class 20 only
            assert await b.reply("SFLT 0,20,0,-") == OK
            assert await b.reply("SMSK 0,0xFFFF,0,-") == OK
            assert await a.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB") == OK
            assert await a.reply("SEND 0,20,3,0,,,-,0,1,35") == OK
            assert await a.reply("CDTA") == b"0\r\n" + OK
            assert await b.reply("CDTA") == b"1\r\n" + OK
            assert (await b.reply("RETR")).startswith(b"0,20,3,1,")
            assert await c.reply("CDTA") == b"2\r\n" + OK
            seen = await recorder.wait_for(2)
            assert [(e.vscp_class, e.obid) for e in seen] == [(10, 1), (20, 1)]
            assert {source for source, _ in recorder.events} == {"plugin:vscp_link"}
            # An event from elsewhere on the host's bus reaches every client, the sender's too.
            host.publish(vscp.Event(20, 4, b"\x00\x01\x02", obid=1), source="elsewhere")
            with anyio.fail_after(5):
                while b"1" not in (await a.reply("CDTA")).split(b"\r\n")[0]:
                    await anyio.sleep(0.01)
            assert (await b.reply("RETR")).startswith(b"0,20,4,1,")
            # obid 0 ("unknown", e.g. from a link to a firmware daemon) is not anybody's
            # own: it reaches every client, unchanged.
            host.publish(vscp.Event(20, 5, b"\x00", obid=0), source="elsewhere")
            for w in (a, b):
                with anyio.fail_after(5):
                    while True:
                        got = await w.reply("RETR")
                        if not got.startswith(b"0,20,4,"):
                            break
                assert got.startswith(b"0,20,5,0,"), got
            await c.reply("CLRA")
            assert await c.reply("CDTA") == b"0\r\n" + OK


async def test_rights_of_users(tmp_path: Any, tools: Any) -> None:
    async with tools.running_server(tmp_path) as (_host, server):
        W = tools.Wire
        async with await W.open(server.address) as reader, await W.open(server.address) as writer:
            await reader.login("reader", "r3ad")
            await writer.login("writer", "wr1te")
            assert await reader.reply("SEND 0,10,6,0,,,-,1") == NO_RIGHTS
            assert await reader.reply("SGID -") == NO_RIGHTS
            assert await writer.reply("SFLT 0,0,0,-") == NO_RIGHTS
            assert await writer.reply("RETR") == NO_RIGHTS
            assert await writer.reply("RCVLOOP") == NO_RIGHTS
            assert await writer.reply("SEND 0,10,6,0,,,-,1") == OK
            assert (await reader.reply("RETR")).startswith(b"0,10,6,")
            # A user who may not receive gets nothing queued.
            assert await writer.reply("CDTA") == b"0\r\n" + OK


async def test_a_users_filter_applies_from_login(tmp_path: Any, tools: Any) -> None:
    users = [
        *tools.USERS,
        {"name": "temps", "password": "t", "filter": "0,10,6", "mask": "0,0xFFFF,0xFFFF"},
    ]
    async with tools.running_server(tmp_path, users=users) as (_host, server):
        W = tools.Wire
        async with await W.open(server.address) as a, await W.open(server.address) as t:
            await a.login()
            await t.login("temps", "t")
            await a.reply("SEND 0,10,5,0,,,-,1")
            await a.reply("SEND 0,10,6,0,,,-,2")
            got = await t.reply("RETR 5")
            assert got.startswith(b"0,10,6,") and got.count(b"\r\n") == 2


async def test_level1_over_level2_goes_to_the_addressed_client(tmp_path: Any, tools: Any) -> None:
    async with tools.running_server(tmp_path) as (_host, server):
        W = tools.Wire
        async with (
            await W.open(server.address) as a,
            await W.open(server.address) as b,
            await W.open(server.address) as c,
        ):
            for w in (a, b, c):
                await w.login()
            b_guid = (await b.reply("GGID")).split(b"\r\n")[0].decode()
            data = ",".join(f"0x{x}" for x in b_guid.split(":"))
            assert await a.reply(f"SEND 0,522,6,0,,,-,{data},0x88,0x81,0x00,0xEB") == OK
            assert await b.reply("CDTA") == b"1\r\n" + OK
            assert await c.reply("CDTA") == b"0\r\n" + OK


async def test_allow_list_and_client_limit(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path, allow=["10.0.0.0/8"]) as (_host, server),
        await tools.Wire.open(server.address, banner=False) as w,
    ):
        assert await w.line() == b"-OK - Invalid or unknown peer.\r\n"
        assert await w.closed()
    async with tools.running_server(tmp_path, allow=["127.0.0.0/8", "::1"], max_clients=1) as (
        _host,
        server,
    ):
        # Not logged in: the newcomer takes the first one's slot.
        async with (
            await tools.Wire.open(server.address) as first,
            await tools.Wire.open(server.address) as second,
        ):
            assert await first.closed()
            await second.login()
            # Every slot held by a logged-in client: a newcomer is refused.
            async with await tools.Wire.open(server.address, banner=False) as third:
                assert await third.line() == b"-OK - Error\r\n"
                assert await third.closed()
            assert await second.reply("NOOP") == OK
        assert server.refused == 1
        assert server.admission.evicted == 1


async def test_a_client_that_never_logs_in_is_let_go(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path, login_timeout=0.3) as (_host, server),
        await tools.Wire.open(server.address) as w,
    ):
        assert await w.closed(timeout=3)


async def test_config_errors_name_the_setting(tmp_path: Any, tools: Any) -> None:
    with pytest.raises(ioplex.ConfigError) as info:  # before anything starts
        tools.make_host(
            tmp_path,
            tools.server_config(users=[{"name": "a", "password": "p", "filter": "0,99999"}]),
        )
    assert [str(p) for p in info.value.problems] == [
        "plugins.vscp_link.server.users[0].filter: class '99999' is out of range 0..65535"
    ]
