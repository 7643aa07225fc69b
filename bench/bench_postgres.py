"""Shipping data-logger history to PostgreSQL, against a bare COPY of the same rows in the
same run.

    python bench/bench_postgres.py [--samples N] [--points N] [--batch N]

Setup: a private PostgreSQL 15 on loopback (ioplex_postgres.testing: fsync off, as the tests
run it) and a host whose logger ``temps`` holds N raw samples of P points in its local
SQLite database (recorded and flushed first, not timed).

1. Bare COPY: the same N rows, already in memory as (series, seq, time, value, quality)
   tuples, copied with psycopg's binary COPY into a table shaped like the plugin's raw table
   (primary key (series, time, seq)), in transactions of `--batch` rows: the ceiling.
2. The plugin: a host with ``[plugins.postgres]`` starts with N samples unshipped; the time
   from its start until the shipper is caught up: reading the local database, mapping point
   names to series ids, creating the partition, COPY, the marks' transactions.
   Ratio plugin / bare COPY; goal >= 0.5.
3. Consolidated intervals: the time to upsert the logger's minute rows once raw is shipped.
"""

from __future__ import annotations

import argparse
import os
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


def config(base: Path, dsn: str, batch: int, levels: list[str]) -> dict:
    return {
        "host": {"name": "bench", "data_dir": str(base / "data")},
        "loggers": {"temps": {"points": ["d.*"], "levels": ["minute"]}},
        "plugins": {"postgres": {"dsn": dsn, "interval": 0.05, "batch_size": batch,
                                 "levels": levels}},
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
    return [(int(s.point[3:]) + 1, s.seq, datetime.fromtimestamp(s.time, UTC), s.value, 0)
            for s in rows]


def bare_copy(dsn: str, rows: list[tuple], batch: int) -> float:
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE bare (series bigint NOT NULL, seq bigint NOT NULL, "
                     "time timestamptz NOT NULL, value double precision, quality smallint "
                     "NOT NULL, PRIMARY KEY (series, time, seq))")
        conn.commit()
        began = time.perf_counter()
        for i in range(0, len(rows), batch):
            with conn.cursor() as cur, cur.copy(
                    "COPY bare (series, seq, time, value, quality) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int8", "timestamptz", "float8", "int2"])
                for row in rows[i:i + batch]:
                    copy.write_row(row)
            conn.commit()
        return time.perf_counter() - began


async def ship(base: Path, dsn: str, batch: int, levels: list[str], total: int) -> float:
    host = ioplex.Host.from_config(config(base, dsn, batch, levels), environ=ENV)
    host.loggers.flush_interval = host.loggers.consolidate_interval = 3600
    began = time.perf_counter()
    async with host:
        while True:
            shipper = shipper_of(host)
            if shipper is not None and shipper.state == "idle":
                done = sum(st.rows for (_, lv), st in shipper.levels.items() if lv in levels)
                if done >= total:
                    break
            await anyio.sleep(0.01)
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, private_postgres() as pg:
        base = Path(tmp)
        rows = anyio.run(record, base, args.samples, args.points)
        n = len(rows)
        bare = bare_copy(pg.dsn, rows, args.batch)
        plugin = anyio.run(ship, base, pg.dsn, args.batch, ["raw"], n)
        with psycopg.connect(pg.dsn) as conn:
            shipped = conn.execute("SELECT count(*) FROM ioplex_raw").fetchone()[0]
            copied = conn.execute("SELECT count(*) FROM bare").fetchone()[0]
        assert shipped == n == copied, (shipped, n, copied)
        intervals = anyio.run(ship, base, pg.dsn, args.batch, ["raw", "minute"], 1)
        with psycopg.connect(pg.dsn) as conn:
            upserted = conn.execute("SELECT count(*) FROM ioplex_minute").fetchone()[0]
    print(f"samples: {n:,} of {args.points} points; transactions of {args.batch:,} rows")
    print(f"bare binary COPY:  {n / bare:12,.0f} rows/s  ({bare:.2f} s)")
    print(f"plugin shipping:   {n / plugin:12,.0f} rows/s  ({plugin:.2f} s, from host start)")
    print(f"ratio plugin / bare COPY: {bare / plugin:.2f}  (goal >= 0.5)")
    print(f"minute intervals:  {upserted:,} rows upserted in {intervals:.2f} s "
          f"({upserted / intervals:,.0f} rows/s, from host start)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
