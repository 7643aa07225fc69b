"""Fixtures: one private PostgreSQL server per session (ioplex_postgres.testing), a fresh
database per test, and hosts that record into data loggers and ship into it."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import ioplex
import psycopg
import pytest
from ioplex_postgres import Shipper, shipper_of
from ioplex_postgres.testing import PrivatePostgres, private_postgres

ONLY_POSTGRES = {**os.environ, "IOPLEX_LOAD_PLUGINS": "postgres"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture
def pg(server: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The session's server, running (a test may have stopped it)."""
    if not server.running():
        server.start()
    yield server
    if not server.running():
        server.start()


@pytest.fixture
def dsn(pg: PrivatePostgres) -> Iterator[str]:
    """A fresh database on the private server."""
    name = "t_" + secrets.token_hex(6)
    admin = pg.dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg.dsn.rsplit("/", 1)[0] + "/" + name
    if pg.running():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def make_config(
    tmp_path: Path,
    dsn: str,
    name: str = "site-a",
    *,
    rate: float = 0,
    points: int = 5,
    logger_levels: tuple[str, ...] = ("minute", "hour"),
    **settings: Any,
) -> dict[str, Any]:
    return {
        "host": {"name": name, "data_dir": str(tmp_path / name)},
        "ioservers": {
            "d": {
                "plugin": "dummy",
                "options": {"points": {f"t{i}": 20.0 + i for i in range(points)}, "rate": rate},
            }
        },
        "loggers": {
            "temps": {"points": ["d.*"], "levels": list(logger_levels)},
            "energy": {"points": ["d.t0"], "kind": "counter", "levels": ["hour", "day"]},
        },
        "plugins": {"postgres": {"dsn": dsn, "interval": 0.1, **settings}},
    }


@asynccontextmanager
async def running(
    config: dict[str, Any], *, manual: bool = False, environ: dict[str, str] | None = None
) -> AsyncIterator[tuple[Any, Shipper]]:
    """A started host and its shipper, once the shipper exists. `manual`: the loggers
    flush and consolidate only when the test says so (`settle`)."""
    host = ioplex.Host.from_config(config, environ=environ or ONLY_POSTGRES)
    if manual:
        host.loggers.flush_interval = host.loggers.consolidate_interval = 3600.0
    async with host:
        with anyio.fail_after(15):
            while shipper_of(host) is None:
                await anyio.sleep(0.01)
        yield host, shipper_of(host)


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


async def settle(host: Any, shipper: Shipper, timeout: float = 30.0) -> None:
    """Flush and consolidate locally, then wait for a pass that started after that and
    found nothing to ship (a pass under way when this is called may have missed it)."""
    await host.loggers.flush()
    await host.loggers.consolidate()
    first = shipper.passes + 2
    with anyio.fail_after(timeout):
        while shipper.idle_pass < first:
            shipper.wake()
            await anyio.sleep(0.01)


def pg_counts(dsn: str, prefix: str = "ioplex_") -> dict[tuple[str, str], tuple[int, int]]:
    """(host, logger) -> (rows, distinct (host, logger, seq)) in the raw table."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT host, logger, count(*), count(DISTINCT seq) FROM {prefix}samples "
            "GROUP BY host, logger"
        ).fetchall()
    return {(h, lg): (n, d) for h, lg, n, d in rows}


def pg_samples(dsn: str, host: str, logger: str, prefix: str = "ioplex_") -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f"SELECT seq, extract(epoch FROM time)::float8, point, value, quality "
            f"FROM {prefix}samples WHERE host = %s AND logger = %s ORDER BY seq",
            (host, logger),
        ).fetchall()


def local_samples(data_dir: Path, logger: str) -> list[tuple]:
    """Every raw sample of a logger in a (stopped or running) host's database."""
    from ioplex.loggers import Reader

    reader = Reader(data_dir / "loggers.db")
    try:
        out, seq = [], 0
        while batch := reader.samples_after(logger, seq, 50_000):
            out += [
                (s.seq, s.time, s.point, s.value, {"good": 0, "stale": 1, "bad": 2}[s.quality])
                for s in batch
            ]
            seq = batch[-1].seq
        return out
    finally:
        reader.close()


async def drain(config: dict[str, Any], dsn: str | None = None) -> None:
    """Ship what a stopped host left unshipped: the same host and loggers without its I/O
    servers, so nothing new is recorded meanwhile. With `dsn`, also check that PostgreSQL's
    intervals equal the local ones."""
    quiet = {**config, "ioservers": {}}
    async with running(quiet, manual=True) as (host, shipper):
        await settle(host, shipper)
        if dsn is not None:
            assert_same_intervals(host, dsn)


def assert_same_intervals(host: Any, dsn: str) -> int:
    """Every interval of every level the host keeps and ships is in PostgreSQL, with the
    same values, and nothing else of this host; returns how many were compared."""
    levels = host.config.plugins["postgres"]["levels"]
    views = {"minute": "minutes", "hour": "hours", "day": "days", "month": "months"}
    total = 0
    with psycopg.connect(dsn) as conn:
        for lid, logger in host.loggers.items():
            for level in logger.levels[1:]:
                if level not in levels:
                    continue
                local = {
                    (r.point, round(r.time), r.count, r.min, r.max, r.avg, r.delta)
                    for r in logger.query(level=level)
                }
                remote = {
                    (p, round(t), c, lo, hi, avg, d)
                    for p, t, c, lo, hi, avg, d in conn.execute(
                        f"SELECT point, extract(epoch FROM time)::float8, count, min, max, "
                        f"avg, delta FROM ioplex_{views[level]} WHERE host = %s "
                        "AND logger = %s",
                        (host.name, lid),
                    )
                }
                assert local == remote, (host.name, lid, level, local ^ remote)
                total += len(local)
    return total


def assert_same_history(
    tmp_path: Path, dsn: str, name: str, loggers: tuple[str, ...] = ("temps", "energy")
) -> int:
    """PostgreSQL holds exactly the host's local samples, once each; returns the count."""
    counts = pg_counts(dsn)
    total = 0
    for logger in loggers:
        local = local_samples(tmp_path / name, logger)
        remote = pg_samples(dsn, name, logger)
        n, distinct = counts[(name, logger)]
        assert n == distinct == len(local), (name, logger, n, distinct, len(local))
        assert same_rows(local, remote), (name, logger)
        total += n
    return total


def same_rows(local: list[tuple], remote: list[tuple]) -> bool:
    """Equal sample for sample; times to the microsecond timestamptz keeps."""
    if len(local) != len(remote):
        return False
    for a, b in zip(local, remote, strict=True):
        if (a[0], a[2], a[4]) != (b[0], b[2], b[4]) or abs(a[1] - b[1]) > 1e-6:
            return False
        if not (a[3] == b[3] or (a[3] is None and b[3] is None)):
            return False
    return True
