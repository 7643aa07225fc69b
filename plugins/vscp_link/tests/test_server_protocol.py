"""Golden transcripts of the server interface: the exact strings of vscpd (notes §1-§3)."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"
NEED_LOGIN = b"-OK - Need to log in to perform this command.\r\n"
PARAM = b"-OK - Invalid parameter or format\r\n"
GUID_RE = rb"(?:[0-9A-F]{2}:){15}[0-9A-F]{2}"


async def test_banner_ends_with_ok_and_lines_end_in_crlf(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address, banner=False) as wire,
    ):
        banner = await wire.until(OK)
        lines = banner.split(b"\r\n")
        assert lines[-2:] == [b"+OK - Success.", b""]
        assert all(b"\n" not in line for line in lines)  # CRLF only
        assert not any(line.startswith((b"+OK", b"-OK")) for line in lines[:-2])
        assert await wire.reply("NOOP") == OK
        await wire.send(b"noop\n")  # a bare LF is taken too, and case does not matter
        assert await wire.line() == OK


async def test_login_and_the_link_command_set(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as wire,
    ):
        for command in (
            "SEND 0,20,3,,,,-,0,1,35",
            "RETR",
            "RCVLOOP",
            "CDTA",
            "CHKDATA",
            "CLRA",
            "CLRALL",
            "STAT",
            "INFO",
            "CHID",
            "GETCHID",
            "SGID -",
            "SETGUID -",
            "GGID",
            "GETGUID",
            "SFLT 0,0,0,-",
            "SETFILTER 0,0,0,-",
            "SMSK 0,0,0,-",
            "SETMASK 0,0,0,-",
            "INTERFACE LIST",
            "TEST",
            "RESTART",
            "SHUTDOWN",
            "MEASUREMENT 0,0,6,23.5",
        ):
            assert await wire.reply(command) == NEED_LOGIN, command
        # What needs no login:
        assert await wire.reply("VERSION") == b"15,1,1,0\r\n" + OK
        assert await wire.reply("VERS") == b"15,1,1,0\r\n" + OK
        assert await wire.reply("WCYD") == b"20-00-00-00-00-00-80-20\r\n" + OK
        assert await wire.reply("WHATCANYOUDO") == b"20-00-00-00-00-00-80-20\r\n" + OK
        assert await wire.reply("PASS secret") == (
            b"-OK - Need a Username before a password can be entered.\r\n"
        )
        assert await wire.reply("USER") == PARAM
        assert await wire.reply("USER admin") == b"+OK - User name accepted, password please\r\n"
        assert await wire.reply("PASS secret") == OK
        assert await wire.reply("USER admin") == OK  # already logged in
        assert await wire.reply("INFO") == b'0,0,0,""\r\n' + OK
        assert await wire.reply("CHID") == b"1\r\n" + OK
        assert await wire.reply("GETCHID") == b"1\r\n" + OK
        guid = await wire.reply("GGID")
        assert re.fullmatch(GUID_RE + rb"\r\n" + re.escape(OK), guid)
        assert guid[36:47] == b"00:01:00:00"  # the channel id in bytes 12-13
        assert await wire.reply("SETGUID 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff") == OK
        assert (
            await wire.reply("GETGUID")
            == b"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" + OK
        )
        assert await wire.reply("SGID 00:11") == PARAM
        assert await wire.reply("CDTA") == b"0\r\n" + OK
        assert await wire.reply("CHECKDATA") == b"0\r\n" + OK
        assert await wire.reply("CLRA") == b"+OK - All events cleared.\r\n"
        assert await wire.reply("CLEARALL") == b"+OK - All events cleared.\r\n"
        assert await wire.reply("STAT") == b"0,0,0,0,0,0,0\r\n" + OK
        # INFO's error string says what the last refused command got wrong.
        assert (await wire.reply("INFO")).startswith(b"0,1,0,\"SETGUID: GUID '00:11' has 2 bytes")
        assert (
            await wire.reply("SFLT 1,0x0000,0x0006,ff:ff:ff:ff:ff:ff:ff:01:00:00:00:00:00:00:00:00")
            == OK
        )
        assert (
            await wire.reply(
                "SMSK 0x0f,0xffff,0x00ff,ff:ff:ff:ff:ff:ff:ff:01:00:00:00:00:00:00:00:00"
            )
            == OK
        )
        assert await wire.reply("SETFILTER 0,0,0") == PARAM  # all four fields, as vscpd
        assert await wire.reply("SETMASK 0,0,0,-") == OK
        assert await wire.reply("RETR") == b"-OK - No event(s) available\r\n"
        assert await wire.reply("TEST") == OK
        assert await wire.reply("BINARY") == b"-OK - Binary mode not supported\r\n"
        assert await wire.reply("FOO bar") == b"-OK - Unknown command\r\n"
        # vscpd matches command words by prefix: NOOPX is NOOP, CLRALLX is CLRA.
        assert await wire.reply("NOOPX") == OK
        assert await wire.reply("clrallx") == b"+OK - All events cleared.\r\n"
        assert await wire.reply("XNOOP") == b"-OK - Unknown command\r\n"
        challenge = await wire.reply("CHALLENGE abc")
        assert re.fullmatch(rb"\+OK - [0-9A-F]{32}\r\n", challenge)
        help_text = await wire.reply("HELP")
        assert help_text.endswith(b"\r\n" + OK) and b"RCVLOOP" in help_text
        assert await wire.reply("QUIT") == b"+OK - Connection closed by client.\r\n"
        assert await wire.closed()


async def test_short_aliases_and_exit(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as wire,
    ):
        await wire.login()
        assert await wire.reply("retrieve 2") == b"-OK - No event(s) available\r\n"
        assert (await wire.reply("client list")).endswith(OK)
        assert await wire.reply("EXIT") == b"+OK - Connection closed by client.\r\n"
        assert await wire.closed()


async def test_a_bad_password_is_answered_and_the_connection_closed(
    tmp_path: Any, tools: Any
) -> None:
    async with tools.running_server(tmp_path) as (_host, server):
        async with await tools.Wire.open(server.address) as wire:
            await wire.reply("USER admin")
            assert await wire.reply("PASS wrong") == b"-OK - Invalid username or password.\r\n"
            assert await wire.closed()
        async with await tools.Wire.open(server.address) as wire:
            await wire.reply("USER nobody")
            assert await wire.reply("PASS secret") == b"-OK - Invalid username or password.\r\n"
            assert await wire.closed()
        async with await tools.Wire.open(server.address) as wire:
            await wire.reply("USER admin")
            await wire.send("PASS")  # an empty password: parameter error, then closed
            assert await wire.line() == PARAM
            assert await wire.closed()


async def test_send_retr_and_the_event_line_out(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as a,
        await tools.Wire.open(server.address) as b,
    ):
        await a.login()
        await b.login()
        assert await a.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB") == OK
        assert (
            await a.reply(
                "SEND 96,20,3,0,2001-11-02T18:00:01,1234,"
                "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F,0,1,35"
            )
            == OK
        )
        assert await b.reply("CDTA") == b"2\r\n" + OK
        got = await b.reply("RETR 3")
        lines = got.split(b"\r\n")
        # The sender's fields filled in: obid = its channel (1), datetime and timestamp
        # now, GUID its interface GUID; written in the legacy dialect with 0x%02X data.
        assert re.fullmatch(
            rb"0,10,6,1,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,\d+," + GUID_RE + rb",0x88,0x81,0x00,0xEB",
            lines[0],
        ), lines[0]
        assert lines[0].split(b",")[6].endswith(b"00:01:00:00")
        assert lines[1] == (
            b"96,20,3,1,2001-11-02T18:00:01Z,1234,"
            b"00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F,0x00,0x01,0x23"
        )
        assert lines[2:] == [b"-OK - No event(s) available", b""]  # ran dry: no +OK
        assert await a.reply("CDTA") == b"0\r\n" + OK  # never back to the sender
        assert await a.reply("STAT") == b"0,0,0,0,0,7,2\r\n" + OK
        assert await b.reply("STAT") == b"0,0,0,7,2,0,0\r\n" + OK


async def test_rcvloop_sends_only_event_lines_and_ok(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path, keepalive=0.2) as (_host, server),
        await tools.Wire.open(server.address) as a,
        await tools.Wire.open(server.address) as b,
    ):
        await a.login()
        await b.login()
        assert await b.reply("RCVLOOP") == b"+OK - Receive loop entered. QUITLOOP to terminate.\r\n"
        assert await b.line() == b"+OK\r\n"  # a keep-alive when idle
        await a.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB")
        line = await b.line()
        assert line.startswith(b"0,10,6,1,") and line.endswith(b",0x88,0x81,0x00,0xEB\r\n")
        # In the loop, commands that would answer anything but +OK are not answered.
        await b.send("CHID")
        await b.send("FOO")
        await b.send("NOOP")
        assert await b.line() == OK
        await b.send("QUITLOOP")
        rest = await b.until(b"+OK - Quit receive loop.\r\n")
        assert all(x == b"+OK" for x in rest.split(b"\r\n")[:-2])  # at most keep-alives
        assert await b.reply("CHID") == b"2\r\n" + OK  # commands again after the loop


async def test_interface_list(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as a,
        await tools.Wire.open(server.address),
    ):
        await a.login()
        lines = (await a.reply("INTERFACE LIST")).split(b"\r\n")
        assert lines[-2:] == [b"+OK - Success.", b""]
        assert len(lines) == 4  # two clients, no count line
        for channel, line in zip((1, 2), lines[:2], strict=True):
            assert re.fullmatch(
                rb"%d,5," % channel  # 5: tcp/ip client in vscpd
                + GUID_RE
                + rb",tcp/ip client 127\.0\.0\.1:\d+ \| "
                + rb"Started at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                line,
            ), line


NOT_HERE = b"-OK - Command is not supported here.\r\n"


async def test_vscpd_extras_repeat_restart_shutdown(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as a,
        await tools.Wire.open(server.address) as b,
    ):
        assert await a.reply("+") == PARAM  # nothing to repeat yet
        await a.login()
        await b.login()
        assert await a.reply("RESTART") == NOT_HERE
        assert await a.reply("shutdown now") == NOT_HERE
        assert await a.reply("SEND 0,20,3,0,,,-,0,1,35") == OK
        assert await a.reply("+") == OK  # the SEND again
        assert await a.reply("CHID") == b"1\r\n" + OK
        assert await a.reply("+2") == OK  # the second last: the SEND
        assert await a.reply("+ 1") == OK  # the last: that SEND again
        assert await a.reply("+99") == PARAM
        assert await a.reply("++") == PARAM
        assert await b.reply("CDTA") == b"4\r\n" + OK
        assert a is not b and len(server.clients) == 2  # nobody restarted anything


async def test_send_with_an_overflowing_datetime_is_a_parameter_error(
    tmp_path: Any, tools: Any
) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as a,
    ):
        await a.login()
        for when in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            assert await a.reply(f"SEND 0,10,6,0,{when},0,-") == PARAM
            info = await a.reply("INFO")
            assert info.startswith(b'0,1,0,"SEND: datetime') and b"outside" in info, info
        assert await a.reply("SEND 0,10,6,0,0001-01-01T00:00:00Z,0,-") == OK
        assert await a.reply("NOOP") == OK  # the session lives on


MEASUREMENTS = [
    # (command argument, class, type, data) as vscpd builds them (notes §5)
    ("float,level1,6,23.5", 10, 6, bytes.fromhex("A0 41BC0000")),
    ("0,0,6,23.5,1,,2", 10, 6, bytes.fromhex("AA 41BC0000")),
    ("string,0,6,23.5,1", 10, 6, b"\x48" + b"23.5"),
    ("1,0,6,-1234.5678", 10, 6, b"\x40" + b"-1234.6"),
    (
        "float,level2,6,23.5,1,,3,4,5",
        1060,
        6,
        bytes([3, 4, 5, 1]) + bytes.fromhex("4037800000000000"),
    ),
    ("0,1,6,23.5", 1060, 6, bytes([0, 0, 0, 0]) + bytes.fromhex("4037800000000000")),
    ("string,2,6,23.5,1,,3,4,5", 1040, 6, bytes([3, 4, 5, 1]) + b"23.500000"),
    (
        "float,0,6,23.5,1,,0,,,00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
        522,
        6,
        bytes.fromhex("00112233445566778899AABBCCDDEEFF A8 41BC0000"),
    ),
]


async def test_measurement_builds_the_measurement_event(tmp_path: Any, tools: Any) -> None:
    import ioplex_vscp_link as vscp

    recorder = tools.Recorder()
    async with (
        tools.running_server(tmp_path, ("recorder", recorder)) as (_host, server),
        await tools.Wire.open(server.address) as a,
        await tools.Wire.open(server.address) as b,
    ):
        await a.login()
        await b.login()
        own_guid = (await a.reply("GGID")).split(b"\r\n")[0].decode()
        for arg, _, _, _ in MEASUREMENTS:
            assert await a.reply(f"MEASUREMENT {arg}") == OK, arg
        for arg in (
            "0,0,6",  # no value
            "double,0,6,1",
            "0,3,6,1",
            "0,0,6,abc",
            "0,0,6,nan",
            "0,0,6,1e999",
            "0,0,6,1e39",  # no 32-bit float
            "0,0,6,1,4",  # Level I units are 0-3
            "0,0,6,1,0,-,8",  # Level I sensor indexes are 0-7
            "0,0,300,1",
            "0,1,6,1,256",
            "0,0,6,1,0,zz",
        ):
            assert await a.reply(f"MEASUREMENT {arg}") == PARAM, arg
        got = await recorder.wait_for(len(MEASUREMENTS))
        assert [(e.vscp_class, e.vscp_type, e.data) for e in got] == [
            (c, t, d) for _, c, t, d in MEASUREMENTS
        ]
        assert {e.obid for e in got} == {1}  # the sender's channel, as for SEND
        assert {vscp.format_guid(e.guid) for e in got} == {own_guid}
        lines = (await b.reply("RETR 20")).split(b"\r\n")
        assert len(lines) == len(MEASUREMENTS) + 2
        assert lines[0].startswith(b"96,10,6,1,")  # Level I: head = normal priority
        assert lines[4].startswith(b"0,1060,6,1,")
