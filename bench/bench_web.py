"""Web plugin speed: SSE fan-out, time to first byte of the points list, idle watcher cost.

    python bench/bench_web.py [--watchers 100] [--rate 10000] [--seconds 5] [--points 100000]

1. SSE fan-out: `--watchers` clients watch `*` (in a separate process, raw sockets) while a
   driver changes points at `--rate` per second in 10 ms batches. Printed: events delivered
   per second (all watchers), and p50/p99 latency from the change (the point's timestamp) to
   its SSE line arriving at a client. Baseline in the same run: the registry's own
   subscriber (`host.subscribe("*")` in the host's loop) latency for the same changes.
2. Time to first byte of `GET /api/v1/points?limit=1000` with `--points` points: the first
   request (sorts the names) and the median of 20 more. Goal: <= 200 ms.
3. Host CPU added by `--watchers` idle watchers over 5 s (no changes), against the same 5 s
   with none.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio
import ioplex

CLIENT = textwrap.dedent("""
    import asyncio, json, sys, time
    port, watchers, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    lat, count = [], [0]
    async def watch(i):
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
        w.write(b"GET /api/v1/watch HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n")
        await w.drain()
        event = None
        while True:
            line = await r.readline()
            if not line:
                return
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"data: ") and event == b"changes":
                # only one watcher in ten decodes (for latency); the rest count rows cheaply,
                # so that the client process is not what limits the figures
                if i % 10 == 0:
                    now = time.time()
                    rows = json.loads(line[6:])
                    count[0] += len(rows)
                    lat.extend(now - row[3] for row in rows[::10])
                else:
                    count[0] += line.count(b"],[") + 1
    async def main():
        tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        print("ready", flush=True)
        await asyncio.sleep(seconds)
        print(json.dumps({"count": count[0], "lat": lat}), flush=True)
        for t in tasks:
            t.cancel()
    asyncio.run(main())
