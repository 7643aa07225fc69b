"""Crash safety with real processes: a host killed with SIGKILL loses at most its last batch and
leaves an intact database; a restarted host goes on; a clean stop (SIGTERM) loses nothing."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

FLUSH_INTERVAL = 1.0  # DataLoggers.flush_interval, the default the child runs with

# A host that sets gen.n to start, start+1, ... about 5000 times a second, printing each
# value it reached with the time; on SIGTERM it stops cleanly and prints the last value.
HOST_SCRIPT = """
import signal, sys, time
import anyio, ioplex

async def main(config, start):
    plugins = ioplex.Plugins()
    plugins.load_builtins()
    host = ioplex.Host.from_config(config, plugins=plugins)
    n = start - 1
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async def stop():
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return
            tg.start_soon(stop)
            async with host:
                await host.wait_online()
                io = host.ioservers["gen"]
                while True:
                    for _ in range(50):
                        n += 1
                        io.set("n", n)
                    print(n, time.time(), flush=True)
                    await anyio.sleep(0.01)
    print("stopped", n, flush=True)

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""

CONFIG = """
[host]
data_dir = "data"
[ioservers.gen]
plugin = "dummy"
options.points = {n = 0}
[loggers.seq]
points = ["gen.n"]
levels = ["minute"]
"""


class Child:
    """A host process whose stdout lines are collected as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "IOPLEX_LOAD_PLUGINS": ""}
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def finish(self, sig: int, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop_if_running(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for_batches(db: Path, batches: int, child: Child, timeout: float = 30) -> None:
    """Wait until the running host has committed `batches` more batches."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while len(seen) < batches + 1:
        assert child.proc.poll() is None, child.proc.stderr.read() if child.proc.stderr else ""
        assert time.monotonic() < deadline, f"no batches written: {seen}"
        if db.exists():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                try:
                    row = conn.execute("SELECT last_seq FROM loggers WHERE name = 'seq'").fetchone()
                except sqlite3.OperationalError:
                    row = None
            if row and (not seen or row[0] != seen[-1]):
                seen.append(row[0])
        time.sleep(0.05)


def recorded(db: Path, above: int = 0) -> tuple[list[int], list[int]]:
    """(values, seqs) of good samples of gen.n greater than `above`, in seq order."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "SELECT value, seq FROM samples WHERE point = 'gen.n' AND quality = 'good' "
            "AND value > ? ORDER BY seq",
            (above,),
        ).fetchall()
    return [int(v) for v, _ in rows], [s for _, s in rows]


@pytest.mark.slow
def test_sigkill_loses_at_most_one_batch_and_a_restart_goes_on(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(CONFIG)
    (tmp_path / "host.py").write_text(HOST_SCRIPT)
    db = tmp_path / "data" / "loggers.db"
    command = [sys.executable, "host.py", "site.toml"]

    child = Child([*command, "1"], tmp_path)
    try:
        wait_for_batches(db, 3, child)
        time.sleep(random.uniform(0, FLUSH_INTERVAL))  # anywhere in the batch cycle
        assert child.finish(signal.SIGKILL) == -signal.SIGKILL
    finally:
        child.stop_if_running()
    progress = [(int(n), float(t)) for n, t in (line.split() for line in child.lines)]
    reached = progress[-1][0]

    values, seqs = recorded(db)
    kept = len(values)
    assert kept > 0 and values == list(range(1, kept + 1))  # no gap, no duplicate
    lost = reached - kept
    assert lost >= 0
    if lost:  # the values lost were all set within about one flush interval
        first_lost = next(t for n, t in progress if n > kept)
        assert progress[-1][1] - first_lost <= 2 * FLUSH_INTERVAL, (lost, reached)
    assert lost < reached / 2  # a batch, not the run

    restart = Child([*command, str(reached + 1)], tmp_path)
    try:
        wait_for_batches(db, 1, restart)
        stopped = restart.finish(signal.SIGTERM)
        assert stopped == 0, restart.proc.stderr.read()  # type: ignore[union-attr]
    finally:
        restart.stop_if_running()
    assert restart.lines[-1].startswith("stopped ")
    last = int(restart.lines[-1].split()[1])
    again, new_seqs = recorded(db, above=reached)
    assert again == list(range(reached + 1, last + 1))  # a clean stop loses nothing
    assert min(new_seqs) > max(seqs)  # sequence numbers go on, never reused


@pytest.mark.slow
def test_ioplex_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(
        '[host]\ndata_dir = "data"\n'
        '[ioservers.dummy]\nplugin = "dummy"\n'
        "options = {points = {a = 0, b = 0.0, c = false}, rate = 3000}\n"
        '[loggers.all]\npoints = ["dummy.*"]\n'
    )
    db = tmp_path / "data" / "loggers.db"
    child = Child([sys.executable, "-m", "ioplex", "run", "site.toml"], tmp_path)
    try:
        wait_for_batches_of(db, "all", child)
        assert child.finish(signal.SIGTERM) == 0
    finally:
        child.stop_if_running()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        last = dict(
            conn.execute(
                "SELECT point, quality FROM samples WHERE seq IN "
                "(SELECT max(seq) FROM raw GROUP BY point)"
            ).fetchall()
        )
    # Every point's last sample is its going offline when the I/O server stopped: the final
    # batch was written after the I/O servers had stopped.
    assert last == {f"dummy.{p}": "bad" for p in ("a", "b", "c")} | {"dummy.connection": "good"}


def wait_for_batches_of(db: Path, logger: str, child: Child, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert child.proc.poll() is None, child.proc.stderr.read() if child.proc.stderr else ""
        assert time.monotonic() < deadline
        if db.exists():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                try:
                    row = conn.execute(
                        "SELECT last_seq FROM loggers WHERE name = ?", (logger,)
                    ).fetchone()
                except sqlite3.OperationalError:
                    row = None
            if row and row[0] > 1000:
                return
        time.sleep(0.05)
