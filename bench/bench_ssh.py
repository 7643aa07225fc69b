"""Speed of the ssh plugin against a private local sshd, each figure beside a baseline.

1. Command latency: `ssh.exec = "true"` through a host (the write until the exec event),
   against raw asyncssh `conn.run("true")` on a connection opened with the same options.
   Goal: ratio at most 1.3.
2. SCP throughput of a 100 MB file, put and get through the host (the write until the
   put/get event), against OpenSSH's `scp` (its default, SFTP-based, and `scp -O`, the
   classic protocol the plugin speaks). Goal: at least 0.7 of `scp`'s throughput.
   `scp` runs as a new process and pays its own connection setup, which the persistent
   plugin connection does not; the "transfer only" figure subtracts that setup, measured as
   the time of `ssh ... true` with the same options.
3. Polled-command throughput: 100 configured commands (`options.commands`, `echo 1`,
   parse int) every 1 s through one instance's sequential queue, in commands completed per
   second, against raw asyncssh running `echo 1` back to back on one connection (the most a
   sequential queue can do).

Needs root (a private sshd and a throwaway user, as in the tests):

    .venv/bin/python bench/bench_ssh.py [--runs 200] [--size-mb 100] [--poll-seconds 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio
import asyncssh
import ioplex
from ioplex_ssh.connection import ENCRYPTION_ALGS
from ioplex_ssh.testing import PrivateSSHD, SSHUser, private_sshd


async def exec_latency(host: ioplex.Host, runs: int) -> list[float]:
    times = []
    with host.subscribe("ssh.exec") as events:
        for _ in range(runs):
            start = time.perf_counter()
            await host.write("ssh.exec", "true")
            async for event in events:
                if event.value == 0:
                    break
                raise RuntimeError(f"`true` gave {event.value!r}")
            times.append(time.perf_counter() - start)
    return times


async def raw_latency(conn: asyncssh.SSHClientConnection, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = await conn.run("true")
        times.append(time.perf_counter() - start)
        assert result.exit_status == 0
    return times


async def transfer(host: ioplex.Host, point: str, value: str) -> float:
    with host.subscribe(point) as events:
        start = time.perf_counter()
        await host.write(point, value)
        event = await events.__anext__()
        elapsed = time.perf_counter() - start
    if not isinstance(event.value, int):
        raise TypeError(f"{point} = {value!r} gave {event.value!r}")
    return elapsed


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def summary(times: list[float]) -> str:
    median, mean = statistics.median(times) * 1000, statistics.mean(times) * 1000
    return f"median {median:.2f} ms, mean {mean:.2f} ms"


async def bench_exec(
    host: ioplex.Host, server: PrivateSSHD, user: SSHUser, known: Path, runs: int
) -> None:
    async with asyncssh.connect(
        "127.0.0.1",
        server.port,
        username=user.name,
        client_keys=[user.key],
        known_hosts=str(known),
        config=None,
        agent_path=None,
        encryption_algs=ENCRYPTION_ALGS,
        keepalive_interval=15,
    ) as conn:
        await exec_latency(host, 20)  # warm up both
        await raw_latency(conn, 20)
        ours: list[float] = []
        raw: list[float] = []
        for _ in range(4):  # interleaved blocks, so drift hits both alike
            ours += await exec_latency(host, runs // 4)
            raw += await raw_latency(conn, runs // 4)
    ratio = statistics.median(ours) / statistics.median(raw)
    print(f"exec latency, {len(ours)} runs each")
    print(f"  ioplex ssh.exec = 'true' (write -> event): {summary(ours)}")
    print(f"  raw asyncssh conn.run('true'):              {summary(raw)}")
    print(f"  ratio (median, ioplex / raw): {ratio:.3f}   goal <= 1.3")


def openssh_times(
    server: PrivateSSHD, user: SSHUser, known: Path, local: Path, remote: Path, back: Path
) -> tuple[float, dict[str, tuple[float, float]]]:
    """OpenSSH's connection setup time, and its best (put, get) times per scp flavour."""
    options = [
        "-i",
        str(user.key_path),
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "StrictHostKeyChecking=yes",
    ]
    target = f"{user.name}@127.0.0.1"
    setup = min(timed(["ssh", *options, "-p", str(server.port), target, "true"]) for _ in range(3))
    times = {}
    for label, flags in (("scp", []), ("scp -O", ["-O"])):
        scp = ["scp", *flags, *options, "-P", str(server.port)]
        put = min(timed([*scp, str(local), f"{target}:{remote}"]) for _ in range(3))
        get = min(timed([*scp, f"{target}:{remote}", str(back)]) for _ in range(3))
        times[label] = (put, get)
    return setup, times


