"""hsyco_remote replication speed: two hosts in two processes, HTTPS on loopback.

    python bench/bench_hsyco_remote.py [--rate 20000] [--seconds 5] [--points 100000]

Host A (the remote, serving) runs in a child process; host B (replicating) runs here. A's
points are set by a load generator inside A; each value is A's `time.monotonic()` when it
was set (a system-wide clock on Linux, so B can compute the latency on arrival).

1. Sustained load: A changes its 10,000 points round-robin at --rate changes/s for
   --seconds. Reported: the rate A achieved, the changes delivered to B as events (each
   distinct change is one event on B unless the server coalesced it with a later change of
   the same point), and the end-to-end latency from A's write to B's event, p50 and p99.
   Goals: >= 20,000 changes/s delivered, p99 <= 100 ms.
2. Saturation: A changes its points as fast as it can for --seconds; reported: changes
   made on A per second, events delivered on B per second (the server coalesces per point
   when B falls behind, so every point still ends at its final value, checked).
3. Initial alignment of --points points (A declares them; B connects with startupevents =
   false): the time from B's start to online, and B's peak memory during the alignment
   (tracemalloc, second run), against the baseline of declaring the same points in a local
   registry (no network) measured in the same run. Goal: alignment <= 5 s.

4. rioget mirroring of an HSYCO server: the fake HSYCO of the tests (written from HSYCO's
   documentation: string values, long poll) runs in a child process and changes its 1,000
   points at --rioget-rate changes/s (then as fast as it can) for --seconds; B mirrors it
   with ``protocol = "rioget"`` and converts the values (A's monotonic time) to floats.
   Reported: changes/s delivered as events on B, latency change->event p50/p99 (goal p99
   <= 100 ms), against the baseline of one HTTPS round trip to the same server on a kept-alive
   connection, measured in the same run (a delta costs one round trip plus the server's
   wake-up: the ratio shows what the long poll's turnaround adds).

Baseline for 1: the same generator feeding a local subscriber in A's own registry (no
network), measured in the same child process, for the latency floor of the event loop.

    python bench/bench_hsyco_remote.py --rioget-only     # section 4 alone, ~15 s
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import ioplex
from ioplex_hsyco_remote.wire import PAGE_SIZE

PASSWORD = "bench-password"
LOAD_POINTS = 10_000


# --- the child: host A -------------------------------------------------------------------------


async def serve_a(data_dir: str, points: int) -> None:
    """Host A: serve, then obey commands on stdin ("load <rate> <seconds>", "local ...")."""
    config = {
        "host": {"name": "a", "data_dir": data_dir},
        "ioservers": {"load": {"plugin": "dummy", "options": {"points": {}}}},
        "plugins": {"hsyco_remote": {"server": {"listen": "127.0.0.1:0", "password": PASSWORD}}},
    }
    async with ioplex.Host.from_config(config) as host:
        io = host.ioservers["load"]
        handles = [
            io.declare(f"p{i}", 0.0, quality=ioplex.Quality.GOOD) for i in range(LOAD_POINTS)
        ]
        for i in range(points):
            host.points.declare(f"big.p{i}", i, quiet=True)
        info_file = Path(data_dir) / "hsyco_remote" / "server.json"
        while not info_file.exists():
            await anyio.sleep(0.01)
        print(info_file.read_text().replace("\n", " "), flush=True)
        stdin = anyio.wrap_file(sys.stdin)
        async for line in stdin:
            command, *args = line.split()
            if command == "load":
                made, elapsed = await generate(host, handles, float(args[0]), float(args[1]))
                last = {p.name.split(".", 1)[1]: p.value for p in handles}
                print(json.dumps({"made": made, "elapsed": elapsed, "last": last}), flush=True)
            elif command == "local":
                print(
                    json.dumps(await local_baseline(host, handles, float(args[0]), float(args[1]))),
                    flush=True,
                )
            elif command == "quit":
                return


async def generate(
    host: ioplex.Host, handles: list[Any], rate: float, seconds: float
) -> tuple[int, float]:
    """Set points round-robin at `rate` per second (0: as fast as possible), in steps of
    1 ms, each value the time it was set."""
    update = host.points.update
    now = time.monotonic
    start = now()
    made = 0
    n = len(handles)
    while (elapsed := now() - start) < seconds:
        due = int(elapsed * rate) if rate else made + 2000
        t = now()
        while made < due:
            update(handles[made % n], t)
            made += 1
        await anyio.sleep(0.001 if rate else 0)
    return made, now() - start


async def local_baseline(
    host: ioplex.Host, handles: list[Any], rate: float, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    done = anyio.Event()

    async def consume() -> None:
        with host.subscribe("load.*", maxsize=1_000_000) as events:
            async for event in events:
                latencies.append(time.monotonic() - event.value)
                if done.is_set() and not events.pending():
                    return

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0.05)
        await generate(host, handles, rate, seconds)
        done.set()
        host.points.update(handles[0], time.monotonic())
    latencies.sort()
    return {"p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99)]}


# --- the parent: host B --------------------------------------------------------------------------


class Child:
    def __init__(self, points: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-hsyco-a-")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", self.dir, "--points", str(points)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]

    def ask(self, line: str) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        try:
            assert self.process.stdin
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.process.wait(10)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def b_config(info: dict[str, Any], data_dir: str, io: bool = True) -> dict[str, Any]:
    return {
        "host": {"name": "b", "data_dir": data_dir},
        "ioservers": {
            "a": {
                "plugin": "hsyco_remote",
                "address": "127.0.0.1",
                "port": info["port"],
                "password": PASSWORD,
                "options": {"fingerprint": info["fingerprint"], "io": io},
            }
        },
    }


async def load_run(child: Child, rate: float, seconds: float) -> dict[str, Any]:
    """Run the generator in A while B (here) measures what arrives."""
    with tempfile.TemporaryDirectory() as data_dir:
        host = ioplex.Host.from_config(b_config(child.info, data_dir))
        async with host:
            await host.wait_online("a", timeout=120)
            latencies: list[float] = []
            now = time.monotonic
            received = [0, 0.0]

            def on_change(event: Any) -> None:
                t = now()
                latencies.append(t - event.value)
                received[0] += 1
                received[1] = t

            listener = host.points.listen(on_change, "a.load.p*")
            started = now()
            result = await anyio.to_thread.run_sync(child.ask, f"load {rate} {seconds}")
            final_ok = await check_final(host, result["last"])
            listener.close()  # before B stops: going offline is not a change to count
        latencies.sort()
    span = max(received[1] - started, 1e-9)
    return {
        "made": result["made"],
        "made_rate": result["made"] / result["elapsed"],
        "delivered": received[0],
        "delivered_rate": received[0] / span,
        "p50": latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
        "final_ok": final_ok,
    }


async def check_final(host: ioplex.Host, last: dict[str, float]) -> bool:
    """Within 10 s of the generator stopping, every mirrored load point holds exactly the
    final value A gave it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(host.points[f"a.load.{id}"].value == v for id, v in last.items()):
            return True
        await anyio.sleep(0.05)
    return False


