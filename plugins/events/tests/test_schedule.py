"""TIME events: daylight-saving time, clock jumps, restarts; DAY and NIGHT."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import anyio
import pytest
from ioplex_events import parse_line
from ioplex_events.calendar import Sun, next_occurrence, previous_occurrence

from .conftest import make_config, running, until

ROME = ZoneInfo("Europe/Rome")


def at(*args: int) -> float:
    return datetime(*args, tzinfo=ROME).timestamp()


def event(text: str):
    return parse_line(f"{text} : LOG = 1").event


def test_spring_gap_fires_once_at_the_end_of_the_gap():
    t, key = next_occurrence(event("TIME 0230"), at(2026, 3, 29, 0, 0), ROME)
    assert datetime.fromtimestamp(t, ROME).isoformat() == "2026-03-29T03:00:00+02:00"
    t2, _ = next_occurrence(event("TIME 0230"), t, ROME, key)
    assert datetime.fromtimestamp(t2, ROME).isoformat() == "2026-03-30T02:30:00+02:00"


def test_autumn_overlap_fires_once_at_the_first():
    ev = event("TIME 0230")
    t, key = next_occurrence(ev, at(2026, 10, 25, 0, 0), ROME)
    assert datetime.fromtimestamp(t, ROME).isoformat() == "2026-10-25T02:30:00+02:00"
    # An hour later the wall clock shows 02:30 again: not a new occurrence.
    t2, _ = next_occurrence(ev, t + 1, ROME, key)
    assert datetime.fromtimestamp(t2, ROME).isoformat() == "2026-10-26T02:30:00+01:00"


def test_weekdays_and_date_ranges():
    ev = event("TIME 0800 SAT,SUN DATE 1220-0110")
    t, _ = next_occurrence(ev, at(2026, 6, 1, 0, 0), ROME)
    assert datetime.fromtimestamp(t, ROME).isoformat() == "2026-12-20T08:00:00+01:00"  # Sunday
    t, _ = next_occurrence(ev, at(2027, 1, 10, 9, 0), ROME)
    assert datetime.fromtimestamp(t, ROME).date().isoformat() == "2027-12-25"


def test_previous_occurrence_is_the_latest_missed_only():
    ev = event("TIME 0000")
    missed = previous_occurrence(ev, at(2026, 5, 4, 12, 0), at(2026, 5, 1, 12, 0), ROME, None)
    assert missed[1] == "2026-05-04 00:00:00"


def test_sun_day_and_night_polar():
    milan = Sun(45.46, 9.19, ROME)
    assert milan.is_day(at(2026, 6, 21, 12, 0), 0, 0)
    assert not milan.is_day(at(2026, 6, 21, 23, 0), 0, 0)
    assert not milan.is_day(at(2026, 6, 21, 5, 30), 60, 0)  # sunrise ~5:35 + 60 min
    tromso = Sun(69.65, 18.96, ZoneInfo("Europe/Oslo"))
    assert tromso.is_day(
        datetime(2026, 6, 21, 1, 0, tzinfo=ZoneInfo("Europe/Oslo")).timestamp(), 0, 0
    )
    assert not tromso.is_day(
        datetime(2026, 12, 21, 12, 0, tzinfo=ZoneInfo("Europe/Oslo")).timestamp(), 0, 0
    )


def _config(tmp_path, rules, **settings):
    return make_config(tmp_path, rules, host={"timezone": "Europe/Rome"}, **settings)


def _rule(engine):
    return next(iter(engine.files.values()))[0]


@pytest.mark.anyio
async def test_engine_fires_in_the_spring_gap_once(tmp_path):
    async with running(_config(tmp_path, "TIME 0230 : IO d.a = 1\n")) as (host, engine):
        host.clock.set(at(2026, 3, 29, 1, 59, 58))
        await until(lambda: _rule(engine).fired == 1, timeout=8)
        assert datetime.fromtimestamp(host.time(), ROME).hour == 3
        await anyio.sleep(1.2)
        assert _rule(engine).fired == 1


@pytest.mark.anyio
async def test_engine_clock_jumps(tmp_path):
    async with running(_config(tmp_path, "TIME 0300 : IO d.a = 1\n", catch_up=600)) as (
        host,
        engine,
    ):
        rule = _rule(engine)
        host.clock.set(at(2026, 5, 4, 2, 59, 0))
        await anyio.sleep(1.5)
        host.clock.set(at(2026, 5, 4, 3, 5, 0))  # forward over 03:00: fired once
        await until(lambda: rule.fired == 1, timeout=5)
        host.clock.set(at(2026, 5, 4, 2, 59, 59))  # back before 03:00: not again
        await anyio.sleep(2.5)
        assert rule.fired == 1
        host.clock.set(at(2026, 5, 5, 2, 0, 0))
        await anyio.sleep(1.5)
        host.clock.set(at(2026, 5, 5, 4, 0, 0))  # over 03:00 but 1 h > catch_up: skipped
        await anyio.sleep(1.5)
        assert rule.fired == 1


@pytest.mark.anyio
async def test_a_jump_before_the_clock_watch_starts_is_seen(tmp_path, monkeypatch):
    # The clock moved between planning (at load) and the clock watch's first look: the
    # watch starts from the planning time, so it still re-plans.
    from ioplex_events.engine import Engine

    watch = Engine._clock

    async def late_watch(self, *args):
        await anyio.sleep(0.5)
        await watch(self, *args)

    monkeypatch.setattr(Engine, "_clock", late_watch)
    async with running(_config(tmp_path, "TIME 0300 : IO d.a = 1\n")) as (host, engine):
        host.clock.set(at(2026, 5, 4, 2, 50, 0))
        sched = next(iter(engine.schedules.values()))
        await until(lambda: sched.next_at == at(2026, 5, 4, 3, 0, 0))


@pytest.mark.anyio
async def test_time_missed_while_down_fires_once_at_start(tmp_path):
    config = _config(tmp_path, "TIME 0300 : IO d.a = 1\n", catch_up=3600)
    async with running(config) as (host, engine):
        host.clock.set(at(2026, 5, 4, 2, 50, 0))
        await until(
            lambda: (
                engine.schedules
                and next(iter(engine.schedules.values())).next_at == at(2026, 5, 4, 3, 0, 0)
            )
        )
    # Down from 02:50 to 03:20: the 03:00 planned is fired once at start.
    async with running(config, clock_at=at(2026, 5, 4, 3, 20, 0)) as (host, engine):
        await until(lambda: _rule(engine).fired == 1)
        await anyio.sleep(1.2)
        assert _rule(engine).fired == 1
    # Down for longer than catch_up: not fired, and the next is planned for tomorrow.
    async with running(config, clock_at=at(2026, 5, 5, 2, 0, 0)) as (host, engine):
        pass
    async with running(config, clock_at=at(2026, 5, 5, 5, 0, 0)) as (host, engine):
        await anyio.sleep(1.2)
        assert _rule(engine).fired == 0
        sched = next(iter(engine.schedules.values()))
        assert sched.next_at == at(2026, 5, 6, 3, 0, 0)
