"""Bad input and bad clients: the server answers, bounds, throttles, and serves the others."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"
PARAM = b"-OK - Invalid parameter or format\r\n"
UNKNOWN = b"-OK - Unknown command\r\n"
BAD_PASSWORD = b"-OK - Invalid username or password.\r\n"


async def test_an_overlong_line_is_answered_and_skipped(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as w,
    ):
        await w.login()
        await w.send(b"SEND " + b"1," * 5000 + b"\r\nNOOP\r\n")  # 10 KiB in one line
        assert await w.line() == PARAM
        assert await w.line() == OK
        # An endless line, arriving in pieces, is answered once and dropped as it comes.
        for _ in range(20):
            await w.send(b"X" * 4096)
        assert await w.line() == PARAM
        await w.send(b"still the same line\r\nCHID\r\n")
        assert await w.line() == b"1\r\n"
        assert await w.line() == OK
        assert (await w.reply("INFO")).startswith(b'0,1,0,"line longer than 8192 bytes"')


async def test_binary_garbage_gets_errors_not_a_crash(tmp_path: Any, tools: Any) -> None:
    garbage = bytes(range(256)) * 8 + b"\xff\xfe\x00\r\n"
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as w,
    ):
        await w.send(garbage)  # before login
        await w.send("NOOP")
        replies = (await w.until(OK)).split(b"\r\n")[:-1]
        assert replies[-1] == b"+OK - Success." and len(replies) == 1 + garbage.count(b"\n")
        assert set(replies[:-1]) <= {
            UNKNOWN[:-2],
            b"-OK - Need to log in to perform this command.",
        }
        await w.login()
        await w.send(garbage)
        await w.send("NOOP")
        replies = (await w.until(OK)).split(b"\r\n")[:-1]
        assert set(replies[:-1]) == {UNKNOWN[:-2]}


async def test_513_data_bytes_are_refused_512_taken(tmp_path: Any, tools: Any) -> None:
    async with (
        tools.running_server(tmp_path) as (_host, server),
        await tools.Wire.open(server.address) as a,
        await tools.Wire.open(server.address) as b,
    ):
        await a.login()
        await b.login()
        data = ",".join(["0xAA"] * 513)
        assert await a.reply(f"SEND 0,1024,1,0,,,-,{data}") == PARAM
        assert (await a.reply("INFO")).startswith(
            b'0,1,0,"SEND: an event carries at most 512 data bytes, got 513"'
        )
        assert await a.reply(f"SEND 0,1024,1,0,,,-,{data[5:]}") == OK
        line = (await b.reply("RETR")).split(b"\r\n")[0]
        assert line.count(b",0xAA") == 512
        assert await b.reply("CDTA") == b"0\r\n" + OK


async def test_send_before_login_delivers_nothing(tmp_path: Any, tools: Any) -> None:
    recorder = tools.Recorder()
    async with (
        tools.running_server(tmp_path, ("recorder", recorder)) as (_host, server),
        await tools.Wire.open(server.address) as a,
        await tools.Wire.open(server.address) as b,
    ):
        await b.login()
        assert (
            await a.reply("SEND 0,10,6,0,,,-,1")
            == b"-OK - Need to log in to perform this command.\r\n"
        )
        assert await b.reply("CDTA") == b"0\r\n" + OK
        await anyio.sleep(0.05)
        assert recorder.vscp() == []


async def _guess(address: tuple[str, int], tools: Any, password: str = "guess") -> float:
    """One login attempt that fails; return how long the answer took."""
    async with await tools.Wire.open(address) as w:
        await w.reply("USER admin")
        started = time.monotonic()
        assert await w.reply(f"PASS {password}", timeout=10) == BAD_PASSWORD
        took = time.monotonic() - started
        assert await w.closed()
    return took


async def test_wrong_passwords_are_answered_at_once_then_the_network_is_locked_out(
    tmp_path: Any, tools: Any
) -> None:
    async with tools.running_server(
        tmp_path, auth_free_failures=3, auth_lockout=0.4, auth_max_lockout=0.4
    ) as (_host, server):
        took = [await _guess(server.address, tools) for _ in range(3)]
        assert max(took) < 0.2, took  # nobody waits holding a connection
        # Locked out now: even the right password is refused, unchecked.
        assert await _guess(server.address, tools, "secret") < 0.2
        assert (server.throttle.failures, server.throttle.refused) == (3, 1)
        await anyio.sleep(0.45)
        async with await tools.Wire.open(server.address) as w:
            await w.login()  # the lockout ended
        assert server.throttle.failures_of("127.0.0.1") == 0  # and a good login clears it


async def test_a_thousand_wrong_passwords_while_others_are_served(
    tmp_path: Any, tools: Any
) -> None:
    async with tools.running_server(tmp_path, auth_lockout=0.05, auth_max_lockout=0.2) as (
        _host,
        server,
    ):
        good_latencies: list[float] = []
        done = anyio.Event()

        async def attacker() -> None:
            for _ in range(1000):
                await _guess(server.address, tools)
            done.set()

        async def good_client() -> None:
            # Logged in from the very address that is guessing: never locked out.
            async with await tools.Wire.open(server.address) as w:
                await w.login()
                while not done.is_set():
                    started = time.monotonic()
                    assert await w.reply("SEND 0,10,6,0,,,-,1") == OK
                    good_latencies.append(time.monotonic() - started)
                    await anyio.sleep(0.01)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(attacker)
                tg.start_soon(good_client)
        throttle = server.throttle
        assert throttle.failures + throttle.refused == 1000  # each checked or refused once
        assert throttle.failures < 100  # most refused unchecked while locked out
        assert len(good_latencies) > 10
        assert max(good_latencies) < 1.0, max(good_latencies)
        # A new login from that address waits out the lockout (at most auth_max_lockout).
        await anyio.sleep(0.25)
        async with await tools.Wire.open(server.address) as w:
            await w.login()


async def test_a_client_that_never_reads_loses_its_oldest_events_only(
    tmp_path: Any, tools: Any
) -> None:
    # 6000 events of about 2.6 KB: far more than the socket buffers between the server and
    # a client that does not read (a few MB on loopback) can hold.
    count = 6000
    line = "SEND 0,1024,1,0,,,-," + ",".join(["0x55"] * 500) + "\r\n"
    async with tools.running_server(tmp_path, queue_size=1000) as (_host, server):
        W = tools.Wire
        async with (
            await W.open(server.address) as sender,
            await W.open(server.address) as stuck,
            await W.open(server.address) as reader,
        ):
            for w in (sender, stuck, reader):
                await w.login()
            await stuck.reply("RCVLOOP")
            await reader.reply("RCVLOOP")
            received = 0

            async def read_events() -> None:
                nonlocal received
                while received < count:
                    if (await reader.line(timeout=20)).startswith(b"0,1024,1,"):
                        received += 1

            async def send_events() -> None:
                await sender.send((line * count).encode())

            async def read_oks() -> None:
                for _ in range(count):
                    assert await sender.line(timeout=20) == OK

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_events)
                    tg.start_soon(send_events)
                    tg.start_soon(read_oks)
            assert received == count  # the reading client got every event, in time
            stuck_session = next(s for s in server.clients.values() if s.channel == 2)
            assert stuck_session.overruns > 0
            # The stuck client comes back: what reached its socket, then its statistics.
            await stuck.send("QUITLOOP")
            await stuck.until(b"+OK - Quit receive loop.\r\n", timeout=20)
            stat = (await stuck.reply("STAT")).split(b"\r\n")[0].split(b",")
            assert int(stat[2]) == stuck_session.overruns > 0
            assert int(stat[4]) == count  # every event was queued for it (and the oldest dropped)
