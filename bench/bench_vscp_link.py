"""Speed of the vscp_link plugin: events per second, with a baseline from the same run.

    python bench/bench_vscp_link.py [--events N]

1. Server interface: one client SENDs N events, pipelined, and another client in RCVLOOP
   receives them; versus a bare asyncio line relay (readline, write) between two sockets fed
   by the same clients. The clients run in a process of their own, so that the figures are
   the server's. Goals: at least 0.3 of the bare relay and at least 50,000 events/s.
2. Link driver: events published on host A's VSCP bus, carried by A's link driver to host B's
   server interface and onto B's bus; events per second until B has seen them all.
3. Link driver to a vscpd-like server (the tests' strict peer: one command per TCP read),
   one SEND in flight, versus a bare asyncio client doing the same one-in-flight SEND loop
   against the same peer in the same run. Goal: at least 0.8 of the bare client.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import ioplex
import ioplex_vscp_link as vscp

PEER_FILE = Path(__file__).parent.parent / "plugins" / "vscp_link" / "tests" / "strict_peer.py"


def _strict_peer() -> Any:
    """The tests' strict peer module (a file, not an installed package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vscp_strict_peer", PEER_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


EVENT = "SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB\r\n"


# --- the clients (run in a child process) --------------------------------------------------


class _Counter(asyncio.Protocol):
    def __init__(self, want: int, skip: bytes | None) -> None:
        self.want = want
        self.lines = 0
        self.skip = skip
        self.done = asyncio.get_running_loop().create_future()
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        cut = self.buffer.rfind(b"\n") + 1
        complete, self.buffer = self.buffer[:cut], self.buffer[cut:]
        n = complete.count(b"\n")
        if self.skip:  # keep-alives and status lines are not events
            n -= complete.count(self.skip)
        self.lines += n
        if self.lines >= self.want and not self.done.done():
            self.done.set_result(time.perf_counter())


async def _clients(address: tuple[str, int], count: int, login: bool) -> float:
    loop = asyncio.get_running_loop()
    recv_reader, recv_writer = await asyncio.open_connection(*address)
    send_reader, send_writer = await asyncio.open_connection(*address)
    if login:
        for reader, writer in ((recv_reader, recv_writer), (send_reader, send_writer)):
            await reader.readuntil(b"+OK - Success.\r\n")
            writer.write(b"USER bench\r\nPASS bench\r\n")
            await reader.readuntil(b"+OK - Success.\r\n")
        recv_writer.write(b"RCVLOOP\r\n")
        await recv_reader.readuntil(b"terminate.\r\n")
    # Count the receiver's lines in a protocol (cheaper than readline in the client).
    sock = recv_writer.transport.get_extra_info("socket").dup()
    recv_writer.transport.pause_reading()
    _, counter = await loop.create_connection(
        lambda: _Counter(count, b"+OK" if login else None), sock=sock
    )
    replies = asyncio.ensure_future(_drain_replies(send_reader, count if login else 0))
    blob = (EVENT * 1000).encode()
    started = time.perf_counter()
    for _ in range(count // 1000):
        send_writer.write(blob)
        await send_writer.drain()
    finished = await asyncio.wait_for(counter.done, 120)
    await replies
    for writer in (recv_writer, send_writer):
        writer.close()
    return count / (finished - started)


async def _drain_replies(reader: asyncio.StreamReader, count: int) -> None:
    seen = 0
    while seen < count:
        seen += (await reader.read(1 << 20)).count(b"\n")


def _client_process(address: tuple[str, int], count: int, login: bool, out: Any) -> None:
    out.send(asyncio.run(_clients(address, count, login)))


def _measure_clients(address: tuple[str, int], count: int, login: bool) -> tuple[Any, Any]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=_client_process, args=(address, count, login, child)
    )
    process.start()
    return process, parent


async def _await_clients(process: Any, pipe: Any) -> float:
    while not pipe.poll():
        await anyio.sleep(0.01)
    rate = pipe.recv()
    process.join()
    return float(rate)


