"""Data loggers as people use them day to day: time-weighted hours that exist when nothing
changed, the site's time zone, periodic sampling, tariffs, a simulated meter, exports on a
machine without the configuration's secrets, warnings for patterns that match nothing, and a
version 1 database upgraded in place."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import ioplex
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex import Quality, Sample
from ioplex.loggers import DataLoggers, LoggerSettings
from ioplex.loggers.calendar import Calendar
from ioplex.loggers.export import write_rows
from ioplex.loggers.store import Store

DAY = 86_400
T0 = 1_700_000_000 - 1_700_000_000 % DAY  # a UTC midnight (2023-11-14, a Tuesday)


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def problems(make_host: Callable[..., ioplex.Host], loggers: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ioplex.ConfigError) as info:
        make_host({"ioservers": {"m": {"plugin": "dummy"}}, "loggers": loggers})
    return {p.path: p.message for p in info.value.problems}


# -- time weighting through the service -------------------------------------------------------


@pytest.mark.anyio
async def test_quiet_hours_get_rows_at_the_held_value(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    loggers = DataLoggers(
        {"t": LoggerSettings("t", levels=("raw", "hour"))}, data_dir=tmp_path, clock=clock
    )
    async with loggers:
        t = loggers["t"]
        t.record("room.temp", 20.0, time=T0 + 600)
        t.record("room.temp", 22.0, time=T0 + 2400)
        clock.t = T0 + 3 * 3600 + 5  # three quiet hours later
        await loggers.flush()
        await loggers.consolidate()
        hours = t.query(level="hour")
        assert [(h.time, h.count, h.min, h.max) for h in hours] == [
            (T0, 2, 20.0, 22.0),
            (T0 + 3600, 0, 22.0, 22.0),
            (T0 + 7200, 0, 22.0, 22.0),
        ]
        assert hours[0].avg == pytest.approx((20 * 1800 + 22 * 1200) / 3000)
        assert hours[1].avg == 22.0 and hours[2].avg == 22.0
        # The hour still running has no row until it is complete (or a sample comes).
        assert t.query(T0 + 3 * 3600, level="hour") == []
        clock.t = T0 + 4 * 3600
        await loggers.flush()
        await loggers.consolidate()
        assert len(t.query(level="hour")) == 4


@pytest.mark.anyio
async def test_a_restart_does_not_hold_values_across_the_downtime(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    config = {"t": LoggerSettings("t", levels=("raw", "hour"))}
    async with DataLoggers(config, data_dir=tmp_path, clock=clock) as loggers:
        loggers["t"].record("x.y", 5.0, time=T0)
        clock.t = T0 + 1800
        await loggers.flush()
        await loggers.consolidate()
    clock.t = T0 + 5 * 3600  # down for hours (a kill -9 records no bad sample)
    async with DataLoggers(config, data_dir=tmp_path, clock=clock) as loggers:
        loggers["t"].record("x.y", 7.0, time=clock.t)
        clock.t += 3600
        await loggers.flush()
        await loggers.consolidate()
        hours = loggers["t"].query(level="hour")
    assert [h.time for h in hours] == [T0, T0 + 5 * 3600]
    assert hours[0].avg == 5.0  # held within the first run only


# -- the time zone -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_consolidation_follows_the_host_time_zone(
    make_host: Callable[..., ioplex.Host],
) -> None:
    host = make_host(
        {
            "host": {"timezone": "Asia/Kolkata"},
            "loggers": {"t": {"hold": "1h"}, "utc": {"timezone": "UTC", "hold": "1h"}},
        }
    )
    assert host.loggers["t"].calendar.name == "Asia/Kolkata"
    assert host.loggers["utc"].calendar.name == "UTC"
    async with host:
        for id in ("t", "utc"):
            host.loggers[id].record("x.y", 1.0, time=T0 + 100)
        await host.loggers.flush()
        await host.loggers.consolidate()
        (local,) = host.loggers["t"].query(level="day")
        (utc,) = host.loggers["utc"].query(level="day")
    assert utc.time == T0
    assert local.time == T0 - 5.5 * 3600  # midnight in India is 18:30 UTC the day before


def test_without_a_host_zone_the_system_zone_is_used(
    make_host: Callable[..., ioplex.Host],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Europe/Rome")
    host = make_host({"loggers": {"t": {}}})
    assert host.loggers["t"].calendar.name == "Europe/Rome"


# -- periodic sampling -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_records_each_point_each_period_changed_or_not(
    make_host: Callable[..., ioplex.Host],
) -> None:
    host = make_host(
        {
            "ioservers": {"d": {"plugin": "dummy", "options": {"points": {"a": 1.5, "b": 7}}}},
            "loggers": {
                "periodic": {"points": ["d.[ab]"], "every": "1s", "on_change": False},
                "both": {"points": ["d.a"], "every": 1},
            },
        }
    )
    host.loggers.flush_interval = 0.05
    async with host:
        await host.wait_online()
        await anyio.sleep(2.6)
        host.ioservers["d"].set("a", 2.5)
        await host.loggers.flush()
        periodic = host.loggers["periodic"].query()
        both = host.loggers["both"].query()
    assert len(periodic) >= 4 and {s.point for s in periodic} == {"d.a", "d.b"}
    assert all(s.time == int(s.time) for s in periodic)  # on the period's boundaries
    assert {s.value for s in periodic if s.point == "d.b"} == {7.0}
    assert 2.5 not in {s.value for s in periodic}  # on_change = false: the change is not seen
    assert both[-1].value == 2.5 and sum(s.value == 1.5 for s in both) >= 2


def test_every_and_counter_options_are_checked(make_host: Callable[..., ioplex.Host]) -> None:
    found = problems(
        make_host,
        {
            "a": {"every": "0.5s"},
            "b": {"every": "soon"},
            "c": {"on_change": False},
            "e": {"tariffs": {"x": {"rate": 1}}},
            "f": {"kind": "counter", "tariffs": {"x": {"rate": 1, "when": ["mon"]}}},
            "g": {"hold": "-1h"},
        },
    )
    assert found["loggers.a.every"] == "every must be at least 1 s, got '0.5s'"
    assert "invalid duration 'soon'" in found["loggers.b.every"]
    assert "records nothing without 'every'" in found["loggers.c.on_change"]
    assert "counter loggers only" in found["loggers.e.tariffs"]
    assert found["loggers.f.tariffs"].startswith("no tariff covers tue 00:00")
    assert "hold must be positive" in found["loggers.g.hold"], found
    found = problems(make_host, {"d": {"kind": "counter", "reset_below": 1.5}})
    assert "1.5 is greater than the maximum of 1" in found["loggers.d.reset_below"]


# -- counters: tariffs and the dummy meter -----------------------------------------------------


@pytest.mark.anyio
async def test_tariffs_split_energy_and_cost_per_slot(
    make_host: Callable[..., ioplex.Host],
    tmp_path: Path,
) -> None:
    host = make_host(
        {
            "host": {"timezone": "UTC"},
            "loggers": {
                "energy": {
                    "kind": "counter",
                    "levels": ["hour", "day"],
                    "hold": "1h",
                    "tariffs": {
                        "peak": {"rate": 0.30, "when": ["mon-fri 08:00-20:00"]},
                        "off": {"rate": 0.10},
                    },
                }
            },
        }
    )
    async with host:
        energy = host.loggers["energy"]
        for i in range(25):  # T0 is a Tuesday: +1 kWh an hour from 00:00 to 24:00
            energy.record("m.kwh", float(i), time=T0 + i * 3600)
        await host.loggers.flush()
        await host.loggers.consolidate()
        days = energy.tariff_query(level="day")
        hours = energy.tariff_query(T0 + 8 * 3600, T0 + 10 * 3600, level="hour")
    by_tariff = {(d.time, d.tariff): (d.delta, d.cost) for d in days}
    # Each increase goes to the tariff in force at the reading showing it: the readings at
    # 08:00 .. 19:00 are at peak (12 kWh), the others off-peak.
    assert by_tariff[(T0, "peak")] == (12.0, pytest.approx(3.6))
    assert by_tariff[(T0, "off")] == (11.0, pytest.approx(1.1))  # the rest of the day
    assert by_tariff[(T0 + DAY, "off")] == (1.0, pytest.approx(0.1))  # 24:00 is Wednesday
    assert [(h.time, h.tariff, h.delta) for h in hours] == [
        (T0 + 8 * 3600, "peak", 1.0),
        (T0 + 9 * 3600, "peak", 1.0),
    ]
    # The CLI exports them too.
    from click.testing import CliRunner
    from ioplex.cli import cli

    config = tmp_path / "site.toml"
    config.write_text(
        f'[host]\ndata_dir = "{tmp_path / "data"}"\ntimezone = "UTC"\n'
        '[loggers.energy]\nkind = "counter"\nlevels = ["hour", "day"]\n'
        '[loggers.energy.tariffs]\npeak = {rate = 0.3, when = ["mon-fri 08:00-20:00"]}\n'
        "off = {rate = 0.1}\n"
    )
    result = CliRunner().invoke(
        cli, ["logger", "export", str(config), "energy", "--level", "day", "--tariffs"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["tariff"], r["delta"]) for r in rows] == [
        ("off", "11.0"),
        ("peak", "12.0"),
        ("off", "1.0"),
    ]


@pytest.mark.anyio
async def test_the_dummy_meter_only_grows_and_its_energy_is_its_growth(
    make_host: Callable[..., ioplex.Host],
) -> None:
    host = make_host(
        {
            "ioservers": {
                "house": {
                    "plugin": "dummy",
                    "options": {
                        "points": {"kwh": 89.0, "temp": 20.0},
                        "meters": ["kwh"],
                        "rate": 2000,
                    },
                }
            },
            "loggers": {
                "energy": {"points": ["house.kwh"], "kind": "counter", "levels": ["hour"]},
                "temp": {"points": ["house.temp"]},
            },
        }
    )
    async with host:
        await host.wait_online()
        await anyio.sleep(0.5)
    # After the clean stop: everything written and consolidated.
    readings = [s.value for s in host.loggers["energy"].query() if s.quality == Quality.GOOD]
    assert len(readings) > 50 and readings == sorted(readings) and readings[0] == 89.0
    delta = sum(h.delta for h in host.loggers["energy"].query(level="hour"))
    assert delta == pytest.approx(readings[-1] - 89.0)


def test_meters_must_name_numeric_points() -> None:
    from types import SimpleNamespace

    from ioplex.builtins.dummy import Dummy

    io = SimpleNamespace(
        name="d",
        options={"points": {"s": "text", "n": 1}, "ui": {}, "meters": ["n", "s"]},
        declare=lambda *a, **k: None,
    )
    with pytest.raises(
        ioplex.FatalError,
        match=r"ioservers.d.options.meters\[1\]: 's' is not a numeric point .*: n\)",
    ):
        Dummy(io)  # type: ignore[arg-type]


# -- warnings, exports, the database -----------------------------------------------------------


def test_a_pattern_matching_no_instance_is_warned_about(
    make_host: Callable[..., ioplex.Host],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "ioplex.loggers"):
        make_host(
            {
                "ioservers": {"meters": {"plugin": "dummy"}},
                "loggers": {"energy": {"points": ["meters.*.kwh", "meterz.*.kwh", "*.temp"]}},
            }
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "loggers.energy.points[1] 'meterz.*.kwh' matches no I/O server instance" in warnings[0]
    assert "did you mean 'meters'?" in warnings[0]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioplex", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.anyio
async def test_export_needs_none_of_the_configs_secrets(
    tmp_path: Path,
    builtins_only: ioplex.Plugins,
) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        '[host]\ndata_dir = "data"\ntimezone = "Europe/Rome"\n'
        '[ioservers.d]\nplugin = "dummy"\n'
        '[ioservers.d.options.points]\nkwh = 0\npassword = {env = "IOPLEX_TEST_SECRET"}\n'
        '[ioservers.gw]\nplugin = "not_installed_here"\n'
        '[loggers.energy]\npoints = ["d.kwh"]\nkind = "counter"\n'
    )
    data = tmp_path / "data"
    async with DataLoggers(
        {"energy": LoggerSettings("energy", kind="counter", timezone="Europe/Rome")},
        data_dir=data,
    ) as loggers:
        for i, value in enumerate([0.1, 0.30000000000000004, 1e16, 123456.789]):
            loggers["energy"].record("d.kwh", value, time=T0 + i * 60)
        await loggers.flush()
    env = {k: v for k, v in os.environ.items() if k != "IOPLEX_TEST_SECRET"}
    env["IOPLEX_LOAD_PLUGINS"] = ""
    result = run_cli("logger", "export", str(config), "energy", env=env)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header == "seq,time,datetime,point,value,quality"
    assert [line.split(",")[4] for line in lines] == [
        "0.1",
        "0.30000000000000004",
        "1e+16",
        "123456.789",
    ]
    assert lines[0].split(",")[2] == "2023-11-14T01:00:00+01:00"  # Rome time
    listing = run_cli("logger", "list", str(config), env=env)
    assert listing.returncode == 0, listing.stderr
    assert "raw samples 2023-11-14T01:00:00+01:00 .. 2023-11-14T01:03:00+01:00" in listing.stdout
    # The parts it reads are still validated, with their paths.
    config.write_text('[host]\ntimezone = "Mars/Base"\n[loggers.energy]\nkind = "gauge"\n')
    bad = run_cli("logger", "list", str(config), env=env)
    assert bad.returncode == 2
    assert "loggers.energy.kind" in bad.stderr and "host.timezone" in bad.stderr


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_csv_floats_are_shortest_round_trip(values: list[float]) -> None:
    out = io.StringIO()
    rows = [Sample(i + 1, float(T0 + i), "p.x", v, Quality.GOOD) for i, v in enumerate(values)]
    write_rows(rows, out, "csv", "raw", Calendar())
    read = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [float(r["value"]) for r in read] == values
    assert [r["value"] for r in read] == [repr(v) for v in values]
    assert all(math.isfinite(float(r["time"])) for r in read)
    data = io.StringIO()
    write_rows(rows, data, "json", "raw", Calendar())
    assert [r["value"] for r in json.loads(data.getvalue())] == values


V1_INTERVAL = """
CREATE TABLE {level} (
    logger INTEGER NOT NULL REFERENCES loggers(id), point INTEGER NOT NULL REFERENCES points(id),
    time INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL,
    max REAL NOT NULL, delta REAL, avg REAL GENERATED ALWAYS AS (sum / count) VIRTUAL,
    PRIMARY KEY (point, time)
) WITHOUT ROWID;
CREATE INDEX {level}_logger_time ON {level} (logger, time);
"""


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "loggers.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE loggers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, "
        "timezone TEXT NOT NULL, levels TEXT, settings TEXT, last_seq INTEGER NOT NULL DEFAULT 0,"
        " consolidated_seq INTEGER NOT NULL DEFAULT 0, created REAL, updated REAL);"
        "CREATE TABLE points (id INTEGER PRIMARY KEY, logger INTEGER NOT NULL, name TEXT NOT "
        "NULL, last_value REAL);"
        + "".join(V1_INTERVAL.format(level=level) for level in ("minute", "hour", "day", "month"))
        + "CREATE VIEW hours AS SELECT * FROM hour;"
        "INSERT INTO loggers VALUES (1, 't', 'range', 'UTC', '[\"raw\", \"hour\"]', '{}', 3, 3, "
        "0, 0);"
        "INSERT INTO points VALUES (1, 1, 'x.y', NULL);"
        f"INSERT INTO hour (logger, point, time, count, sum, min, max) VALUES "
        f"(1, 1, {T0}, 3, 60.0, 10.0, 30.0);"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    store = Store(path)
    store.open()
    state = store.register(LoggerSettings("t", levels=("raw", "hour")))
    assert state.last_seq == 3
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert conn.execute("SELECT count, avg, covered FROM hour").fetchall() == [(3, 20.0, 0.0)]
        assert conn.execute("SELECT count(*) FROM hours").fetchone() == (1,)
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(hour)")}
        assert "hour_logger_time" in indexes
