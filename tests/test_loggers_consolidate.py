"""Consolidation math (range and counter, resets and wraps) and interval calendars."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ioplex.loggers.calendar import Calendar
from ioplex.loggers.consolidate import aggregate_minutes, consolidate, counter_increase

T0 = 1_700_000_000 - 1_700_000_000 % 86_400  # a UTC midnight (2023-11-14)


def test_counter_increase_counts_growth_and_never_goes_negative() -> None:
    assert counter_increase(None, 500.0) == 0.0  # first reading: nothing to compare with
    assert counter_increase(100.0, 130.5) == 30.5
    assert counter_increase(100.0, 100.0) == 0.0
    # A reset (meter replaced, device restarted): counting starts again from zero.
    assert counter_increase(1_000_000.0, 7.0) == 7.0
    # A 16-bit register wrapping: 65530 -> 4 is 10 steps, not -65526 and not a reset to 4.
    assert counter_increase(65_530.0, 4.0, wrap=65_536) == 10.0
    # With a modulus, a drop that would be a huge wrapped step is a reset.
    assert counter_increase(20_000.0, 3.0, wrap=65_536) == 3.0
    assert counter_increase(5.0, -2.0) == 0.0


def test_range_minutes_hold_min_max_count_and_sum() -> None:
    rows = [(1, 7, T0 + 1, 20.0), (2, 7, T0 + 30, 24.0), (3, 7, T0 + 59.9, 19.0),
            (4, 7, T0 + 60, 5.0), (5, 8, T0 + 10, 1.0), (6, 7, T0 + 61, None)]
    buckets = aggregate_minutes(rows, "range")
    assert buckets[(7, T0)] == [3, 63.0, 19.0, 24.0, None]
    assert buckets[(7, T0 + 60)] == [1, 5.0, 5.0, 5.0, None]  # the None sample is skipped
    assert buckets[(8, T0)] == [1, 1.0, 1.0, 1.0, None]


def test_counter_deltas_across_reset_and_wrap_credit_the_later_reading() -> None:
    # Readings of one meter each 20 minutes over two hours: growth, a reset, growth.
    readings = [100.0, 110.0, 125.0, 3.0, 8.0, 20.0]
    rows = [(i + 1, 1, T0 + i * 1200, v) for i, v in enumerate(readings)]
    out = consolidate(rows, "counter", ["hour", "day"], Calendar().floor, last={})
    hour0, hour1 = out["hour"][(1, T0)], out["hour"][(1, T0 + 3600)]
    assert hour0[4] == 0 + 10 + 15  # 100 (first, 0), 110, 125
    assert hour1[4] == 3 + 5 + 12  # reset to 3 counts 3, then 8, then 20
    assert out["day"][(1, T0)][4] == 45.0
    assert (hour0[2], hour0[3]) == (100.0, 125.0)  # min / max of the readings

    wrapped = [(1, 1, T0, 65_000.0), (2, 1, T0 + 10, 65_535.0), (3, 1, T0 + 20, 100.0)]
    out = consolidate(wrapped, "counter", ["hour"], Calendar().floor, last={}, wrap=65_536)
    assert out["hour"][(1, T0)][4] == 535 + 101


def test_counter_state_carries_across_passes() -> None:
    last: dict[int, float] = {}
    first = consolidate([(1, 1, T0, 10.0), (2, 1, T0 + 5, 12.0)], "counter", ["hour"],
                        Calendar().floor, last)
    second = consolidate([(3, 1, T0 + 4000, 15.0)], "counter", ["hour"], Calendar().floor, last)
    assert first["hour"][(1, T0)][4] == 2.0
    assert second["hour"][(1, T0 + 3600)][4] == 3.0  # 12 -> 15, from the previous pass
    assert last == {1: 15.0}


def test_chunked_consolidation_equals_one_pass() -> None:
    rng = random.Random(7)
    rows, value = [], 0.0
    for seq in range(1, 3001):
        value = value + rng.uniform(0, 5) if rng.random() > 0.01 else rng.uniform(0, 3)
        rows.append((seq, rng.randint(1, 3), T0 + seq * 37.3, round(value, 3)))
    levels = ["minute", "hour", "day", "month"]
    whole = consolidate(rows, "counter", levels, Calendar("Europe/Rome").floor, last={})
    merged: dict[str, dict] = {level: {} for level in levels}
    last: dict[int, float] = {}
    for i in range(0, len(rows), 250):
        part = consolidate(rows[i:i + 250], "counter", levels, Calendar("Europe/Rome").floor, last)
        for level, buckets in part.items():
            for key, agg in buckets.items():
                have = merged[level].setdefault(key, [0, 0.0, agg[2], agg[3], 0.0])
                have[0] += agg[0]
                have[1] += agg[1]
                have[2], have[3] = min(have[2], agg[2]), max(have[3], agg[3])
                have[4] += agg[4]
    for level in levels:
        assert merged[level].keys() == whole[level].keys()
        for key in whole[level]:
            assert merged[level][key] == pytest.approx(whole[level][key])


def ts(text: str, tz: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_calendar_days_and_months_follow_the_time_zone() -> None:
    rome = Calendar("Europe/Rome")
    # 2024-03-31: clocks go forward in Rome, the day has 23 hours; 2024-10-27 has 25.
    spring = rome.floor("day", ts("2024-03-31T12:00", "Europe/Rome"))
    assert spring == ts("2024-03-31T00:00", "Europe/Rome")
    assert rome.end("day", spring) - spring == 23 * 3600
    autumn = rome.floor("day", ts("2024-10-27T12:00", "Europe/Rome"))
    assert rome.end("day", autumn) - autumn == 25 * 3600
    month = rome.floor("month", ts("2024-02-15T08:00", "Europe/Rome"))
    assert month == ts("2024-02-01T00:00", "Europe/Rome")
    assert rome.end("month", month) == ts("2024-03-01T00:00", "Europe/Rome")
    # India is UTC+5:30: its hours start at half past in UTC.
    kolkata = Calendar("Asia/Kolkata")
    hour = kolkata.floor("hour", ts("2024-01-01T10:45", "Asia/Kolkata"))
    assert hour == ts("2024-01-01T10:00", "Asia/Kolkata") and hour % 3600 == 1800
    utc = Calendar()
    assert utc.floor("hour", T0 + 3599.9) == T0 and utc.end("hour", T0) == T0 + 3600
    assert utc.floor("month", T0) == ts("2023-11-01T00:00", "UTC")


def test_a_local_day_rolls_up_from_local_hours() -> None:
    rome = Calendar("Europe/Rome")
    start = ts("2024-03-31T00:00", "Europe/Rome")
    rows = [(i + 1, 1, start + i * 600, 1.0) for i in range(23 * 6)]  # every 10 min all day
    out = consolidate(rows, "range", ["hour", "day"], rome.floor)
    assert len(out["hour"]) == 23
    assert out["day"] == {(1, int(start)): [138, 138.0, 1.0, 1.0, None]}
