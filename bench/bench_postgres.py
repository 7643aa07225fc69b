"""Shipping data-logger history to PostgreSQL, against a bare COPY of the same rows in the
same run.

    python bench/bench_postgres.py [--samples N] [--points N] [--batch N] [--rounds N]

Setup: a private PostgreSQL 15 on loopback (ioplex_postgres.testing: fsync off, as the tests
run it) and a host whose logger ``temps`` holds N raw samples of P points in its local
SQLite database (recorded and flushed first, not timed).

1. Bare COPY: the same N rows, already in memory as (series, seq, time, value, quality)
   tuples, copied with psycopg's binary COPY into a table shaped like the plugin's raw table
   (primary key (series, time, seq)), in transactions of `--batch` rows: the ceiling.
2. The plugin: a host with ``[plugins.postgres]`` starts with N samples unshipped; the time
   until the shipper is caught up: reading the local database, mapping point
   names to series ids, creating the partition, COPY, the marks' transactions. Timed from
   the start of the plugin's service (connecting and creating the tables included, the
   host's own start not).
   Ratio plugin / bare COPY; goal >= 0.5. Both run `--rounds` times, interleaved, each
   round into fresh tables (its own table prefix): on a shared machine single runs swing
   by 2x; the median ratio is the figure.
3. Consolidated intervals: the time to upsert the logger's minute rows once raw is shipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import ioplex
import psycopg
from ioplex_postgres import shipper_of
from ioplex_postgres.testing import private_postgres

ENV = {**os.environ, "IOPLEX_LOAD_PLUGINS": "postgres"}


def config(base: Path, dsn: str, batch: int, levels: list[str], prefix: str = "ioplex_") -> dict:
    return {
        "host": {"name": "bench", "data_dir": str(base / "data")},
        "loggers": {"temps": {"points": ["d.*"], "levels": ["minute"]}},
        "plugins": {
            "postgres": {
                "dsn": dsn,
                "interval": 0.05,
                "batch_size": batch,
                "levels": levels,
                "table_prefix": prefix,
            }
        },
    }


async def record(base: Path, samples: int, points: int) -> list[tuple]:
    """Record the samples into the local database; return them as rows for the bare COPY."""
    host = ioplex.Host.from_config(config(base, "", 1, ["raw"]), environ=ENV)
    host.loggers.max_pending = samples + 10
    start = time.time() - samples * 0.01
    async with host:
        temps = host.loggers["temps"]
        for i in range(samples):
            temps.record(f"d.p{i % points}", 20 + (i % 97) / 10, time=start + i * 0.01)
            if i % 50_000 == 49_999:
                await host.loggers.flush()
        await host.loggers.flush()
        await host.loggers.consolidate()
        rows = await temps.asamples_after(0, samples + 10)
    return [
        (int(s.point[3:]) + 1, s.seq, datetime.fromtimestamp(s.time, UTC), s.value, 0) for s in rows
    ]


def bare_copy(dsn: str, rows: list[tuple], batch: int, table: str) -> float:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            f"CREATE TABLE {table} (series bigint NOT NULL, seq bigint NOT NULL, "
            "time timestamptz NOT NULL, value double precision, quality smallint "
            "NOT NULL, PRIMARY KEY (series, time, seq))"
        )
        conn.commit()
        began = time.perf_counter()
        for i in range(0, len(rows), batch):
            with (
                conn.cursor() as cur,
                cur.copy(
                    f"COPY {table} (series, seq, time, value, quality) FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "int8", "timestamptz", "float8", "int2"])
                for row in rows[i : i + batch]:
                    copy.write_row(row)
            conn.commit()
        return time.perf_counter() - began


async def ship(
    base: Path, dsn: str, batch: int, levels: list[str], total: int, prefix: str = "ioplex_"
) -> float:
    host = ioplex.Host.from_config(config(base, dsn, batch, levels, prefix), environ=ENV)
    host.loggers.flush_interval = host.loggers.consolidate_interval = 3600
    async with host:
        began = None
        while True:
            shipper = shipper_of(host)
            if shipper is not None and began is None:
                began = time.perf_counter()
            if shipper is not None and shipper.state == "idle":
                done = sum(st.rows for (_, lv), st in shipper.levels.items() if lv in levels)
                if done >= total:
                    return time.perf_counter() - began
            await anyio.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, private_postgres() as pg:
        base = Path(tmp)
        rows = anyio.run(record, base, args.samples, args.points)
        n = len(rows)
        bare, plugin = [], []
        for i in range(args.rounds):
            bare.append(bare_copy(pg.dsn, rows, args.batch, f"bare{i}"))
            plugin.append(anyio.run(ship, base, pg.dsn, args.batch, ["raw"], n, f"r{i}_"))
            with psycopg.connect(pg.dsn) as conn:
                shipped = conn.execute(f"SELECT count(*) FROM r{i}_raw").fetchone()[0]
                copied = conn.execute(f"SELECT count(*) FROM bare{i}").fetchone()[0]
            assert shipped == n == copied, (shipped, n, copied)
        intervals = anyio.run(ship, base, pg.dsn, args.batch, ["raw", "minute"], 1, "r0_")
        with psycopg.connect(pg.dsn) as conn:
            upserted = conn.execute("SELECT count(*) FROM r0_minute").fetchone()[0]
    ratios = sorted(b / p for b, p in zip(bare, plugin, strict=True))
    print(
        f"samples: {n:,} of {args.points} points; transactions of {args.batch:,} rows; "
        f"{args.rounds} rounds"
    )
    print("bare binary COPY:  " + ", ".join(f"{n / t:,.0f}" for t in bare) + " rows/s")
    print(
        "plugin shipping:   "
        + ", ".join(f"{n / t:,.0f}" for t in plugin)
        + " rows/s (from the service's start)"
    )
    print("ratios plugin / bare COPY: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"median ratio: {statistics.median(ratios):.2f}  (goal >= 0.5)")
    print(
        f"minute intervals:  {upserted:,} rows upserted in {intervals:.2f} s "
        f"({upserted / intervals:,.0f} rows/s, from the service's start)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
