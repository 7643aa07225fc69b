"""Faults: PostgreSQL stopped and restarted, frozen (SIGSTOP), a host SIGKILLed mid-shipment,
two hosts under one name. After each, PostgreSQL holds exactly the hosts' local samples."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import ioplex
import psycopg
import pytest
from ioplex.supervisor import State

from .conftest import (
    ONLY_POSTGRES,
    assert_same_history,
    drain,
    make_config,
    running,
    settle,
    until,
)

pytestmark = pytest.mark.anyio
FAST_RETRY = {"restart_delay": 0.2, "restart_max_delay": 1.0}


def with_fast_retry(config: dict) -> dict:
    config["host"].update(FAST_RETRY)
    return config


async def test_postgres_stopped_and_restarted(tmp_path: Path, pg, dsn: str, caplog) -> None:
    caplog.set_level(logging.INFO)
    a = with_fast_retry(make_config(tmp_path, dsn, "site-a", rate=200, batch_size=500))
    b = with_fast_retry(make_config(tmp_path, dsn, "site-b", rate=200, batch_size=500))
    a["ioservers"]["sys"] = {"plugin": "system"}
    async with running(a) as (ha, sa), running(b) as (hb, sb):
        await until(lambda: sa.shipped > 50 and sb.shipped > 50)
        await anyio.to_thread.run_sync(pg.stop)
        await until(lambda: ha.services.get("postgres") is State.RETRYING, timeout=30)
        assert sa.error and "127.0.0.1" in sa.error
        await until(lambda: ha.points["sys.plugins.postgres"].value == "retrying")
        shipped = sa.shipped
        await anyio.sleep(3)  # the hosts keep recording meanwhile
        await anyio.to_thread.run_sync(pg.start)
        await until(lambda: sa.shipped > shipped + 200 and sb.shipped > 200, timeout=60)
        await settle(ha, sa)
        await settle(hb, sb)
        assert sa.error is None and ha.services["postgres"] is State.ONLINE
    await drain(a, dsn)
    await drain(b, dsn)
    assert assert_same_history(tmp_path, dsn, "site-a") > 500
    assert assert_same_history(tmp_path, dsn, "site-b") > 500
    text = caplog.text
    assert pg.password not in text
    failures = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and "plugin postgres" in r.getMessage()
    ]
    # one line per distinct failure and host, not one per retry
    assert 1 <= len(failures) <= 6, [r.getMessage() for r in failures]
    # each names the plugin, what it was doing and the database
    assert all(
        "ShippingError: postgres: " in r.getMessage()
        and f"PostgreSQL at 127.0.0.1:{pg.port}/" in r.getMessage()
        for r in failures
    )


async def test_frozen_postgres_times_out_and_recovers(tmp_path: Path, pg, dsn: str) -> None:
    config = with_fast_retry(make_config(tmp_path, dsn, rate=200, timeout=2, batch_size=200))
    async with running(config) as (host, shipper):
        await until(lambda: shipper.shipped > 50)
        pg.freeze()
        try:
            await until(lambda: shipper.error is not None, timeout=20)
            assert "no answer within 2 s" in shipper.error
            assert host.services["postgres"] is State.RETRYING
        finally:
            pg.thaw()
        await until(lambda: shipper.error is None and shipper.state != "connecting", timeout=30)
        await settle(host, shipper)
    await drain(config, dsn)
    assert_same_history(tmp_path, dsn, "site-a")


def write_toml(path: Path, name: str, data_dir: Path) -> None:
    path.write_text(f"""
[host]
name = "{name}"
data_dir = "{data_dir}"
restart_delay = 0.2
restart_max_delay = 1.0

[ioservers.d]
plugin = "dummy"
options = {{ points = {{ t0 = 1.0, t1 = 2.0, t2 = 3.0, t3 = 4.0 }}, rate = 3000 }}

[loggers.temps]
points = ["d.*"]
levels = ["minute", "hour"]

