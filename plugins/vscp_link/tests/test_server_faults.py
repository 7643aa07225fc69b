"""Faults and floods on real sockets: what a hostile or broken client can and cannot do.

Each of these broke the server before it used `ioplex.serving` (issue 9): idle connections
locked good clients out, HELP before login grew memory without bound, dribbling one byte at
a time kept a connection for ever, wrong passwords held connection slots for seconds, and
running out of file descriptors restarted the service, dropping every logged-in client.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"
BAD_PASSWORD = b"-OK - Invalid username or password.\r\n"
LOGGER = "ioplex.plugin.vscp_link.server"
DROPPED = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


def rss() -> int:
    """This process's resident set size, in bytes (/proc/self/status VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_64_idle_connections_do_not_lock_out_a_good_client(tmp_path: Any, tools: Any) -> None:
    async with tools.running_server(tmp_path) as (_host, server):  # default caps
        idle = [await anyio.connect_tcp(*server.address) for _ in range(64)]
        try:
            with anyio.fail_after(5):
                while server.admission.evicted < 64 - 8:  # all were seen
                    await anyio.sleep(0.01)
            started = time.monotonic()
            async with await tools.Wire.open(server.address) as good:
                await good.login()
                took = time.monotonic() - started
                assert await good.reply("NOOP") == OK
            assert took < 1.0, took
            assert server.refused == 0
        finally:
            for stream in idle:
                await stream.aclose()


async def test_a_help_flood_before_login_is_bounded(tmp_path: Any, tools: Any) -> None:
    chunk = b"HELP\r\n" * 10923  # 64 KiB that ask for 12 MB of answers
    sent = 0
    # A per-network cap above the flood, so that each connection meets its budget.
    async with tools.running_server(tmp_path, max_unauthenticated=32) as (_host, server):
        baseline = peak = rss()
        flooding = True

        async def sample() -> None:
            nonlocal peak
            while flooding:
                peak = max(peak, rss())
                await anyio.sleep(0.02)

        async def flood(stream: Any) -> None:
            nonlocal sent
            try:
                for _ in range(32):  # 2 MB, never reading a byte
                    with anyio.fail_after(10):
                        await stream.send(chunk)
                    sent += len(chunk)
            except DROPPED:
                pass  # closed by the server: the point

        streams = [await anyio.connect_tcp(*server.address) for _ in range(20)]
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                async with anyio.create_task_group() as attackers:
                    for stream in streams:
                        attackers.start_soon(flood, stream)
                # Every connection closed at its pre-login budget, while its client still
                # holds it open and never reads.
                with anyio.fail_after(10):
                    while server.clients:
                        await anyio.sleep(0.02)
                flooding = False
        finally:
            for stream in streams:
                await stream.aclose()
        growth = peak - baseline
        assert growth < 50 * 2**20, f"RSS grew {growth / 2**20:.0f} MB"
        assert server.admission.connections == 0
        assert server.over_budget == 20
        # The whole flood was not even read: the server stopped at the budget.
        assert sent < 20 * 32 * len(chunk)
        async with await tools.Wire.open(server.address) as good:
            await good.login()


async def test_dribblers_are_cut_at_the_absolute_login_deadline(tmp_path: Any, tools: Any) -> None:
    async with tools.running_server(tmp_path, login_timeout=1.0, max_unauthenticated=20) as (
        _host,
        server,
    ):
        lasted: list[float] = []

        async def dribble() -> None:
            stream = await anyio.connect_tcp(*server.address)
            started = time.monotonic()

            async def trickle() -> None:
                try:
                    for byte in b"USER admin" * 100:  # a byte every 0.1 s, never a line end
                        await stream.send(bytes([byte]))
                        await anyio.sleep(0.1)
                except DROPPED:
                    pass

            async with stream, anyio.create_task_group() as tg:
                tg.start_soon(trickle)
                try:
                    with anyio.fail_after(5):
                        while await stream.receive():
                            pass
                except DROPPED:
                    pass
                lasted.append(time.monotonic() - started)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(dribble)
        assert len(lasted) == 10
        assert all(0.9 <= t < 2.0 for t in lasted), lasted
        assert not server.clients
        assert server.login_timeouts == 10