async def raw_throughput(conn: asyncssh.SSHClientConnection, seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        result = await conn.run("echo 1")
        assert result.exit_status == 0
        done += 1
    return done / (time.perf_counter() - start)


async def bench_polled(
    config: dict, server: PrivateSSHD, user: SSHUser, known: Path, seconds: float
) -> None:
    """100 polled commands at 1 s: how many complete per second, against raw asyncssh."""
    commands = [
        {"id": f"p{i}", "command": "echo 1", "interval": 1, "parse": "int"} for i in range(100)
    ]
    polled = {
        **config,
        "ioservers": {
            "ssh": {
                **config["ioservers"]["ssh"],
                "options": {
                    **config["ioservers"]["ssh"]["options"],
                    "commands": commands,
                    "queue": 200,
                },
            }
        },
    }
    environ = {**os.environ, "IOPLEX_LOAD_PLUGINS": "ssh"}
    async with ioplex.Host.from_config(polled, environ=environ) as host:
        await host.wait_online("ssh")
        driver = host.ioservers["ssh"].driver
        await anyio.sleep(1.5)  # the first round, queued at once, settles
        count, start = driver.polls_done, time.perf_counter()
        await anyio.sleep(seconds)
        ours = (driver.polls_done - count) / (time.perf_counter() - start)
        dropped = driver.dropped_polls
    async with asyncssh.connect(
        "127.0.0.1",
        server.port,
        username=user.name,
        client_keys=[user.key],
        known_hosts=str(known),
        encryption_algs=ENCRYPTION_ALGS,
        agent_path=None,
    ) as conn:
        raw = await raw_throughput(conn, min(seconds, 3))
    print(f"\npolled commands: 100 at 1 s for {seconds:g} s")
    print(f"  ioplex completed   {ours:7.1f} commands/s (offered 100/s; {dropped} polls dropped)")
    print(f"  raw asyncssh       {raw:7.1f} commands/s back to back on one connection")
    print(f"  ratio ioplex / min(offered, raw): {ours / min(100.0, raw):.2f}")


async def main(runs: int, size_mb: int, poll_seconds: float) -> None:
    logging.basicConfig(level=logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-ssh-"))
    try:
        with private_sshd(work / "sshd") as (server, user):
            data = work / "data"
            (data / "ssh").mkdir(parents=True)
            (data / "files").mkdir()
            known = data / "ssh" / "known_hosts"
            known.write_text(server.known_hosts())
            shutil.copy(user.key_path, data / "id")
            size = size_mb * 1_000_000
            with open(data / "files" / "big.bin", "wb") as file:  # noqa: ASYNC230
                file.writelines(os.urandom(1_000_000) for _ in range(size_mb))
            config = {
                "host": {"data_dir": str(data)},
                "ioservers": {
                    "ssh": {
                        "plugin": "ssh",
                        "address": "127.0.0.1",
                        "port": server.port,
                        "user": user.name,
                        "options": {"key": "id", "timeout": 120},
                    }
                },
            }
            remote = user.home / "big.bin"
            environ = {**os.environ, "IOPLEX_LOAD_PLUGINS": "ssh"}
            async with ioplex.Host.from_config(config, environ=environ) as host:
                await host.wait_online("ssh")
                await bench_exec(host, server, user, known, runs)
                put_s = min(
                    [await transfer(host, "ssh.put", f"big.bin {remote}") for _ in range(3)]
                )
                get_s = min(
                    [await transfer(host, "ssh.get", f"{remote} back.bin") for _ in range(3)]
                )
            assert (data / "files" / "back.bin").stat().st_size == size
            await bench_polled(config, server, user, known, poll_seconds)
            setup, baselines = openssh_times(
                server, user, known, data / "files" / "big.bin", remote, work / "scp_back.bin"
            )
        mb = size / 1e6
        print(f"\nSCP of a {size_mb} MB file (best of 3; MB/s)")
        print(f"  ioplex     put {mb / put_s:7.1f}   get {mb / get_s:7.1f}")
        for label, (bput, bget) in baselines.items():
            print(
                f"  {label:<10} put {mb / bput:7.1f}   get {mb / bget:7.1f}"
                f"   (transfer only, minus {setup * 1000:.0f} ms setup: "
                f"put {mb / (bput - setup):7.1f}   get {mb / (bget - setup):7.1f})"
            )
        bput, bget = baselines["scp"]
        print(
            f"  throughput ratio ioplex / scp: put {bput / put_s:.2f}, get {bget / get_s:.2f}"
            f"   (transfer only: put {(bput - setup) / put_s:.2f}, "
            f"get {(bget - setup) / get_s:.2f})   goal >= 0.7"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="exec round trips per side")
    parser.add_argument("--size-mb", type=int, default=100, help="SCP file size in MB")
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=5,
        help="seconds of polled-command throughput measured",
    )
    args = parser.parse_args()
    anyio.run(main, args.runs, args.size_mb, args.poll_seconds)
