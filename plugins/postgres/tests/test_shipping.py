"""Shipping into a real PostgreSQL: rows, marks, series, intervals, partitions, retention."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import anyio
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ioplex import PointNameError
from ioplex.points import check_name
from ioplex_postgres import source

from .conftest import (
    assert_same_history,
    assert_same_intervals,
    drain,
    local_samples,
    make_config,
    pg_counts,
    pg_samples,
    running,
    same_rows,
    settle,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("read", ["raw table", "samples_after"])
async def test_raw_samples_arrive_once_with_their_values(
    tmp_path: Path, dsn: str, read: str, monkeypatch
) -> None:
    if read == "samples_after":  # a local schema version the direct read does not know
        monkeypatch.setattr(source, "KNOWN_SCHEMA", -1)
    config = make_config(tmp_path, dsn, batch_size=7)
    async with running(config) as (host, shipper):
        temps = host.loggers["temps"]
        now = time.time()
        for i in range(50):
            temps.record("d.t1", 20 + i / 4, time=now - 100 + i)
        temps.record("d.t2", "not a number", time=now - 1)
        temps.record("d.t3", 1.5, time=now - 0.5, quality="stale")
        await settle(host, shipper)
        status = shipper.status()
        assert status["state"] == "idle" and status["error"] is None
        local = local_samples(tmp_path / "site-a", "temps")
        remote = pg_samples(dsn, "site-a", "temps")
    assert len(local) >= 52
    assert same_rows(local, remote)
    assert any(r[3] is None for r in remote) and any(r[4] == 1 for r in remote)
    counts = pg_counts(dsn)
    assert counts[("site-a", "temps")] == (len(local), len(local))
    with psycopg.connect(dsn) as conn:
        ((mark, rows),) = conn.execute(
            "SELECT seq, rows FROM ioplex_marks WHERE host = 'site-a' AND logger = 'temps' "
            "AND level = 'raw'"
        ).fetchall()
    assert mark == local[-1][0] and rows == len(local)


@pytest.mark.parametrize("batch", [10_000, 7])
async def test_consolidated_intervals_match_the_local_ones(
    tmp_path: Path, dsn: str, batch: int
) -> None:
    config = make_config(
        tmp_path,
        dsn,
        logger_levels=("minute", "hour"),
        levels=["raw", "minute", "hour", "day"],
        batch_size=batch,
    )
    async with running(config, manual=True) as (host, shipper):
        temps, energy = host.loggers["temps"], host.loggers["energy"]
        now = time.time()
        for i in range(120):
            temps.record("d.t1", 10 + (i % 7), time=now - 7200 + i * 60)
            energy.record("d.t0", 100 + i * 0.5, time=now - 7200 + i * 60)
        await settle(host, shipper)
        # a late sample changes an interval already shipped
        temps.record("d.t1", 99.0, time=now - 7000)
        await settle(host, shipper)
        expected = {
            (lid, level): {
                (r.point, round(r.time), r.count, r.min, r.max, r.avg, r.delta)
                for r in host.loggers[lid].query(level=level)
            }
            for lid, level in (
                ("temps", "minute"),
                ("temps", "hour"),
                ("energy", "hour"),
                ("energy", "day"),
            )
        }
        check_intervals(dsn, expected)
        assert assert_same_intervals(host, dsn) > 100


def check_intervals(dsn: str, expected: dict) -> None:
    with psycopg.connect(dsn) as conn:
        for (lid, level), rows in expected.items():
            view = {"minute": "minutes", "hour": "hours", "day": "days"}[level]
            got = {
                (p, round(t), c, lo, hi, avg, d)
                for p, t, c, lo, hi, avg, d in conn.execute(
                    f"SELECT point, extract(epoch FROM time)::float8, count, min, max, avg, "
                    f"delta FROM ioplex_{view} WHERE host = 'site-a' AND logger = %s",
                    (lid,),
                )
            }
            assert rows and got == rows, (lid, level, sorted(got ^ rows))
        assert 99.0 in {
            r[0] for r in conn.execute("SELECT max FROM ioplex_minutes WHERE point = 'd.t1'")
        }
        # day is not kept by temps: nothing shipped for it, no error
        assert not conn.execute("SELECT 1 FROM ioplex_days WHERE logger = 'temps'").fetchall()


async def test_partitions_follow_the_time_and_retention_drops_them(
    tmp_path: Path, dsn: str
) -> None:
    config = make_config(tmp_path, dsn, partition="day", retention="10d")
    async with running(config) as (host, shipper):
        temps = host.loggers["temps"]
        now = time.time()
        for days in (30, 9, 3, 0):  # 30 days ago: older than the retention, never shipped
            temps.record("d.t1", float(days), time=now - days * 86400)
        await settle(host, shipper)
    with psycopg.connect(dsn) as conn:
        parts = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'ioplex_raw'::regclass ORDER BY 1"
            )
        ]
        values = sorted(
            r[0]
            for r in conn.execute(
                "SELECT value FROM ioplex_samples WHERE point = 'd.t1' AND value IN (30, 9, 3, 0)"
            )
        )
    assert values == [0.0, 3.0, 9.0]
    assert len(parts) >= 3 and all(p.startswith("ioplex_raw_") for p in parts)
    # a partition older than the retention, made by hand, goes at the next retention pass
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE ioplex_raw_old PARTITION OF ioplex_raw "
            "FOR VALUES FROM ('2001-01-01') TO ('2001-01-02')"
        )
    async with running(config) as (host, shipper):
        await settle(host, shipper)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('ioplex_raw_old')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM ioplex_samples WHERE value = 9").fetchone()[0]


async def test_two_hosts_into_one_database(tmp_path: Path, dsn: str) -> None:
    a = make_config(tmp_path, dsn, "site-a", rate=300)
    b = make_config(tmp_path, dsn, "site-b", rate=300)
    async with running(a) as (ha, sa), running(b) as (hb, sb):
        await anyio.sleep(1.5)
        await settle(ha, sa)
        await settle(hb, sb)
        assert sa.shipped > 100 and sb.shipped > 100
    await drain(a, dsn)
    await drain(b, dsn)
    assert assert_same_history(tmp_path, dsn, "site-a") > 300
    assert assert_same_history(tmp_path, dsn, "site-b") > 300
    with psycopg.connect(dsn) as conn:
        hosts = {r[0] for r in conn.execute("SELECT DISTINCT host FROM ioplex_series")}
    assert hosts == {"site-a", "site-b"}


def _recordable(name: str) -> bool:
    """Whether the kernel lets a logger record this name (its point-name rules)."""
    try:
        check_name(name, min_segments=1)
    except PointNameError:
        return False
    return True


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=6, unique=True),
    values=st.lists(
        st.one_of(
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**63), 2**63 - 1),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    ),
)
@example(names=["nul\x00inside", "zw\u200bsp", "é" * 40, "ok"], values=[None, 2**63 - 1, True])
def test_any_point_name_and_value_ships(
    tmp_path_factory, dsn: str, names: list[str], values: list
) -> None:
    """Names recorded by hand (any Unicode the kernel takes as a point name) and any
    recordable value: shipped, never a batch stuck in a retry loop."""
    names = [n for n in names if _recordable("d." + n)] or ["x"]
    tmp = tmp_path_factory.mktemp("fuzz")
    prefix = "f" + secrets.token_hex(4) + "_"
    config = make_config(tmp, dsn, points=1, table_prefix=prefix, timeout=5)

    async def scenario() -> None:
        async with running(config, manual=True) as (host, shipper):
            temps = host.loggers["temps"]
            for i, name in enumerate(names):
                temps.record("d." + name, values[i % len(values)])
            await settle(host, shipper, timeout=20)
            assert shipper.error is None
            local = local_samples(tmp / "site-a", "temps")
            remote = pg_samples(dsn, "site-a", "temps", prefix)
            assert [r[0] for r in local] == [r[0] for r in remote]
            assert [r[2].replace("\x00", "\ufffd") for r in local] == [r[2] for r in remote]
            assert [r[3] for r in local] == [r[3] for r in remote]

    anyio.run(scenario)
