"""Point registry speed and memory, against a bare Python loop measured in the same run.

    python bench/bench_registry.py [--updates N] [--points-for-memory N]

1. Updates per second through the registry: one driver (a real dummy I/O server in a host)
   updates its 1,000 points in polls of all 1,000 (one batch, `update_many`,
   building each batch is part of the time); 10 subscribers with patterns (`bench.p0*` ... `bench.p9*`,
   so each update reaches exactly one of them) drain their queues concurrently.
   Baseline: the same updates as a bare loop of dict assignment plus one Python callback
   that appends the change to a deque. Goal: registry / bare >= 0.3.
2. Memory per point with 1,000,000 points registered (tracemalloc, whole point: object, name,
   timestamps, index entries). Goal: under 400 bytes.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections import deque

import anyio
import anyio.lowlevel
import ioplex

POINTS = 1000
SUBSCRIBERS = 10


def bare_loop(updates: int) -> float:
    names = [f"bench.p{i:03d}" for i in range(POINTS)]
    values: dict[str, int] = dict.fromkeys(names, 0)
    sink: deque = deque(maxlen=10_000)

    def callback(name: str, value: int) -> None:  # an application's callback: keep the change
        sink.append((name, value))

    start = time.perf_counter()
    for n in range(updates):
        name = names[n % POINTS]
        values[name] = n
        callback(name, n)
    return updates / (time.perf_counter() - start)


async def through_registry(
    updates: int, data_dir: str, batched: bool = True
) -> tuple[float, int, int]:
    points = {f"p{i:03d}": 0 for i in range(POINTS)}
    host = ioplex.Host.from_config(
        {
            "host": {"data_dir": data_dir},
            "ioservers": {"bench": {"plugin": "dummy", "options": {"points": points}}},
        },
        plugins=_builtins_only(),
    )
    received = 0
    async with host:
        io = host.ioservers["bench"]
        update_many = io.update_many
        handles = [io.point(f"p{i:03d}") for i in range(POINTS)]
        subs = [host.subscribe(f"bench.p{d}*") for d in range(SUBSCRIBERS)]

        async def consume(sub: ioplex.Subscription) -> None:
            nonlocal received
            while True:
                await sub.wait()
                received += len(sub.drain())

        async with anyio.create_task_group() as tg:
            for sub in subs:
                tg.start_soon(consume, sub)
            await anyio.lowlevel.checkpoint()
            start = time.perf_counter()
            batch = POINTS  # one poll of all points; the driver yields between polls
            for base in range(0, updates, batch):
                if batched:
                    update_many([(handles[n % POINTS], n + 1) for n in range(base, base + batch)])
                else:
                    for n in range(base, base + batch):
                        io.set(handles[n % POINTS], n + 1)
                await anyio.lowlevel.checkpoint()
            elapsed = time.perf_counter() - start
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        dropped = sum(s.dropped for s in subs)
    return updates / elapsed, received, dropped


def _builtins_only() -> ioplex.Plugins:
    plugins = ioplex.Plugins()
    plugins.load_builtins()
    return plugins


def memory_per_point(count: int) -> float:
    registry = ioplex.Registry("io")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        registry.declare(f"bench.p{i:07d}", i, writable=True)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=1_000_000)
    parser.add_argument("--points-for-memory", type=int, default=1_000_000)
    args = parser.parse_args()

    import tempfile

    with tempfile.TemporaryDirectory() as data_dir:
        bare = max(bare_loop(args.updates) for _ in range(3))
        ours, received, dropped = max(
            anyio.run(through_registry, args.updates, data_dir) for _ in range(3)
        )
    print(f"bare loop (dict + callback):   {bare:12,.0f} updates/s")
    print(
        f"registry, 10 subscribers:      {ours:12,.0f} updates/s "
        f"(delivered {received:,}, dropped {dropped:,})"
    )
    ratio = ours / bare
    print(
        f"ratio registry / bare:         {ratio:12.2f}  (goal >= 0.30) {'OK' if ratio >= 0.3 else 'MISSED'}"
    )
    with tempfile.TemporaryDirectory() as data_dir:
        single, _, _ = max(
            anyio.run(through_registry, args.updates, data_dir, False) for _ in range(3)
        )
    print(f"  the same, one set() per change: {single:9,.0f} updates/s (ratio {single / bare:.2f})")
    per_point = memory_per_point(args.points_for_memory)
    print(
        f"memory per point ({args.points_for_memory:,} points): {per_point:8.0f} bytes "
        f"(goal < 400) {'OK' if per_point < 400 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