# --- 1. the bare relay and the server --------------------------------------------------------


async def bare_relay(count: int) -> float:
    """Lines from the first connection to the second, with asyncio streams and readline."""
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    both = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append((reader, writer))
        if len(connections) == 2:
            both.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    address = server.sockets[0].getsockname()[:2]
    process, pipe = _measure_clients(address, count, login=False)
    await both.wait()
    (_, out), (source, _) = connections  # the receiver connects first
    while True:
        line = await source.readline()
        if not line:
            break
        out.write(line)
        if out.transport.get_write_buffer_size() > 1 << 20:
            await out.drain()
    rate = await _await_clients(process, pipe)
    server.close()
    return rate


async def server_relay(count: int, tmp: Path) -> float:
    config = {
        "host": {"data_dir": str(tmp / "server")},
        "plugins": {
            "vscp_link": {
                "server": {
                    "enabled": True,
                    "listen": "127.0.0.1:0",
                    "queue_size": count + 10,
                    "users": [{"name": "bench", "password": "bench"}],
                }
            }
        },
    }
    host = ioplex.Host.from_config(
        config, plugins=ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "vscp_link"})
    )
    async with host:
        server = await vscp.wait_server(host)
        process, pipe = _measure_clients(server.address, count, login=True)
        return await _await_clients(process, pipe)


# --- 2. the link driver ---------------------------------------------------------------------


class _Count:
    def __init__(self) -> None:
        self.n = 0

    @ioplex.hookimpl
    def on_event(self, host: Any, source: str, event: Any) -> None:
        self.n += 1


async def link(count: int, tmp: Path) -> tuple[float, int]:
    plugins = ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "vscp_link"})
    seen = _Count()
    plugins.register(seen, "count")
    b = ioplex.Host.from_config(
        {
            "host": {"data_dir": str(tmp / "b")},
            "plugins": {
                "vscp_link": {
                    "server": {
                        "enabled": True,
                        "listen": "127.0.0.1:0",
                        "users": [{"name": "bench", "password": "bench"}],
                    }
                }
            },
        },
        plugins=plugins,
    )
    async with b:
        address = (await vscp.wait_server(b)).address
        a = ioplex.Host.from_config(
            {
                "host": {"data_dir": str(tmp / "a")},
                "ioservers": {
                    "up": {
                        "plugin": "vscp_link",
                        "address": address[0],
                        "port": address[1],
                        "user": "bench",
                        "password": "bench",
                        "options": {
                            "direction": "out",
                            "send_window": 1024,
                            "send_queue": count + 10,
                        },
                    }
                },
            },
            plugins=ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "vscp_link"}),
        )
        async with a:
            await a.wait_online("up")
            link = a.ioservers["up"].driver
            events = [vscp.Event(10, 6, bytes([0x88, 0x81, 0x00, i & 0xFF])) for i in range(count)]
            started = time.perf_counter()
            for i in range(0, count, 1000):
                for event in events[i : i + 1000]:
                    a.publish(event, source="bench")
                while len(link.queue) > 20_000 or a.bus.lanes[0].queue.__len__() > 5000:
                    await anyio.lowlevel.checkpoint()
                await anyio.lowlevel.checkpoint()
            with anyio.fail_after(120):
                while seen.n < count - link.dropped:
                    await anyio.sleep(0.001)
            elapsed = time.perf_counter() - started
            return count / elapsed, link.dropped + sum(lane.queue.dropped for lane in a.bus.lanes)


# --- 3. one SEND in flight against a vscpd-like peer -------------------------------------------


