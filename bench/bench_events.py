"""Events engine speed and memory, against the registry alone measured in the same run.

    python bench/bench_events.py [--rules N] [--points N] [--changes N]

Setup: a host with 100,000 points ``b.p<i>`` and 10,000 rules ``IO b.p<i> : IO b.o<i> =
IO b.p<i>`` (each rule names one input point and writes one output point), so most points
are named by no rule.

1. Changes per second: the same changes (random points, one in ten named by a rule, in
   batches of 1,000 with `update_many`) through the registry alone (no engine; one
   subscription drained, as any consumer) and then with the engine running, until every
   firing has written its output. Ratio engine / registry alone; goal >= 0.5.
2. Latency from a change to its action's write: one change at a time, the time until the
   output point changed (a registry listener stamps it); p50 and p99. Goal p99 <= 1 ms.
3. Load time of a 10,000-line events file (parse and check, mixed rule forms). Goal <= 1 s.
4. Memory per rule: tracemalloc around loading and installing 10,000 rules.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import anyio
import anyio.lowlevel
import ioplex
from ioplex_events import Engine
from ioplex_events.loader import Context, load_file

SETTINGS = {
    "files": ["events/*.txt"], "watch": False, "mode": "parallel", "max_queued": 10,
    "max_parallel": 100, "runaway_depth": 20, "catch_up": 3600, "trace_size": 20,
    "sunrise_offset": 0, "sunset_offset": 0,
}


def make_host(base: Path, points: int, rules: int) -> ioplex.Host:
    host = ioplex.Host.from_config(
        {"host": {"data_dir": str(base / "data")}},
        plugins=ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": ""}),
    )
    for i in range(points):
        host.points.declare(f"b.p{i}", 0, writable=True, quiet=True)
    for i in range(rules):
        host.points.declare(f"b.o{i}", 0, writable=True, quiet=True)
    return host


def rules_text(rules: int, points: int) -> str:
    # Rule i names input point i * (points // rules): one point in ten is named.
    step = points // rules
    return "".join(f"IO b.p{i * step} : IO b.o{i} = IO b.p{i * step}\n" for i in range(rules))


def mixed_file(lines: int) -> str:
    forms = [
        'IO b.p{i} > 20 AND IO b.p{j} = 1 : IO b.o{i} = "on", LOG = "hot {i}"',
        "IO b.p{i} : UISET panel.v{i} = IO b.p{i}",
        "TIME 0{h}30 MON-FRI : IO b.o{i} = 0, TIMER t{i} = SET 60",
        "TIMER t{i} OR (IO b.p{j} <= 3.5 AND NOT IO b.p{i} = 0) : IO b.o{i} b.o{j} = 1",
        'USER "$cmd{i}" : IO b.o{i} = $cmd{i}, UISET "$cmd{i}.focus" = true',
    ]
    return "".join(
        forms[n % len(forms)].format(i=n, j=(n * 7) % lines, h=n % 10) + "\n"
        for n in range(lines)
    )


async def registry_alone(host: ioplex.Host, batches: list[list], sub: ioplex.Subscription
                         ) -> float:
    points = host.points
    start = time.perf_counter()
    for batch in batches:
        points.update_many(batch)
        sub.drain()
        await anyio.lowlevel.checkpoint()
    return time.perf_counter() - start


async def with_engine(host: ioplex.Host, engine: Engine, batches: list[list],
                      expected: int) -> float:
    points = host.points
    start = time.perf_counter()
    base = engine.firings
    for batch in batches:
        points.update_many(batch)
        await anyio.lowlevel.checkpoint()
    while engine.firings - base < expected or engine.active:
        await anyio.lowlevel.checkpoint()
    return time.perf_counter() - start


async def latency(host: ioplex.Host, engine: Engine, rules: int, step: int, n: int) -> list[float]:
    stamps: dict[str, float] = {}
    listener = host.points.listen(lambda e: stamps.__setitem__(e.name, time.perf_counter()),
                                  "b.o*")
    out = []
    try:
        for k in range(n):
            i = random.randrange(rules)
            name = f"b.o{i}"
            stamps.pop(name, None)
            t0 = time.perf_counter()
            host.points.update(host.points[f"b.p{i * step}"], 1_000_000 + k)
            while name not in stamps:
                await anyio.lowlevel.checkpoint()
            out.append(stamps[name] - t0)
    finally:
        listener.close()
    return out


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench_events"))
    (base / "events").mkdir()
    step = args.points // args.rules
    (base / "events" / "rules.txt").write_text(rules_text(args.rules, args.points))
    host = make_host(base, args.points, args.rules)

    random.seed(1)
    changes = []
    named = 0
    for k in range(args.changes):
        if k % 10 == 0:
            i = random.randrange(args.rules) * step
            named += 1
        else:
            i = random.randrange(args.points)
            while i % step == 0 and i // step < args.rules:
                i = random.randrange(args.points)
        changes.append((host.points[f"b.p{i}"], k + 1))
    batches = [changes[n:n + 1000] for n in range(0, len(changes), 1000)]
    names = [f"b.p{i * step}" for i in range(args.rules)]

    async with host:
        with host.points.subscribe(*names, maxsize=1_000_000) as sub:
            # warm-up: each point's cache of matching subscriptions
            await registry_alone(host, batches, sub)
            for p, _ in changes:
                p.value = 0
            alone = await registry_alone(host, batches, sub)
        for p, _ in changes:  # the same changes again must change the points again
            p.value = 0
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        engine = Engine(host, {**SETTINGS, "files": [str(base / "events" / "rules.txt")]})
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.run(watch=False))
            await engine.loaded.wait()
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            await with_engine(host, engine, batches, named)  # warm-up, as for the registry
            for p, _ in changes:
                p.value = 0
            through = await with_engine(host, engine, batches, named)
            lat = await latency(host, engine, args.rules, step, args.latency)
            tg.cancel_scope.cancel()

    print(f"setup: {args.points:,} points, {args.rules:,} rules, {args.changes:,} changes "
          f"({named:,} named by a rule)")
    print(f"registry alone:   {args.changes / alone:12,.0f} changes/s")
    print(f"through engine:   {args.changes / through:12,.0f} changes/s "
          f"({named / through:,.0f} firings/s)")
    print(f"ratio engine / registry alone: {alone / through:.2f} (goal >= 0.5)")
    lat.sort()
    p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
    print(f"change -> action write latency: p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms "
          f"(goal p99 <= 1 ms), {len(lat)} samples")
    print(f"memory per rule: {(after - before) / args.rules:,.0f} bytes "
          f"(engine with {args.rules:,} rules, traced by tracemalloc)")

    path = base / "events" / "mixed.txt"
    path.write_text(mixed_file(args.load_lines))
    ctx = Context(instances={"b"}, points=None)
    start = time.perf_counter()
    loaded = load_file(path, base, ctx)
    elapsed = time.perf_counter() - start
    print(f"load of a {args.load_lines:,}-line file: {elapsed:.2f} s "
          f"({elapsed / len(loaded) * 1e6:.0f} µs/rule; goal <= 1 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--latency", type=int, default=2000)
    parser.add_argument("--load-lines", type=int, default=10_000)
    anyio.run(main, parser.parse_args())
    sys.exit(0)
