"""mqtt plugin speed and scale, against a private Mosquitto on loopback (started here).

    python bench/bench_mqtt.py [--points 20000] [--rate 10000] [--seconds 5]
                               [--hosts 20] [--host-points 5000] [--host-rate 500]

1. Publish throughput: a host publishes --points points (each changed once per round, three
   rounds, every state acknowledged with QoS 1, retained), against the baseline of a bare
   aiomqtt client publishing the same topics and payload sizes with the same concurrency to
   the same broker, measured in the same run. Goal: ratio >= 0.5.
2. Latency: host A (a child process) changes its points round-robin at --rate changes/s for
   --seconds, each value A's `time.monotonic()`; host B (here) mirrors them. Reported: changes
   delivered as events on B and the latency A → broker → B, p50/p99. Goal: p99 <= 50 ms.
3. Scale: --hosts host processes with --host-points points each publish to the broker; a
   concentrator (here) mirrors them all. Reported: the time for the concentrator to align
   (every point mirrored with quality good) after it (re)starts (goal <= 5 s for 100,000
   points), the p99 latency while every host changes --host-rate points/s, and the
   concentrator's memory per mirrored point (RSS growth / points).

Every phase has a deadline; the script stops its broker and children itself. On a loaded
machine run the scale phase smaller (`--hosts 5 --host-points 2000`) and say so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import ioplex
from ioplex_mqtt.driver import NO_DELAY
from ioplex_mqtt.payload import encode_state
from ioplex_mqtt.testing import ONLY_THIS_PLUGIN, Mosquitto, host_config

PHASE_DEADLINE = 120.0

CHILD = r"""
import json, sys, time
import anyio, ioplex