async def bare_one_in_flight(peer: Any, count: int) -> tuple[float, float]:
    """The baseline: log in, then SEND, wait for the status line, SEND the next. Returns
    events/s and CPU seconds per event (this process: the peer's share included, as for
    the link; on a loaded machine the CPU figure is the steadier one)."""
    reader, writer = await asyncio.open_connection(*peer.address)
    await reader.readuntil(b"+OK - Success.\r\n")
    writer.write(b"USER admin\r\n")
    await reader.readuntil(b"\r\n")
    writer.write(b"PASS secret\r\n")
    await reader.readuntil(b"\r\n")
    lines = [
        f"SEND 0,10,6,0,,{i},-,0x88,0x81,0x{i >> 8 & 0xFF:02X},0x{i & 0xFF:02X}\r\n".encode()
        for i in range(count)
    ]
    before = len(peer.received)
    started, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        writer.write(line)
        status = await reader.readline()
        if not status.startswith(b"+OK"):
            raise RuntimeError(f"the peer refused a SEND: {status!r}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    writer.close()
    assert len(peer.received) - before == count
    return count / elapsed, cpu / count


async def link_one_in_flight(peer: Any, count: int, tmp: Path) -> tuple[float, float, int]:
    a = ioplex.Host.from_config(
        {
            "host": {"data_dir": str(tmp / "peer")},
            "ioservers": {
                "up": {
                    "plugin": "vscp_link",
                    "address": peer.address[0],
                    "port": peer.address[1],
                    "user": "admin",
                    "password": "secret",
                    "options": {"direction": "out", "send_queue": count + 10},
                }
            },
        },
        plugins=ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "vscp_link"}),
    )
    async with a:
        await a.wait_online("up")
        link = a.ioservers["up"].driver
        assert link.send_window == 1
        events = [
            vscp.Event(10, 6, bytes([0x88, 0x81, i >> 8 & 0xFF, i & 0xFF]), timestamp=i + 1)
            for i in range(count)
        ]
        before = len(peer.received)
        started, cpu = time.perf_counter(), time.process_time()
        for event in events:
            a.publish(event, source="bench")
        with anyio.fail_after(120):
            while len(peer.received) - before < count - link.dropped:
                await anyio.sleep(0.01)  # a coarse poll: it must not compete with the link
        rate = count / (time.perf_counter() - started)
        return rate, (time.process_time() - cpu) / count, link.dropped


async def one_in_flight(
    count: int, tmp: Path
) -> tuple[tuple[float, float], tuple[float, float, int]]:
    async with anyio.create_task_group() as tg:
        peer = await _strict_peer().start(tg)
        bare = await bare_one_in_flight(peer, count)
        ours = await link_one_in_flight(peer, count, tmp)
        tg.cancel_scope.cancel()
    return bare, ours


async def main(count: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        bare = await bare_relay(count)
        ours = await server_relay(count, Path(tmp))
        print(f"bare asyncio line relay: {bare:12,.0f} lines/s")
        print(f"vscp_link server:        {ours:12,.0f} events/s  (SEND pipelined -> RCVLOOP)")
        print(
            f"ratio server/bare:       {ours / bare:12.2f}   (goals: >= 0.30, >= 50,000 events/s)"
        )
        rate, dropped = await link(count // 2, Path(tmp))
        print(f"link driver A bus -> B:  {rate:12,.0f} events/s  ({dropped} dropped; pipelined)")
        (bare1, bare_cpu), (ours1, ours_cpu, dropped1) = await one_in_flight(
            min(count // 20, 10_000), Path(tmp)
        )
        print(
            f"bare client -> peer:     {bare1:12,.0f} events/s  (one SEND in flight; "
            f"{bare_cpu * 1e6:.0f} µs CPU/event)"
        )
        print(
            f"link driver -> peer:     {ours1:12,.0f} events/s  ({dropped1} dropped; "
            f"{ours_cpu * 1e6:.0f} µs CPU/event)"
        )
        print(
            f"ratio link/bare:         {ours1 / bare1:12.2f}   (goal: >= 0.80; by CPU time "
            f"{bare_cpu / ours_cpu:.2f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    anyio.run(main, args.events)
    sys.exit(0)
