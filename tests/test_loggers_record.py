"""Recording through a host into a real SQLite file: values, batching, clean stop, queries,
retention at every level, sequence numbers, the CLI reading while the host runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import ioplex
import pytest
from ioplex import Interval, Quality, Sample

pytestmark = pytest.mark.anyio

DAY = 86_400
T0 = 1_700_000_000 - 1_700_000_000 % DAY  # a UTC midnight


def dummy(**points: Any) -> dict[str, Any]:
    return {"dummy": {"plugin": "dummy", "options": {"points": points}}}


def db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "loggers.db")


async def test_changes_are_recorded_as_numbers_with_quality(
    make_host: Callable[..., ioplex.Host],
) -> None:
    host = make_host(
        {
            "ioservers": dummy(t=20.5, n=1, b=False, s="x", other=0),
            "loggers": {"all": {"points": ["dummy.[tnbs]"]}},
        }
    )
    async with host:
        await host.wait_online()
        io = host.ioservers["dummy"]
        await host.loggers.flush()
        first = host.loggers["all"].query()[-1].seq
        io.set("t", 21.25)
        io.set("n", 7)
        io.set("b", True)
        io.set("s", "42.5")  # a string that reads as a number is that number
        io.set("s", "on")  # any other string is recorded with no value
        io.set("t", 21.25, quality=Quality.STALE)
        io.set("other", 5)  # not matched by the pattern
        await host.loggers.flush()
        rows = host.loggers["all"].query()
    new = [(r.point, r.value, r.quality) for r in rows if r.seq > first]
    assert new == [
        ("dummy.t", 21.25, Quality.GOOD),
        ("dummy.n", 7.0, Quality.GOOD),
        ("dummy.b", 1.0, Quality.GOOD),
        ("dummy.s", 42.5, Quality.GOOD),
        ("dummy.s", None, Quality.GOOD),
        ("dummy.t", 21.25, Quality.STALE),
    ]
    assert all(isinstance(r, Sample) for r in rows)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    # Declared (bad: not yet online), then good once online, for each of the four points.
    assert [(r.point, r.quality) for r in rows[:2]] == [
        ("dummy.t", Quality.BAD),
        ("dummy.n", Quality.BAD),
    ]


async def test_a_clean_stop_loses_nothing(
    make_host: Callable[..., ioplex.Host],
    tmp_path: Path,
) -> None:
    host = make_host({"ioservers": dummy(n=0, m=0), "loggers": {"seq": {"points": ["dummy.*"]}}})
    host.loggers.flush_interval = 3600  # nothing is written before the stop
    async with host:
        await host.wait_online()
        io = host.ioservers["dummy"]
        for i in range(1, 20_001):
            io.set("n", i)
            if i % 1000 == 0:
                await anyio.lowlevel.checkpoint()
        assert host.loggers["seq"].pending > 20_000
    with db(tmp_path) as conn:
        values = [
            v
            for (v,) in conn.execute(
                "SELECT value FROM samples WHERE point = 'dummy.n' AND value > 0 AND quality = 'good' "
                "ORDER BY seq"
            )
        ]
        assert values == list(range(1, 20_001))
        # The I/O servers stop before the final batch: their going offline is recorded too.
        last = conn.execute(
            "SELECT point, quality FROM samples WHERE seq = (SELECT max(seq) FROM raw)"
        ).fetchone()
        assert last[1] == "bad"
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_batches_are_written_within_the_flush_interval(
    make_host: Callable[..., ioplex.Host],
    tmp_path: Path,
) -> None:
    host = make_host({"ioservers": dummy(n=0), "loggers": {"seq": {"points": ["dummy.n"]}}})
    host.loggers.flush_interval = 0.2
    async with host:
        await host.wait_online()
        host.ioservers["dummy"].set("n", 99)
        with anyio.fail_after(3):
            while not any(r.value == 99 for r in host.loggers["seq"].query()):
                await anyio.sleep(0.05)
        # Reaching batch_size wakes the writer early, whatever the interval.
        host.loggers.flush_interval = 3600
        host.loggers.batch_size = 500
        for i in range(600):
            host.ioservers["dummy"].set("n", 1000 + i)
        with anyio.fail_after(3):
            while host.loggers["seq"].pending:
                await anyio.sleep(0.05)


async def test_query_levels_points_and_time_bounds(make_host: Callable[..., ioplex.Host]) -> None:
    # History recorded by hand, long ago: each value is held until the next sample, for at
    # most 90 s (the default, "forever", would hold the last one up to now).
    host = make_host(
        {
            "loggers": {
                "temp": {"levels": ["minute", "hour", "day", "month"], "hold": "90s"},
                "energy": {"kind": "counter", "hold": "90s"},
            }
        }
    )
    async with host:
        temp, energy = host.loggers["temp"], host.loggers["energy"]
        for i in range(48 * 60):  # two days, one sample a minute, two points
            temp.record("room.a", 20 + (i % 60) / 10, time=T0 + i * 60 + 1)
            temp.record("room.b", 10.0, time=T0 + i * 60 + 2)
            energy.record("meter.kwh", i * 0.5, time=T0 + i * 60)
        await host.loggers.flush()
        assert await host.loggers.consolidate() == 3 * 48 * 60

        hours = temp.query(T0, T0 + 2 * 3600, level="hour", points="room.a")
        # Time-weighted: each value counts for the 60 s it is held; the first hour starts
        # with nothing held for 1 s, the last value of an hour is held 59 s in it and 1 s
        # in the next (whose minimum and maximum include it).
        values = [20 + i / 10 for i in range(60)]
        first = (sum(v * 60 for v in values[:-1]) + 25.9 * 59) / 3599
        second = (25.9 + sum(v * 60 for v in values[:-1]) + 25.9 * 59) / 3600
        assert hours == [
            Interval(T0, T0 + 3600, "room.a", 60, 20.0, 25.9, pytest.approx(first), None),
            Interval(T0 + 3600, T0 + 7200, "room.a", 60, 20.0, 25.9, pytest.approx(second), None),
        ]
        assert first != pytest.approx(sum(values) / 60)  # not the mean of the samples
        days = temp.query(level="day")
        # The last values are held 90 s into the third day: rows without samples (count 0).
        assert [(d.point, d.count, d.min, d.max) for d in days[4:]] == [
            ("room.a", 0, 25.9, 25.9),
            ("room.b", 0, 10.0, 10.0),
        ]
        assert days[4].avg == pytest.approx(25.9) and days[5].avg == 10.0
        days = days[:4]
        assert [(d.time, d.end, d.point, d.count) for d in days] == [
            (T0, T0 + DAY, "room.a", 1440),
            (T0, T0 + DAY, "room.b", 1440),
            (T0 + DAY, T0 + 2 * DAY, "room.a", 1440),
            (T0 + DAY, T0 + 2 * DAY, "room.b", 1440),
        ]
        minutes = temp.query(T0 + 60, T0 + 180, level="minute", points=["room.*"])
        assert len(minutes) == 4
        assert len(temp.query(T0, T0 + 3600, points="room.b")) == 60
        assert temp.query(points="nothing.*") == []
        assert len(await temp.aquery(T0, T0 + 600)) == 20
        assert len(temp.query(level="month")) == 2
        energy_days = energy.query(level="day")
        assert [d.delta for d in energy_days] == [1439 * 0.5, 1440 * 0.5, 0.0]  # quiet day 3
        with pytest.raises(ValueError, match="does not keep level 'minute'; it keeps raw, hour"):
            energy.query(level="minute")
        with pytest.raises(ValueError, match="naive datetime"):
            from datetime import datetime

            energy.query(datetime(2024, 1, 1))
        with pytest.raises(ioplex.UnknownLoggerError, match="did you mean 'energy'"):
            host.loggers["enrgy"]


async def test_retention_at_every_level_in_bounded_chunks(
    make_host: Callable[..., ioplex.Host],
    tmp_path: Path,
) -> None:
    retention = {"raw": "1d", "minute": "2d", "hour": "10d", "day": "40d", "month": "100d"}
    host = make_host(
        {
            "loggers": {
                "t": {
                    "levels": ["minute", "hour", "day", "month"],
                    "retention": retention,
                    "hold": "1s",
                }
            }
        }
    )
    host.loggers.expire_chunk = 50
    now = T0 + 150 * DAY
    async with host:
        logger = host.loggers["t"]
        for i in range(150 * 24):  # hourly for 150 days
            logger.record("x.y", float(i), time=T0 + i * 3600)
        await host.loggers.flush()
        # Raw samples not yet consolidated are kept whatever their age.
        assert await host.loggers.expire(now) == 0
        await host.loggers.consolidate()
        deleted = await host.loggers.expire(now)
        assert deleted > 10 * host.loggers.expire_chunk
        with db(tmp_path) as conn:
            for level, keep in (("raw", 1), ("minute", 2), ("hour", 10), ("day", 40)):
                oldest = conn.execute(f"SELECT min(time) FROM {level}").fetchone()[0]
                assert now - keep * DAY <= oldest < now - keep * DAY + 3600, level
            months = [t for (t,) in conn.execute("SELECT time FROM month ORDER BY time")]
        assert months and months[0] >= now - 100 * DAY
        assert len(logger.query(level="hour")) == 10 * 24
        assert len(logger.query(level="raw")) == 24
        assert await host.loggers.expire(now) == 0  # nothing left to do


async def test_seq_only_grows_across_retention_and_restart(
    make_host: Callable[..., ioplex.Host],
) -> None:
    config = {"loggers": {"t": {"levels": ["hour"], "retention": {"raw": "1h"}, "hold": "1s"}}}
    host = make_host(config)
    async with host:
        for i in range(10):
            host.loggers["t"].record("x.y", i, time=T0 + i)
        await host.loggers.flush()
        await host.loggers.consolidate()
        await host.loggers.expire(T0 + DAY)
        assert host.loggers["t"].samples_after(0, 100) == []  # every raw row expired
    host = make_host(config)
    async with host:
        host.loggers["t"].record("x.y", 99, time=T0 + DAY)
        await host.loggers.flush()
        assert host.loggers["t"].samples_after(0, 100) == [
            Sample(11, T0 + DAY, "x.y", 99.0, Quality.GOOD)
        ]
        assert host.loggers["t"].query(level="hour")[0].count == 10  # the intervals remain


async def test_samples_after_pages_in_seq_order(make_host: Callable[..., ioplex.Host]) -> None:
    host = make_host({"loggers": {"a": {}, "b": {}}})
    async with host:
        for i in range(25):
            host.loggers["a"].record("p.a", i, time=T0 + i)
            host.loggers["b"].record("p.b", -i, time=T0 + i)
        await host.loggers.flush()
        a = host.loggers["a"]
        page = a.samples_after(0, 10)
        assert [s.seq for s in page] == list(range(1, 11))
        assert [s.seq for s in a.samples_after(20, 10)] == [21, 22, 23, 24, 25]
        assert a.samples_after(25, 10) == [] and a.samples_after(0, 0) == []
        assert {s.point for s in await a.asamples_after(0, 100)} == {"p.a"}
        assert host.loggers["b"].samples_after(24, 1) == [
            Sample(25, T0 + 24, "p.b", -24.0, Quality.GOOD)
        ]


async def test_pending_samples_are_bounded(make_host: Callable[..., ioplex.Host]) -> None:
    host = make_host({"loggers": {"t": {}}})
    host.loggers.max_pending = 100
    host.loggers.flush_interval = 3600
    async with host:
        for i in range(150):
            host.loggers["t"].record("x.y", i, time=T0 + i)
        assert host.loggers["t"].dropped == 50
        assert await host.loggers.flush() == 100


async def test_two_hosts_cannot_write_one_database(make_host: Callable[..., ioplex.Host]) -> None:
    async with make_host({"loggers": {"t": {}}}):
        with pytest.raises(ioplex.IoplexError, match="already being written by another"):
            async with make_host({"loggers": {"t": {}}}):
                pass


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IOPLEX_LOAD_PLUGINS": ""}
    return subprocess.run(
        [sys.executable, "-m", "ioplex", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_cli_reads_while_the_host_runs(tmp_path: Path, builtins_only: ioplex.Plugins) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        '[host]\ndata_dir = "data"\n'
        '[ioservers.dummy]\nplugin = "dummy"\noptions.points = {kwh = 0}\n'
        '[loggers.energy]\npoints = ["dummy.kwh"]\nkind = "counter"\n'
        'timezone = "Europe/Rome"\nretention.raw = "30d"\n'
    )
    host = ioplex.Host.from_config(config, plugins=builtins_only)
    async with host:
        await host.wait_online()
        for i in range(1, 101):
            host.ioservers["dummy"].set("kwh", i)
        await host.loggers.flush()
        await host.loggers.consolidate()
        listing = await anyio.to_thread.run_sync(cli, "logger", "list", str(config))
        assert listing.returncode == 0, listing.stderr
        assert (
            "energy (counter): dummy.kwh; keeps raw 30d, hour 2y, day 10y, month forever"
            in listing.stdout
        )
        exported = await anyio.to_thread.run_sync(
            cli, "logger", "export", str(config), "energy", "--format", "json", "--since", "1h"
        )
        assert exported.returncode == 0, exported.stderr
        rows = json.loads(exported.stdout)
        assert [r["value"] for r in rows if r["quality"] == "good"][-100:] == list(range(1, 101))
        assert rows[0]["datetime"].endswith(("+01:00", "+02:00"))  # Rome time
        hourly = await anyio.to_thread.run_sync(
            cli, "logger", "export", str(config), "energy", "--level", "hour"
        )
        assert hourly.returncode == 0, hourly.stderr
        header, *lines = hourly.stdout.splitlines()
        assert header == "time,end,datetime,point,count,min,max,avg,delta"
        assert sum(float(line.split(",")[-1]) for line in lines) == 100.0
        bad = await anyio.to_thread.run_sync(
            cli, "logger", "export", str(config), "energy", "--since", "last tuesday"
        )
        assert bad.returncode == 2 and "cannot read time 'last tuesday'" in bad.stderr


async def test_counter_consolidation_resumes_across_chunks_and_restarts(
    make_host: Callable[..., ioplex.Host],
) -> None:
    config = {
        "loggers": {"energy": {"kind": "counter", "levels": ["hour"], "wrap": 1000, "hold": "1min"}}
    }
    # A wrap (990 -> 5: +15), a reset (15 -> 3: +3, confirmed by 8 after it).
    readings = [10, 20, 35, 990, 5, 15, 3, 8]
    host = make_host(config)
    host.loggers.consolidate_chunk = 3
    async with host:
        for i, value in enumerate(readings[:5]):
            host.loggers["energy"].record("m.kwh", value, time=T0 + i * 60)
        await host.loggers.flush()
        assert await host.loggers.consolidate() == 5
    host = make_host(config)  # the last reading (5) is read back from points.last_value
    async with host:
        for i, value in enumerate(readings[5:], start=5):
            host.loggers["energy"].record("m.kwh", value, time=T0 + i * 60)
        await host.loggers.flush()
        await host.loggers.consolidate()
        (hour,) = host.loggers["energy"].query(level="hour")
    assert hour.delta == 10 + 15 + 955 + 15 + 10 + 3 + 5
    assert (hour.count, hour.min, hour.max) == (8, 3.0, 990.0)


async def test_samples_after_is_one_primary_key_range_scan(
    make_host: Callable[..., ioplex.Host],
    tmp_path: Path,
) -> None:
    async with make_host({"loggers": {"t": {}}}) as host:
        host.loggers["t"].record("x.y", 1, time=T0)
        await host.loggers.flush()
    with db(tmp_path) as conn:
        plan = " ".join(
            row[-1]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT raw.seq, raw.time, points.name, raw.value, raw.quality "
                "FROM raw JOIN points ON points.id = raw.point "
                "WHERE raw.logger = 1 AND raw.seq > 10 ORDER BY raw.seq LIMIT 100"
            )
        )
    assert "SEARCH raw USING PRIMARY KEY (logger=? AND seq>?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the key's order is the answer's