async def alignment_run(child: Child) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as data_dir:
        host = ioplex.Host.from_config(b_config(child.info, data_dir))
        start = time.perf_counter()
        async with host:
            await host.wait_online("a", timeout=300)
            elapsed = time.perf_counter() - start
            count = sum(1 for n in host.points if n.startswith("a.big."))
    return elapsed, count


async def alignment_memory(child: Child) -> int:
    with tempfile.TemporaryDirectory() as data_dir:
        host = ioplex.Host.from_config(b_config(child.info, data_dir))
        gc.collect()
        tracemalloc.start()
        try:
            async with host:
                await host.wait_online("a", timeout=600)
                _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak


async def local_declare_memory(points: int) -> int:
    with tempfile.TemporaryDirectory() as data_dir:
        config = {
            "host": {"data_dir": data_dir},
            "ioservers": {"a": {"plugin": "dummy", "options": {"points": {}}}},
        }
        host = ioplex.Host.from_config(config)
        gc.collect()
        tracemalloc.start()
        try:
            async with host:
                io = host.ioservers["a"]
                for i in range(points):
                    io.declare(f"big.p{i}", i, quiet=True)
                _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def main(args: argparse.Namespace) -> None:
    print(
        f"hsyco_remote benchmark: host A in a child process, host B here, HTTPS on 127.0.0.1;"
        f" {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    child = Child(args.points)
    try:
        print(
            f"\n1. sustained load: {args.rate:,.0f} changes/s offered for {args.seconds:g} s "
            f"over {LOAD_POINTS:,} points"
        )
        baseline = await anyio.to_thread.run_sync(child.ask, f"local {args.rate} 2")
        run = await load_run(child, args.rate, args.seconds)
        print(f"   made on A:       {run['made_rate']:>10,.0f} changes/s ({run['made']:,} changes)")
        print(
            f"   events on B:     {run['delivered']:>10,} ({run['delivered'] / max(run['made'], 1):.1%}"
            f" of the changes made, each as its own event)"
        )
        print(
            f"   latency A->B:    p50 {ms(run['p50'])}, p99 {ms(run['p99'])}, max {ms(run['max'])}"
        )
        print(
            f"   baseline:        a subscriber in A's own registry (no network): "
            f"p50 {ms(baseline['p50'])}, p99 {ms(baseline['p99'])}"
        )
        print(f"   final values:    {'all current' if run['final_ok'] else 'SOME STALE'}")

        print(f"\n2. saturation: A changes its points as fast as it can for {args.seconds:g} s")
        sat = await load_run(child, 0, args.seconds)
        print(f"   made on A:       {sat['made_rate']:>10,.0f} changes/s")
        print(
            f"   events on B:     {sat['delivered_rate']:>10,.0f} changes/s (the server coalesces "
            f"each point's changes while B is behind: {sat['delivered'] / max(sat['made'], 1):.1%}"
            f" arrive as separate events)"
        )
        print(f"   latency A->B:    p50 {ms(sat['p50'])}, p99 {ms(sat['p99'])}")
        print(f"   final values:    {'all current' if sat['final_ok'] else 'SOME STALE'}")
        print(
            f"\n   goals: throughput {sat['delivered_rate']:,.0f} changes/s delivered = "
            f"{sat['delivered_rate'] / 20_000:.1f} x the 20,000 goal; p99 at 20,000 changes/s "
            f"{ms(run['p99'])} = {0.1 / max(run['p99'], 1e-9):.1f} x under the 100 ms goal"
        )

        print(
            f"\n3. initial alignment of {args.points:,} points (plus {LOAD_POINTS:,} load points)"
        )
        elapsed, count = await alignment_run(child)
        print(
            f"   time to online:  {elapsed:.2f} s for {count:,} points "
            f"({count / elapsed:,.0f} points/s) = {5 / elapsed:.1f} x under the 5 s goal"
        )
        peak = await alignment_memory(child)
        base = await local_declare_memory(args.points + LOAD_POINTS)
        print(
            f"   peak memory B:   {peak / 1e6:.1f} MB during the alignment; baseline, the same "
            f"points declared locally: {base / 1e6:.1f} MB; ratio {peak / base:.2f}"
        )
        print(
            f"                    (+{(peak - base) / 1e6:.1f} MB, {(peak - base) / max(count, 1):.0f}"
            f" B per point: the mirror's own index of its points and the alignment's set of "
            f"names; the stream is held one page of {PAGE_SIZE:,} points at a time)"
        )
    finally:
        child.close()


# --- 4. rioget: a fake HSYCO in a child process ---------------------------------------------------

RIOGET_POINTS = 1000
FAKE_HSYCO = Path(__file__).parents[1] / "plugins" / "hsyco_remote" / "tests" / "fake_hsyco.py"


def _fake_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_fake_hsyco", FAKE_HSYCO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def serve_hsyco(data_dir: str) -> None:
    """The child of section 4: a fake HSYCO; obeys "load <rate> <seconds>" on stdin."""
    import ssl

    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(Path(data_dir) / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    points = {f"load.p{i}": "0" for i in range(RIOGET_POINTS)}
    fake = _fake_module().FakeHsyco(points, PASSWORD, context)
    async with anyio.create_task_group() as tg:
        await fake.start(tg)
        print(json.dumps({"port": fake.port, "cafile": str(Path(data_dir) / "ca.pem")}), flush=True)
        stdin = anyio.wrap_file(sys.stdin)
        async for line in stdin:
            command, *args = line.split()
            if command == "load":
                rate, seconds = float(args[0]), float(args[1])
                made, started, i = 0, time.monotonic(), 0
                names = list(points)
                while (now := time.monotonic()) - started < seconds:
                    due = int((now - started) * rate) - made if rate else 200
                    for _ in range(max(due, 0)):
                        fake.set(names[i], repr(time.monotonic()))
                        i = (i + 1) % RIOGET_POINTS
                        made += 1
                    await anyio.sleep(0.001 if rate else 0)
                last = {n: fake.values[n] for n in names}
                print(
                    json.dumps({"made": made, "elapsed": time.monotonic() - started, "last": last}),
                    flush=True,
                )
            elif command == "quit":
                break
        tg.cancel_scope.cancel()


class HsycoChild(Child):
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-fake-hsyco-")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--hsyco-child", self.dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]


async def rioget_run(child: HsycoChild, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        config = {
            "host": {"name": "b", "data_dir": data_dir},
            "ioservers": {
                "hsyco": {
                    "plugin": "hsyco_remote",
                    "address": "127.0.0.1",
                    "port": child.info["port"],
                    "password": PASSWORD,
                    "options": {
                        "protocol": "rioget",
                        "cafile": child.info["cafile"],
                        "convert": {"load.*": "float"},
                    },
                }
            },
        }
        async with ioplex.Host.from_config(config) as host:
            await host.wait_online("hsyco", timeout=60)
            latencies: list[float] = []
            now = time.monotonic

            good = ioplex.Quality.GOOD

            def on_change(event: Any) -> None:
                # value changes only (not the quality turning bad as the host stops)
                if event.quality is good and event.value != event.old_value:
                    latencies.append(now() - event.value)

            host.points.listen(on_change, "hsyco.load.*")
            result = await anyio.to_thread.run_sync(child.ask, f"load {rate} {seconds}")
            last = {f"hsyco.{n}": float(v) for n, v in result["last"].items()}
            with anyio.move_on_after(15):
                while any(host.points[n].value != v for n, v in last.items()):
                    await anyio.sleep(0.01)
            final_ok = all(host.points[n].value == v for n, v in last.items())
            rtt = await https_round_trips(child.info, 200)
            arrived = sorted(latencies)  # before the host stops (its points turn bad)
    count = len(arrived) or 1
    return {
        "made": result["made"],
        "made_rate": result["made"] / result["elapsed"],
        "delivered": len(arrived),
        "delivered_rate": len(arrived) / result["elapsed"],
        "p50": arrived[count // 2] if arrived else float("nan"),
        "p99": arrived[int(count * 0.99)] if arrived else float("nan"),
        "final_ok": final_ok,
        "rtt_p50": rtt[len(rtt) // 2],
        "rtt_p99": rtt[int(len(rtt) * 0.99)],
    }


async def https_round_trips(info: dict[str, Any], count: int) -> list[float]:
    """One HTTPS request/answer on a kept-alive connection to the fake (its 404 path)."""
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=info["cafile"])
    times = []
    async with httpx.AsyncClient(verify=context) as client:
        url = f"https://127.0.0.1:{info['port']}/api/v1/info"
        await client.get(url)
        for _ in range(count):
            started = time.monotonic()
            await client.get(url)
            times.append(time.monotonic() - started)
    return sorted(times)


async def rioget_section(args: argparse.Namespace) -> None:
    print(
        f"\n4. rioget mirroring of a fake HSYCO ({RIOGET_POINTS:,} string points, child "
        f"process), {args.rioget_rate:,.0f} changes/s for {args.seconds:g} s, then saturation"
    )
    child = HsycoChild()
    try:
        run = await rioget_run(child, args.rioget_rate, args.seconds)
        sat = await rioget_run(child, 0, args.seconds)
    finally:
        child.close()
    for label, r in (("sustained", run), ("saturation", sat)):
        print(
            f"   {label + ':':<12} made {r['made_rate']:>8,.0f}/s; events on B "
            f"{r['delivered_rate']:>8,.0f}/s ({r['delivered'] / max(r['made'], 1):.1%} as "
            f"separate events, the rest coalesced per point); latency change->event p50 "
            f"{ms(r['p50'])}, p99 {ms(r['p99'])}; final values "
            f"{'all current' if r['final_ok'] else 'SOME STALE'}"
        )
    print(
        f"   baseline:    one HTTPS round trip to the same server, kept-alive: p50 "
        f"{ms(run['rtt_p50'])}, p99 {ms(run['rtt_p99'])}"
    )
    print(
        f"   ratio:       p99 latency / p99 round trip = {run['p99'] / run['rtt_p99']:.1f}; "
        f"p99 {ms(run['p99'])} = {0.1 / max(run['p99'], 1e-9):.1f} x under the 100 ms goal"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--rioget-rate", type=float, default=2_000)
    parser.add_argument(
        "--rioget-only", action="store_true", help="run section 4 (rioget mirroring) alone"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hsyco-child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        anyio.run(serve_a, arguments.child, arguments.points)
    elif arguments.hsyco_child:
        anyio.run(serve_hsyco, arguments.hsyco_child)
    elif arguments.rioget_only:
        anyio.run(rioget_section, arguments)
    else:
        anyio.run(main, arguments)
        anyio.run(rioget_section, arguments)
