"""Data logger speed: recording through a host versus a bare executemany, and consolidation.

    .venv/bin/python bench/bench_loggers.py                  # 1M changes, 10M raw samples
    .venv/bin/python bench/bench_loggers.py --changes 200000 --raw 1000000   # quicker

1. Recording: a dummy I/O server changes 100 points `--changes` times through `IOServer.set`
   (the registry, the logger's listener, batching, the worker thread, one transaction per
   batch) until the last change is committed; then the same number of rows, pre-built, go
   into a fresh database of the same schema with a bare ``executemany``, one transaction per
   `DataLoggers.batch_size` rows. The ratio host / bare is printed; the goal is >= 0.5. The
   host writes with multi-row INSERTs (see `Store._insert_raw` for why), so the same bare
   load is also timed that way: that ratio is the host's own overhead.
2. Consolidation: `--raw` raw samples (100 points, one sample per point a minute) are
   written straight into the raw table, then consolidated into hours, timed: time-weighted
   (each value held until the next sample, the range default) and, for counters, with reset
   detection. The baseline, measured in the same run, is one SQL ``INSERT ... SELECT ...
   GROUP BY`` of plain per-hour sample means (what consolidation was before time weighting,
   done entirely inside SQLite): the ratio says what time weighting costs.
3. Quiet hours: the same points holding their values through `--quiet-hours` hours without
   a sample, credited by the carry (rows for intervals without samples), timed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import ioplex
from ioplex.loggers.calendar import Calendar
from ioplex.loggers.settings import LoggerSettings
from ioplex.loggers.store import INSERT_RAW, Store

POINTS = 100
T0 = 1_700_000_000 - 1_700_000_000 % 86_400


async def through_host(data_dir: Path, changes: int) -> tuple[float, int]:
    plugins = ioplex.Plugins()
    plugins.load_builtins()
    host = ioplex.Host.from_config(
        {
            "host": {"data_dir": str(data_dir)},
            "ioservers": {
                "dummy": {
                    "plugin": "dummy",
                    "options": {"points": {f"p{i}": 0.0 for i in range(POINTS)}},
                }
            },
            "loggers": {"bench": {"points": ["dummy.p*"], "levels": ["hour"]}},
        },
        plugins=plugins,
    )
    host.loggers.consolidate_interval = 3600  # measure recording alone
    async with host:
        await host.wait_online()
        await host.loggers.flush()
        before = host.loggers["bench"].recorded
        io = host.ioservers["dummy"]
        points = [io.point(f"p{i}") for i in range(POINTS)]
        start = time.perf_counter()
        for i in range(changes):
            io.set(points[i % POINTS], float(i + 1))
            if i % 5000 == 4999:
                await anyio.lowlevel.checkpoint()  # a driver yields between reads, so does this one
        await host.loggers.flush()
        elapsed = time.perf_counter() - start
        recorded = host.loggers["bench"].recorded - before
        dropped = host.loggers["bench"].dropped
    assert dropped == 0, f"{dropped} samples dropped"
    return elapsed, recorded


def bare_insert(data_dir: Path, changes: int, batch: int, multirow: bool) -> float:
    """Pre-built rows into a fresh database of the same schema, one transaction per `batch`:
    with ``executemany`` (the issue's baseline) or with the multi-row INSERT statements the
    host uses (`Store._insert_raw`), to show the host's own overhead."""
    store = Store(data_dir / "loggers.db")
    store.open()
    state = store.register(LoggerSettings("bench", levels=("raw", "hour")))
    ids = [
        store.conn.execute(
            "INSERT INTO points (logger, name) VALUES (?, ?)", (state.id, f"dummy.p{i}")
        ).lastrowid
        for i in range(POINTS)
    ]
    store.conn.commit()
    now = time.time()
    rows = [(state.id, i + 1, now + i * 1e-6, ids[i % POINTS], float(i), 0) for i in range(changes)]
    conn = store.conn
    start = time.perf_counter()
    for i in range(0, changes, batch):
        conn.execute("BEGIN")
        if multirow:
            store._insert_raw(rows[i : i + batch])
        else:
            conn.executemany(INSERT_RAW, rows[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def consolidation(
    data_dir: Path,
    raw: int,
    kind: str,
    quiet_hours: int,
) -> tuple[float, float, float, int, float, int]:
    store = Store(data_dir / "loggers.db")
    store.open()
    settings = LoggerSettings("bench", kind=kind, levels=("raw", "hour"))
    state = store.register(settings)
    ids = [
        store.conn.execute(
            "INSERT INTO points (logger, name) VALUES (?, ?)", (state.id, f"meter.{i}")
        ).lastrowid
        for i in range(POINTS)
    ]
    store.conn.commit()
    conn = store.conn
    start = time.perf_counter()
    chunk = 500_000
    for base in range(0, raw, chunk):
        rows = [
            (state.id, n + 1, T0 + (n // POINTS) * 60.0, ids[n % POINTS], float(n // POINTS), 0)
            for n in range(base, min(raw, base + chunk))
        ]
        conn.execute("BEGIN")
        conn.executemany(INSERT_RAW, rows)
        conn.execute("COMMIT")
    conn.execute("UPDATE loggers SET last_seq = ? WHERE id = ?", (raw, state.id))
    conn.commit()
    state.last_seq = raw
    written = time.perf_counter() - start
    calendar = Calendar()
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute(
        "CREATE TEMP TABLE means AS SELECT point, CAST(time / 3600 AS INTEGER) * 3600 AS hour, "
        "count(*), sum(value), min(value), max(value) FROM raw WHERE logger = ? "
        "GROUP BY point, hour",
        (state.id,),
    )
    conn.execute("COMMIT")
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    taken = 0
    horizon = T0 + (raw // POINTS) * 60.0
    while True:
        n, more = store.consolidate(state, settings, calendar, 50_000, horizon)
        taken += n
        if n < 50_000 and not more:
            break
    elapsed = time.perf_counter() - start
    (hours,) = conn.execute("SELECT count(*) FROM hour").fetchone()
    assert taken == raw
    # Quiet hours: nothing changes for a while; the held values are credited hour by hour.
    start = time.perf_counter()
    while True:
        n, more = store.consolidate(state, settings, calendar, 50_000, horizon + quiet_hours * 3600)
        if not more:
            break
    quiet = time.perf_counter() - start
    (after,) = conn.execute("SELECT count(*) FROM hour").fetchone()
    store.close()
    return written, baseline, elapsed, hours, quiet, after - hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--raw", type=int, default=10_000_000)
    parser.add_argument("--kind", choices=["range", "counter"], default="range")
    parser.add_argument("--quiet-hours", type=int, default=24 * 30)
    args = parser.parse_args()
    batch = ioplex.DataLoggers().batch_size
    root = Path(tempfile.mkdtemp(prefix="ioplex-bench-"))
    try:
        host_time, recorded = anyio.run(through_host, root / "host", args.changes)
        assert recorded == args.changes, (recorded, args.changes)
        bare_time = bare_insert(root / "bare", args.changes, batch, multirow=False)
        multi_time = bare_insert(root / "multi", args.changes, batch, multirow=True)
        host_rate, bare_rate = args.changes / host_time, args.changes / bare_time
        multi_rate = args.changes / multi_time
        print(
            f"recording {args.changes:,} changes of {POINTS} points "
            f"({batch:,} rows per transaction for the bare inserts)"
        )
        print(f"  through the host      : {host_rate:>10,.0f} samples/s ({host_time:.2f} s)")
        print(f"  bare executemany      : {bare_rate:>10,.0f} rows/s    ({bare_time:.2f} s)")
        print(f"  bare multi-row INSERT : {multi_rate:>10,.0f} rows/s    ({multi_time:.2f} s)")
        print(f"  ratio host / bare executemany      : {host_rate / bare_rate:.2f} (goal >= 0.5)")
        print(
            f"  ratio host / bare multi-row INSERT : {host_rate / multi_rate:.2f} "
            "(the host's own overhead)"
        )
        if args.raw:
            written, baseline, elapsed, hours, quiet, rows = consolidation(
                root / "consolidate", args.raw, args.kind, args.quiet_hours
            )
            what = "time-weighted" if args.kind == "range" else "counter, reset detection"
            print(f"consolidating {args.raw:,} raw samples ({what}) into hours")
            print(f"  writing them          : {written:.1f} s")
            print(
                f"  sample means in SQL   : {baseline:.2f} s "
                f"({args.raw / baseline:,.0f} samples/s; the baseline)"
            )
            print(
                f"  consolidating         : {elapsed:.2f} s ({args.raw / elapsed:,.0f} "
                f"samples/s, {hours:,} hourly rows)"
            )
            print(f"  ratio consolidation / SQL sample means : {baseline / elapsed:.2f}")
            print(
                f"  {args.quiet_hours:,} quiet hours of {POINTS} points: {quiet:.2f} s "
                f"({rows / quiet:,.0f} hourly rows/s, {rows:,} rows)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
