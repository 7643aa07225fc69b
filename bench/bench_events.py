"""Events engine speed and memory, against the registry alone measured in the same run.

    python bench/bench_events.py [--rules N] [--points N] [--changes N]

Setup: a host with 100,000 points ``b.p<i>`` and 10,000 rules ``IO b.p<i> : IO b.o<i> =
IO b.p<i>`` (each rule names one input point and writes one output point), so most points
are named by no rule.

Each figure comes with its baseline, measured in the same run (the machine is shared:
the load average is printed before and after, and CPU seconds beside wall seconds):

1. Changes per second: the same changes (random points, one in ten named by a rule, in
   batches of 1,000 with `update_many`) through the registry alone (no engine; one
   subscription to exactly the rules' points, drained, as any consumer) and then with the
   engine running, until every firing has written its output. Ratio engine / registry
   alone; goal >= 0.5. Each is measured over `--rounds` passes of the changes (the points
   reset between passes, outside the timing), so the engine's work of each second (traces
   stored, at most 2,000 a second) is in the figure in proportion: a pass alone lasts
   about a third of a second, and its figure would depend on whether that work fell in it.
   The registry alone is measured before the engine starts and again after it stopped,
   and its mean is the baseline: on a shared machine the load moves within seconds, and
   a baseline taken only before would compare two different machines.
2. Latency from a change to its action's write: one change at a time, the time until the
   output point changed (a registry listener stamps it); p50 and p99. Goal p99 <= 1 ms.
   Baseline: a registry listener that writes the output itself (the least any rule costs).
3. Load time of a 10,000-line events file (parse and check, mixed rule forms). Goal <= 1 s.
   Baseline: the same file parsed by lark alone (`parse_lines(fast=False)`).
4. Memory per rule: tracemalloc around loading and installing 10,000 rules; baseline: the
   parsed rules alone.
"""

from __future__ import annotations

import argparse
import gc
import os
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
from ioplex_events.language import parse_lines
from ioplex_events.loader import Context, load_file

SETTINGS = {
    "files": ["events/*.txt"],
    "watch": False,
    "mode": "parallel",
    "max_queued": 10,
    "max_parallel": 100,
    "runaway_depth": 20,
    "catch_up": 3600,
    "trace_size": 20,
    "sunrise_offset": 0,
    "sunset_offset": 0,
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
        forms[n % len(forms)].format(i=n, j=(n * 7) % lines, h=n % 10) + "\n" for n in range(lines)
    )


Times = tuple[float, float]
"""Wall and CPU (process) seconds."""


def clocks() -> Times:
    return time.perf_counter(), time.process_time()


def since(start: Times) -> Times:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def reset(host: ioplex.Host, changes: list, rules: int) -> None:
    """The points back to 0, quietly, so the same changes change them again (inputs) and
    the rules' writes change their outputs again."""
    for p, _ in changes:
        p.value = 0
    for i in range(rules):
        host.points[f"b.o{i}"].value = 0


def total(times: list[Times]) -> Times:
    return sum(t[0] for t in times), sum(t[1] for t in times)


async def registry_alone(host: ioplex.Host, batches: list[list], sub: ioplex.Subscription) -> Times:
    points = host.points
    start = clocks()
    for batch in batches:
        points.update_many(batch)
        sub.drain()
        await anyio.lowlevel.checkpoint()
    return since(start)


async def with_engine(
    host: ioplex.Host, engine: Engine, batches: list[list], expected: int
) -> Times:
    points = host.points
    start = clocks()
    base = engine.firings
    for batch in batches:
        points.update_many(batch)
        await anyio.lowlevel.checkpoint()
    while engine.firings - base < expected or engine.active:
        await anyio.lowlevel.checkpoint()
    return since(start)


async def latency(
    host: ioplex.Host, rules: int, step: int, n: int, seed: int
) -> tuple[list[float], list[float]]:
    """Wall seconds from each change to its write, and the event loop thread's CPU seconds
    over the same span (what the engine itself spent: a loaded machine adds wall time while
    this process waits for a CPU, not CPU time)."""
    stamps: dict[str, Times] = {}
    listener = host.points.listen(
        lambda e: stamps.__setitem__(e.name, (time.perf_counter(), time.thread_time())), "b.o*"
    )
    rng = random.Random(seed)
    wall, cpu = [], []
    try:
        for k in range(n):
            i = rng.randrange(rules)
            name = f"b.o{i}"
            stamps.pop(name, None)
            t0, c0 = time.perf_counter(), time.thread_time()
            host.points.update(host.points[f"b.p{i * step}"], seed + k)
            while name not in stamps:
                await anyio.lowlevel.checkpoint()
            wall.append(stamps[name][0] - t0)
            cpu.append(stamps[name][1] - c0)
    finally:
        listener.close()
    return wall, cpu