[loggers.energy]
points = ["d.t0"]
kind = "counter"
levels = ["hour", "day"]

[plugins.postgres]
dsn = {{ env = "IOPLEX_PG_DSN" }}
interval = 0.05
batch_size = 300
""")


def in_transaction(dsn: str, application: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
                "AND state IN ('active', 'idle in transaction')",
                (application,),
            ).fetchall()
        )


def shipped_rows(dsn: str, host: str) -> int:
    with psycopg.connect(dsn) as conn:
        try:
            return conn.execute(
                "SELECT coalesce(sum(rows), 0) FROM ioplex_marks WHERE host = %s AND level = 'raw'",
                (host,),
            ).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def test_host_sigkilled_mid_shipment(tmp_path: Path, dsn: str) -> None:
    config = tmp_path / "site.toml"
    write_toml(config, "site-k", tmp_path / "site-k")
    env = {**ONLY_POSTGRES, "IOPLEX_PG_DSN": dsn}
    cli = [sys.executable, "-m", "ioplex", "run", str(config)]
    rng = random.Random(16)
    kills = mid_transaction = 0
    for _ in range(3):
        before = shipped_rows(dsn, "site-k")
        proc = subprocess.Popen(
            cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while shipped_rows(dsn, "site-k") < before + 500:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 0.3))
            deadline = time.monotonic() + 20
            while not (busy := in_transaction(dsn, "ioplex site-k")):
                if time.monotonic() > deadline:
                    break
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
            mid_transaction += busy
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            if proc.stderr:
                proc.stderr.close()
    assert kills == 3 and mid_transaction >= 1
    data = {
        "host": {"name": "site-k", "data_dir": str(tmp_path / "site-k")},
        "ioservers": {},
        "loggers": {
            "temps": {"points": ["d.*"], "levels": ["minute", "hour"]},
            "energy": {"points": ["d.t0"], "kind": "counter", "levels": ["hour", "day"]},
        },
        "plugins": {"postgres": {"dsn": dsn, "interval": 0.05}},
    }
    anyio.run(drain, data, dsn)
    assert assert_same_history(tmp_path, dsn, "site-k") > 1500


async def test_two_hosts_under_one_name_are_refused(tmp_path: Path, dsn: str, caplog) -> None:
    a = make_config(tmp_path / "one", dsn, "same")
    b = make_config(tmp_path / "two", dsn, "same")
    async with running(a) as (ha, sa):
        await settle(ha, sa)
    async with running(b) as (hb, _sb):
        await until(lambda: hb.services.get("postgres") is State.FAILED)
    assert "two hosts share the name 'same'" in caplog.text
    assert isinstance(ioplex.FatalError, type)


async def test_refused_password_that_later_clears(tmp_path: Path, pg, dsn: str, caplog) -> None:
    """A wrong password is retried with backoff, logged without the password, and shipping
    starts once the role's password is set to it."""
    wrong, right = "first-" + os.urandom(6).hex(), "second-" + os.urandom(6).hex()
    database = dsn.rsplit("/", 1)[1]
    role = "shipper_" + os.urandom(3).hex()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{wrong}'")
        conn.execute(f"ALTER DATABASE {database} OWNER TO {role}")
    shipper_dsn = f"postgresql://{role}:{right}@127.0.0.1:{pg.port}/{database}"
    config = with_fast_retry(make_config(tmp_path, shipper_dsn, rate=100))
    async with running(config) as (host, shipper):
        await until(lambda: shipper.error is not None and "password" in shipper.error)
        assert host.services["postgres"] is State.RETRYING
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} PASSWORD '{right}'")
        await until(lambda: shipper.shipped > 20, timeout=30)
        await settle(host, shipper)
    await drain(config, dsn)
    assert_same_history(tmp_path, dsn, "site-a")
    assert right not in caplog.text and wrong not in caplog.text
    refusals = [r for r in caplog.records if "password authentication failed" in r.getMessage()]
    assert len(refusals) == 1  # the same refusal again and again is logged once