""")


def config(tmp: Path, points: int) -> dict:
    return {
        "host": {"name": "bench", "data_dir": str(tmp)},
        "ioservers": {
            "dummy": {
                "plugin": "dummy",
                "options": {"points": {f"p{i:06d}": 0 for i in range(points)}},
            }
        },
        "plugins": {
            "web": {
                "enabled": True,
                "listen": "127.0.0.1:0",
                "max_watchers": 1000,
                "max_connections": 2000,
            }
        },
    }


def port_of(tmp: Path) -> int:
    return json.loads((tmp / "web" / "server.json").read_text())["port"]


async def wait_port(tmp: Path) -> int:
    while not (tmp / "web" / "server.json").exists():
        await anyio.sleep(0.05)
    return port_of(tmp)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def fanout(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = ioplex.Host.from_config(config(Path(tmp), 1000), freeze_gc=False)
        async with host:
            port = await wait_port(Path(tmp))
            io = host.ioservers["dummy"]
            proc = await anyio.open_process(
                [sys.executable, "-c", CLIENT, str(port), str(args.watchers), str(args.seconds)]
            )
            assert proc.stdout is not None
            buf = b""
            while b"ready" not in buf:
                buf += await proc.stdout.receive()
            await anyio.sleep(1.0)  # let every watcher get its snapshot
            base_lat: list[float] = []

            async def baseline() -> None:
                async with host.subscribe("*") as events:
                    async for event in events:
                        base_lat.append(time.time() - event.time)

            per_batch = max(1, args.rate // 100)
            names = [f"p{i:06d}" for i in range(1000)]
            async with anyio.create_task_group() as tg:
                tg.start_soon(baseline)
                start, n, value = time.perf_counter(), 0, 0
                cpu0 = time.process_time()
                while (now := time.perf_counter()) - start < args.seconds - 1.0:
                    # keep to the rate: set what is due (at most a batch's worth at once)
                    due = min(int((now - start) * args.rate) - n, 10 * per_batch)
                    value += 1
                    for k in range(max(0, due)):
                        io.set(names[(n + k) % 1000], value)
                    n += max(0, due)
                    await anyio.sleep(0.01)
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu0
                tg.cancel_scope.cancel()
            while True:
                try:
                    buf += await proc.stdout.receive()
                except anyio.EndOfStream:
                    break
            await proc.wait()
            result = json.loads(buf.split(b"ready", 1)[1].strip().splitlines()[-1])
            rate = n / elapsed
            print(
                f"SSE fan-out: {args.watchers} watchers of '*', {rate:,.0f} changes/s for "
                f"{elapsed:.1f} s (host CPU {cpu / elapsed:.0%} of one core)"
            )
            print(
                f"  delivered: {result['count'] / elapsed:,.0f} events/s in all "
                f"({result['count'] / max(1, n * args.watchers):.1%} of the changes x watchers)"
            )
            lat = result["lat"]
            print(
                f"  change -> SSE line latency: p50 {pct(lat, 0.5) * 1000:.1f} ms, "
                f"p99 {pct(lat, 0.99) * 1000:.1f} ms ({len(lat)} samples)"
            )
            print(
                f"  baseline, registry subscriber in the host's loop: p50 "
                f"{pct(base_lat, 0.5) * 1000:.2f} ms, p99 {pct(base_lat, 0.99) * 1000:.2f} ms"
            )
            print(
                f"  ratio p99 SSE / p99 registry: {pct(lat, 0.99) / max(pct(base_lat, 0.99), 1e-6):.1f}x"
            )


async def ttfb(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        host = ioplex.Host.from_config(config(Path(tmp), args.points), freeze_gc=False)
        async with host:
            port = await wait_port(Path(tmp))
            print(
                f"points list: {len(host.points):,} points (host up in "
                f"{time.perf_counter() - t0:.1f} s)"
            )

            def first_byte(query: str) -> float:
                with socket.create_connection(("127.0.0.1", port)) as s:
                    start = time.perf_counter()
                    s.sendall(
                        f"GET /api/v1/points?{query} HTTP/1.1\r\nhost: x\r\n"
                        "connection: close\r\n\r\n".encode()
                    )
                    s.recv(1)
                    t = time.perf_counter() - start
                    while s.recv(1 << 16):
                        pass
                    return t

            cold = await anyio.to_thread.run_sync(first_byte, "limit=1000")
            warm = [await anyio.to_thread.run_sync(first_byte, "limit=1000") for _ in range(20)]
            deep = [
                await anyio.to_thread.run_sync(first_byte, "limit=1000&offset=99000")
                for _ in range(5)
            ]
            glob = [
                await anyio.to_thread.run_sync(first_byte, "limit=1000&pattern=dummy.p09*")
                for _ in range(5)
            ]
            print(
                f"  TTFB page of 1,000: first {cold * 1000:.1f} ms, then median "
                f"{statistics.median(warm) * 1000:.1f} ms (goal <= 200 ms); last page "
                f"{statistics.median(deep) * 1000:.1f} ms; glob filter "
                f"{statistics.median(glob) * 1000:.1f} ms"
            )


async def idle(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = ioplex.Host.from_config(config(Path(tmp), 1000), freeze_gc=False)
        async with host:
            port = await wait_port(Path(tmp))

            def cpu() -> float:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                return usage.ru_utime + usage.ru_stime

            c0 = cpu()
            await anyio.sleep(5)
            none = cpu() - c0
            proc = await anyio.open_process(
                [sys.executable, "-c", CLIENT, str(port), str(args.watchers), "18"]
            )
            assert proc.stdout is not None
            await proc.stdout.receive()
            await anyio.sleep(5)  # every watcher has had its snapshot (1,000 points each)
            c0 = cpu()
            await anyio.sleep(5)
            some = cpu() - c0
            proc.terminate()
            await proc.wait()
            print(
                f"idle watchers: host CPU over 5 s: {none * 200:.2f}% of a core with none, "
                f"{some * 200:.2f}% with {args.watchers} idle watchers "
                f"(+{(some - none) * 200:.2f}%)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("IOPLEX_LOAD_PLUGINS", "web")
    anyio.run(fanout, args)
    anyio.run(ttfb, args)
    anyio.run(idle, args)


if __name__ == "__main__":
    main()