def listener_rule(host: ioplex.Host, rules: int, step: int) -> ioplex.Listener:
    """The latency baseline: each rule as a registry listener writing its output at once."""
    points = host.points
    outputs = {f"b.p{i * step}": points[f"b.o{i}"] for i in range(rules)}

    def fire(event: ioplex.PointEvent) -> None:
        out = outputs.get(event.name)
        if out is not None:
            points.update(out, event.value)

    return points.listen(fire, "b.p*")


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    print(f"start: {load_average()} ({os.cpu_count()} CPUs)")
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
    batches = [changes[n : n + 1000] for n in range(0, len(changes), 1000)]
    names = [f"b.p{i * step}" for i in range(args.rules)]

    async def alone_rounds() -> list[Times]:
        # The garbage left by setup or by the engine (its traces, its last store) is not
        # the registry's: collected before, not in the baseline's timing.
        gc.collect()
        with host.points.subscribe(*names, maxsize=1_000_000) as sub:
            # warm-up: each point's cache of matching subscriptions
            await registry_alone(host, batches, sub)
            rounds = []
            for _ in range(args.rounds):
                reset(host, changes, args.rules)
                rounds.append(await registry_alone(host, batches, sub))
        reset(host, changes, args.rules)
        return rounds

    async with host:
        alone_before = await alone_rounds()
        rule_listener = listener_rule(host, args.rules, step)
        try:
            await latency(host, args.rules, step, 200, 2_000_000)  # warm-up
            lat_base = await latency(host, args.rules, step, args.latency, 1_000_000)
        finally:
            rule_listener.close()
        gc.collect()
        tracemalloc.start()
        before_engine = tracemalloc.get_traced_memory()[0]
        engine = Engine(host, {**SETTINGS, "files": [str(base / "events" / "rules.txt")]})
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.run(watch=False))
            await engine.loaded.wait()
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            await with_engine(host, engine, batches, named)  # warm-up, as for the registry
            through_rounds = []
            for _ in range(args.rounds):
                reset(host, changes, args.rules)
                through_rounds.append(await with_engine(host, engine, batches, named))
            through = total(through_rounds)
            await latency(host, args.rules, step, 200, 4_000_000)  # warm-up
            lat = await latency(host, args.rules, step, args.latency, 3_000_000)
            tg.cancel_scope.cancel()
        alone_after = await alone_rounds()
    alone_all = alone_before + alone_after
    alone = total(alone_all)
    alone = (alone[0] / len(alone_all) * args.rounds, alone[1] / len(alone_all) * args.rounds)

    print(
        f"setup: {args.points:,} points, {args.rules:,} rules, {args.changes:,} changes "
        f"({named:,} named by a rule), {args.rounds} rounds of each"
    )
    done, fired = args.changes * args.rounds, named * args.rounds
    print(f"registry alone:   {done / alone[0]:12,.0f} changes/s (CPU {done / alone[1]:,.0f}/s)")
    print(
        f"through engine:   {done / through[0]:12,.0f} changes/s "
        f"({fired / through[0]:,.0f} firings/s; CPU {done / through[1]:,.0f}/s)"
    )

    def rates(rounds: list[Times]) -> str:
        return " ".join(f"{args.changes / t[0] / 1000:,.0f}k" for t in rounds)

    print(
        f"   changes/s of each round: registry alone before {rates(alone_before)}, "
        f"after {rates(alone_after)}; through engine {rates(through_rounds)}"
    )
    print(
        f"1. ratio engine / registry alone: {alone[0] / through[0]:.2f} wall, "
        f"{alone[1] / through[1]:.2f} CPU (goal >= 0.5)"
    )
    for what, (wall, cpu) in (("engine", lat), ("a listener writing it (baseline)", lat_base)):
        p50, p99 = percentiles(wall)
        c50, c99 = percentiles(cpu)
        print(
            f"2. change -> action write latency, {what}: p50 {p50 * 1e3:.3f} ms, p99 "
            f"{p99 * 1e3:.3f} ms wall; CPU p50 {c50 * 1e3:.3f} ms, p99 {c99 * 1e3:.3f} ms "
            f"({len(wall)} samples)"
        )
    print(
        f"   ratio engine / baseline p99: {percentiles(lat[0])[1] / percentiles(lat_base[0])[1]:.1f}"
        f" wall, {percentiles(lat[1])[1] / max(percentiles(lat_base[1])[1], 1e-9):.1f} CPU"
        " (goal p99 <= 1 ms)"
    )

    path = base / "events" / "mixed.txt"
    path.write_text(mixed_file(args.load_lines))
    ctx = Context(instances={"b"}, points=None)
    start = clocks()
    parse_lines(path.read_text(), "mixed.txt", fast=False)
    lark_only = since(start)
    start = clocks()
    loaded = load_file(path, base, ctx)
    elapsed = since(start)
    print(
        f"3. load of a {args.load_lines:,}-line file: {elapsed[0]:.2f} s, CPU {elapsed[1]:.2f} s "
        f"({elapsed[0] / len(loaded) * 1e6:.0f} µs/rule; goal <= 1 s); lark alone "
        f"(parse only): {lark_only[0]:.2f} s, CPU {lark_only[1]:.2f} s; ratio "
        f"{lark_only[0] / elapsed[0]:.1f}x faster"
    )

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    parsed = load_file(base / "events" / "rules.txt", base, ctx)
    ast_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del parsed
    print(
        f"4. memory per rule: {(after - before_engine) / args.rules:,.0f} bytes "
        f"(engine with {args.rules:,} rules, traced by tracemalloc); the parsed rules alone: "
        f"{ast_bytes / args.rules:,.0f} bytes; ratio {(after - before_engine) / ast_bytes:.1f}"
    )
    print(f"end: {load_average()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=int, default=2000)
    parser.add_argument("--load-lines", type=int, default=10_000)
    anyio.run(main, parser.parse_args())
    sys.exit(0)