async def main():
    with open(sys.argv[1]) as file:
        args = json.load(file)
    host = ioplex.Host.from_config(args["config"])
    async with host:
        await host.wait_online("mqtt", timeout=60)
        io = host.ioservers["dummy"]
        points = io.points()
        points = [p for p in points if p is not io.connection]
        print("online", flush=True)
        # wait for the go line, then change points round-robin at the rate
        await anyio.to_thread.run_sync(sys.stdin.readline)
        rate, seconds = args["rate"], args["seconds"]
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        i, n = 0, len(points)
        start = time.monotonic()
        next_tick = start
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            batch = []
            for _ in range(per_tick):
                batch.append((points[i % n], now))
                i += 1
            io.update_many(batch)
            next_tick += tick
            await anyio.sleep(max(0.0, next_tick - time.monotonic()))
        print(json.dumps({"changes": i}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)

anyio.run(main)
"""


BARE_PUBLISHER = r"""
import json, sys, time
import aiomqtt, anyio

async def main():
    port, rate, seconds, points = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=1000, timeout=30) as client:
        print("online", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        i = 0
        start = time.monotonic()
        next_tick = start
        async with anyio.create_task_group() as tg:
            while time.monotonic() - start < seconds:
                now = time.monotonic()
                for _ in range(per_tick):
                    tg.start_soon(client.publish, f"bench2b/p{i % points}", json.dumps({"v": now}), 1, True)
                    i += 1
                next_tick += tick
                await anyio.sleep(max(0.0, next_tick - time.monotonic()))
        print(json.dumps({"changes": i}), flush=True)

anyio.run(main)
"""


def load() -> str:
    """The load average, as ``uptime`` shows it (the machine may be shared)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def bare_publisher(port: int, rate: float, seconds: float, points: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", BARE_PUBLISHER, str(port), str(rate), str(seconds), str(points)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def bare_latency(port: int, rate: float, seconds: float, points: int) -> float:
    """The baseline of phase 2: a bare aiomqtt publisher (a child) and subscriber (here),
    QoS 1, the same rate and point count; p99 latency in ms."""
    proc = bare_publisher(port, rate, seconds, points)
    values: list[float] = []
    try:
        await readline(proc)
        async with aiomqtt.Client(
            "127.0.0.1", port, timeout=30, max_queued_incoming_messages=1_000_000
        ) as client:
            await client.subscribe("bench2b/#", qos=1)
            proc.stdin.write("go\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            with anyio.move_on_after(seconds + 30):
                async for message in client.messages:
                    if message.retain:
                        continue
                    values.append(time.monotonic() - json.loads(message.payload)["v"])
                    if len(values) >= rate * seconds * 0.99:
                        break
    finally:
        proc.kill()
        proc.wait()
    return pct(values, 0.99) * 1000


async def bare_align(port: int, prefix: str, expected: int) -> float:
    """The baseline of phase 3: seconds for a bare aiomqtt client to receive the retained
    states of every point (nothing stored, nothing decoded)."""
    start = time.perf_counter()
    seen = 0
    async with aiomqtt.Client(
        "127.0.0.1", port, timeout=30, max_queued_incoming_messages=1_000_000
    ) as client:
        await client.subscribe(f"{prefix}/+/#", qos=1)
        with anyio.fail_after(PHASE_DEADLINE):
            async for message in client.messages:
                if "/dummy/p" in message.topic.value:
                    seen += 1
                    if seen >= expected:
                        break
    return time.perf_counter() - start


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def child(
    workdir: Path, name: str, port: int, points: int, rate: float, seconds: float, prefix: str
) -> subprocess.Popen[str]:
    config = host_config(
        workdir,
        name,
        port,
        {f"p{i}": 0.0 for i in range(points)},
        publish=["dummy.*"],
        prefix=prefix,
    )
    config["ioservers"]["mqtt"]["options"].update(keepalive=30, timeout=20)
    workdir.mkdir(parents=True, exist_ok=True)
    args = workdir / f"{name}.json"
    args.write_text(json.dumps({"config": config, "rate": rate, "seconds": seconds}))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ONLY_THIS_PLUGIN,
    )


async def readline(proc: subprocess.Popen[str], timeout: float = PHASE_DEADLINE) -> str:
    with anyio.fail_after(timeout):
        line = await anyio.to_thread.run_sync(proc.stdout.readline)  # type: ignore[union-attr]
    if not line:
        raise RuntimeError("a host process ended early")
    return line


# --- 1. throughput ---------------------------------------------------------------------------
async def throughput(workdir: Path, port: int, count: int) -> None:
    config = host_config(
        workdir,
        "bench-pub",
        port,
        {f"p{i}": 0.0 for i in range(count)},
        publish=["dummy.*"],
        prefix="bench1",
    )
    config["ioservers"]["mqtt"]["options"].update(keepalive=30, timeout=30)
    rounds = 3
    host = ioplex.Host.from_config(config, environ=ONLY_THIS_PLUGIN)
    async with host:
        await host.wait_online("mqtt", timeout=30)
        driver = host.ioservers["mqtt"].driver
        io = host.ioservers["dummy"]
        points = [p for p in io.points() if p is not io.connection]
        with anyio.fail_after(PHASE_DEADLINE):
            while driver.stats["published"] < len(points) + 1:  # + dummy.connection
                await anyio.sleep(0.01)
        base = driver.stats["published"]
        start = time.perf_counter()
        with anyio.fail_after(PHASE_DEADLINE):
            for r in range(1, rounds + 1):
                io.update_many([(p, float(r)) for p in points])
                while driver.stats["published"] < base + r * len(points):
                    await anyio.sleep(0.002)
        plugin = rounds * len(points) / (time.perf_counter() - start)
        payload = encode_state(1.0, ioplex.Quality.GOOD, time.time(), "bench-pub", 0, float)
        topics = [driver.topics.state("bench-bare", p.name) for p in points]
    # the baseline: a bare client, same topics, payload size, QoS, retain and concurrency
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        max_inflight_messages=32,
        timeout=30,
        socket_options=NO_DELAY,
        logger=logging.getLogger("bench.bare"),
    ) as client:
        client.pending_calls_threshold = 1_000
        queue = list(topics) * rounds
        start = time.perf_counter()

        async def worker() -> None:
            while queue:
                await client.publish(queue.pop(), payload, qos=1, retain=True)

        with anyio.fail_after(PHASE_DEADLINE):
            async with anyio.create_task_group() as tg:
                for _ in range(32):
                    tg.start_soon(worker)
        bare = rounds * len(topics) / (time.perf_counter() - start)
    print(f"1. publish throughput, {len(points):,} points x {rounds} rounds, QoS 1 retained:")
    print(
        f"   plugin {plugin:,.0f} msg/s   bare aiomqtt client {bare:,.0f} msg/s   "
        f"ratio {plugin / bare:.2f} (goal >= 0.5)"
    )


# --- 2 and 3: hosts in child processes, a mirror here -----------------------------------------
class Latencies:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.on = False

    def __call__(self, event: Any) -> None:
        if (
            self.on
            and event[4] is ioplex.Quality.GOOD
            and event[1].__class__ is float
            and event[1] > 0
        ):
            self.values.append(time.monotonic() - event[1])


async def mirror_run(
    workdir: Path,
    port: int,
    procs: list[subprocess.Popen[str]],
    expected: int,
    seconds: float,
    restart: bool,
    prefix: str,
) -> dict[str, float]:
    config = host_config(workdir, "central", port, subscribe=["*/*"], prefix=prefix)
    config["ioservers"]["mqtt"]["options"].update(keepalive=30, timeout=30)
    results: dict[str, float] = {}
    aligned_runs = 2 if restart else 1
    for run in range(aligned_runs):
        before = rss()
        start = time.perf_counter()
        host = ioplex.Host.from_config(config, environ=ONLY_THIS_PLUGIN)
        async with host:
            io = host.ioservers["mqtt"]
            good = 0
            with anyio.move_on_after(PHASE_DEADLINE):
                while good < expected:
                    await anyio.sleep(0.05)
                    # a full scan costs the concentrator ~30 ms per 100k points: only
                    # once every point is there
                    if len(io.driver.mirrored) < expected:
                        continue
                    good = sum(
                        1
                        for p in io.driver.mirrored.values()
                        if p.quality is ioplex.Quality.GOOD
                        and p.id.split(".", 1)[1].startswith("dummy.p")
                    )
            if good < expected:  # report how far it got, and stop
                results[f"align{run}"] = float("inf")
                results["aligned"] = good
                return results
            results[f"align{run}"] = time.perf_counter() - start
            if run == aligned_runs - 1 and restart:
                results["bare_align"] = await bare_align(port, prefix, expected)
            if run == 0:  # a second run reuses memory the first one freed
                results["rss_per_point"] = (rss() - before) / expected
            if run < aligned_runs - 1:
                continue
            latencies = Latencies()
            listener = host.points.listen(latencies, "mqtt.*")
            latencies.on = True
            for proc in procs:
                proc.stdin.write("go\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            changes = 0
            for proc in procs:
                changes += json.loads(await readline(proc, seconds + 60))["changes"]
            await anyio.sleep(0.5)
            latencies.on = False
            listener.close()
            results["changes"] = changes
            results["events"] = len(latencies.values)
            results["p50"] = pct(latencies.values, 0.5) * 1000
            results["p99"] = pct(latencies.values, 0.99) * 1000
            results["dropped"] = io.driver.stats["incoming_dropped"]
    return results


async def hosts_phase(
    workdir: Path,
    port: int,
    hosts: int,
    points: int,
    rate: float,
    seconds: float,
    restart: bool,
    prefix: str,
) -> dict[str, float]:
    """Hosts in child processes and a mirror of them all here, on a prefix of their own."""
    procs = [
        child(workdir / prefix, f"h{i:02d}", port, points, rate, seconds, prefix)
        for i in range(hosts)
    ]
    try:
        for proc in procs:
            await readline(proc)
        return await mirror_run(
            workdir / prefix, port, procs, hosts * points, seconds, restart, prefix
        )
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "broker") as broker:
            print(f"mosquitto on 127.0.0.1:{broker.port}; {os.cpu_count()} CPUs; {load()}")
            if not args.skip_throughput:
                await throughput(workdir, broker.port, args.points)
            if not args.skip_latency:
                r = await hosts_phase(
                    workdir,
                    broker.port,
                    1,
                    10_000,
                    args.rate,
                    args.seconds,
                    restart=False,
                    prefix="bench2",
                )
                if "aligned" in r:
                    raise SystemExit(f"2. the mirror did not align within {PHASE_DEADLINE:g} s")
                bare = await bare_latency(broker.port, args.rate, args.seconds, 10_000)
                print(
                    f"2. latency A -> broker -> B at {args.rate:,.0f} changes/s for "
                    f"{args.seconds:g} s: {r['changes']:,.0f} changes, {r['events']:,.0f} "
                    f"events on B; p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms "
                    "(goal <= 50 ms)"
                )
                print(
                    f"   baseline: bare aiomqtt publisher -> broker -> subscriber, same rate, "
                    f"QoS 1: p99 {bare:.1f} ms; ratio {r['p99'] / bare:.2f}; {load()}"
                )
            if not args.skip_scale:
                total = args.hosts * args.host_points
                r = await hosts_phase(
                    workdir,
                    broker.port,
                    args.hosts,
                    args.host_points,
                    args.host_rate,
                    args.seconds,
                    restart=True,
                    prefix="bench3",
                )
                print(
                    f"3. scale: {args.hosts} host processes x {args.host_points:,} points "
                    f"= {total:,} points into one concentrator"
                )
                if "aligned" in r:
                    print(
                        f"   NOT aligned within {PHASE_DEADLINE:g} s: {r['aligned']:,.0f} of "
                        f"{total:,} points mirrored with quality good; stopped"
                    )
                    return
                print(
                    f"   align at first start {r['align0']:.2f} s, after a restart "
                    f"{r['align1']:.2f} s (goal <= 5 s for 100,000)"
                )
                print(
                    f"   baseline: a bare aiomqtt client receives the same retained states in "
                    f"{r['bare_align']:.2f} s; ratio {r['align1'] / r['bare_align']:.2f}; "
                    f"{load()}"
                )
                print(
                    f"   all hosts changing {args.host_rate:g} points/s each: "
                    f"{r['changes']:,.0f} changes, {r['events']:,.0f} events; p50 "
                    f"{r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; incoming dropped "
                    f"{r['dropped']:.0f}"
                )
                print(
                    f"   concentrator memory: {r['rss_per_point']:,.0f} bytes RSS per "
                    "mirrored point"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--host-points", type=int, default=5_000)
    parser.add_argument("--host-rate", type=float, default=500)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    anyio.run(main, parser.parse_args())