async def test_a_wrong_password_flood_holds_no_slot_and_locks_out_no_session(
    tmp_path: Any, tools: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    async with tools.running_server(tmp_path) as (_host, server):
        answers: list[float] = []
        flood_done = anyio.Event()

        async def guess(i: int) -> None:
            async with await tools.Wire.open(server.address) as w:
                await w.reply("USER admin")
                started = time.monotonic()
                assert await w.reply(f"PASS wrong{i}", timeout=10) == BAD_PASSWORD
                answers.append(time.monotonic() - started)
                assert await w.closed()

        async def attacker() -> None:
            limit = anyio.CapacityLimiter(50)

            async def one(i: int) -> None:
                async with limit:
                    await guess(i)

            async with anyio.create_task_group() as tg:
                for i in range(300):
                    tg.start_soon(one, i)
            flood_done.set()

        async with (
            await tools.Wire.open(server.address) as sender,
            await tools.Wire.open(server.address) as reader,
        ):
            await sender.login()  # from the very address that is guessing
            await reader.login("reader", "r3ad")
            sent = 0
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(attacker)
                    while not flood_done.is_set():
                        started = time.monotonic()
                        assert await sender.reply("SEND 0,10,6,0,,,-,1") == OK
                        assert time.monotonic() - started < 1.0
                        sent += 1
                        await anyio.sleep(0.02)
            assert len(answers) == 300
            assert max(answers) < 1.0, max(answers)  # answered at once, never held
            with anyio.fail_after(1):  # every guesser's slot is free again at once
                while len(server.clients) > 2 or server.admission.connections > 2:
                    await anyio.sleep(0.01)
            assert await reader.reply("CDTA") == f"{sent}\r\n".encode() + OK
            assert await sender.reply("CHID") == b"1\r\n" + OK
        throttle = server.throttle
        assert throttle.failures + throttle.refused == 300
        lines = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
        assert len(lines) <= 3, [r.getMessage() for r in lines]  # a summary, not 300 lines


async def test_clients_vanishing_mid_command_are_debug_lines(
    tmp_path: Any, tools: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "ioplex")
    big = ",".join(["0x55"] * 500)
    async with (
        tools.running_server(tmp_path, queue_size=100) as (_host, server),
        await tools.Wire.open(server.address) as sender,
    ):
        await sender.login()
        for _ in range(100):  # a queue full of big events for every newcomer
            await sender.send(f"SEND 0,1024,1,0,,,-,{big}")
        for _ in range(100):
            assert await sender.line() == OK

        async def vanish(i: int) -> None:
            stream = await anyio.connect_tcp(*server.address)
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            # Reset, not FIN, when closed: the server's next read or write fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.send(b"USER admin\r\nPASS secret\r\n")
            if i % 2:
                await stream.send(b"RETR 100\r\n")  # a 270 KB answer it never reads
            else:
                await stream.send(b"SEND 0,1024,1,0,,,-," + big[: i * 37].encode())
            await anyio.sleep(0.01 * (i % 5))
            await stream.aclose()

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(vanish, i)
        with anyio.fail_after(5):
            while len(server.clients) > 1:
                await anyio.sleep(0.01)
        assert await sender.reply("NOOP") == OK
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
    assert any("gone" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


# --- out of file descriptors, in a host of its own ------------------------------------------

HOST_CONFIG = """
[host]
data_dir = "{data}"

[plugins.vscp_link.server]
enabled = true
listen = "127.0.0.1:0"
# Caps far above the descriptor limit, so that the connections really exhaust it.
max_clients = 5000
max_unauthenticated = 5000
login_timeout = 600

[[plugins.vscp_link.server.users]]
name = "admin"
password = "secret"
"""


FILE_LIMIT = 256


class HostProcess:
    """`ioplex run` in a subprocess with RLIMIT_NOFILE 256, its stderr collected."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "IOPLEX_LOAD_PLUGINS": "vscp_link", "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "ioplex", "run", str(config), "--log-level", "info"]
        prlimit = shutil.which("prlimit")  # util-linux: the limit is set before Python starts
        if prlimit:
            command = [prlimit, f"--nofile={FILE_LIMIT}:{FILE_LIMIT}", *command]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        if not prlimit:  # soft and hard together: the host cannot raise it again
            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    async def port(self) -> int:
        with anyio.fail_after(30):
            while True:
                for line in self.lines:
                    found = re.search(r"vscp_link server listening on 127\.0\.0\.1:(\d+)", line)
                    if found:
                        return int(found.group(1))
                assert self.proc.poll() is None, "\n".join(self.lines)
                await anyio.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)


async def test_out_of_file_descriptors_the_service_waits_and_keeps_its_clients(
    tmp_path: Path, tools: Any
) -> None:
    config = tmp_path / "host.toml"
    config.write_text(HOST_CONFIG.format(data=tmp_path / "data"), encoding="utf-8")
    host = HostProcess(config)
    flood: list[Any] = []
    try:
        address = ("127.0.0.1", await host.port())
        async with await tools.Wire.open(address) as good:
            await good.login()
            channel = await good.reply("CHID")
            for _ in range(400):
                flood.append(await anyio.connect_tcp(*address))
            await anyio.sleep(3)  # the host runs out of descriptors and waits
            assert host.proc.poll() is None
            assert await good.reply("NOOP") == OK  # same session: never restarted
            assert await good.reply("CHID") == channel
            for stream in flood:
                await stream.aclose()
            flood.clear()
            started = time.monotonic()
            with anyio.fail_after(10):
                while True:  # accepting again once the descriptors are free
                    try:
                        async with await tools.Wire.open(address, banner=False) as late:
                            banner = await late.until(b"\r\n+OK", timeout=1)
                            assert b"Welcome" in banner
                            await late.line()
                            await late.login()
                            break
                    except (TimeoutError, *DROPPED):
                        await anyio.sleep(0.1)
            took = time.monotonic() - started
            assert await good.reply("CHID") == channel
        assert took < 5.0, took
        await anyio.sleep(0.5)
        text = "\n".join(host.lines)
        assert len(host.lines) < 100, text[-3000:]
        assert "Too many open files" in text  # seen, and said once
        assert "retry" not in text and "Traceback" not in text, text[-3000:]
    finally:
        for stream in flood:
            await stream.aclose()
        host.stop()
