"""Consolidation math (range and counter, resets and wraps) and interval calendars."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex.loggers.calendar import Calendar, system_zone
from ioplex.loggers.consolidate import (
    Consolidator,
    PointState,
    consolidate,
    counter_increase,
    merge,
)
from ioplex.loggers.tariffs import TariffError, parse_tariffs

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


def rows_of(points_values: list[tuple[int, float, float | None]], start: int = 1) -> list:
    """Raw rows (seq, point, time, value, quality good) from (point, time, value)."""
    return [(start + i, p, t, v, 0) for i, (p, t, v) in enumerate(points_values)]


def test_range_minutes_hold_min_max_count_sum_and_time() -> None:
    rows = rows_of(
        [
            (7, T0 + 1, 20.0),
            (7, T0 + 30, 24.0),
            (7, T0 + 59.5, 19.0),
            (7, T0 + 60, 5.0),
            (8, T0 + 10, 1.0),
            (7, T0 + 61, None),
        ]
    )
    buckets = consolidate(rows, "range", ["minute"], Calendar())["minute"]
    # count, sum, min, max, delta, area (value x seconds held), seconds covered
    assert buckets[(7, T0)] == [
        3,
        63.0,
        19.0,
        24.0,
        None,
        20.0 * 29 + 24.0 * 29.5 + 19.0 * 0.5,
        59.0,
    ]
    # 5.0 is held 1 s, then the None sample ends the hold: the value is not known.
    assert buckets[(7, T0 + 60)] == [1, 5.0, 5.0, 5.0, None, 5.0, 1.0]
    assert buckets[(8, T0)] == [1, 1.0, 1.0, 1.0, None, 0.0, 0.0]


def test_the_average_is_time_weighted_and_quiet_hours_get_rows() -> None:
    cal = Calendar()
    points: dict[int, PointState] = {}
    c = Consolidator("range", ["hour", "day"], cal, points)
    # 10 for 45 minutes, 20 for 15 minutes: 12.5 over the hour (the sample mean is 15).
    c.add(
        rows_of(
            [
                (1, T0, 10.0),
                (1, T0 + 2700, 20.0),
                (1, T0 + 3600, 20.0),
                (1, T0 + 5 * 3600 + 1800, 30.0),
            ]
        )
    )
    hours = c.result()["hour"]
    hour0 = hours[(1, T0)]
    assert hour0[5] / hour0[6] == 12.5 and hour0[1] / hour0[0] == 15.0
    # Hours 2, 3 and 4 had no sample: 20 was held through them; hour 5 is half 20.
    for h in (2, 3, 4):
        assert hours[(1, T0 + h * 3600)] == [0, 0.0, 20.0, 20.0, None, 20.0 * 3600, 3600.0]
    assert (1, T0 + 5 * 3600) in hours and hours[(1, T0 + 5 * 3600)][6] == 1800.0
    # The last value is credited up to the horizon by carry, whole intervals only.
    until = c.carry_bound(T0 + 8 * 3600 + 5, 1000)
    assert until == T0 + 8 * 3600
    c.carry(until)
    hours = c.result()["hour"]
    assert hours[(1, T0 + 5 * 3600)][5] == 20.0 * 1800 + 30.0 * 1800
    assert hours[(1, T0 + 7 * 3600)] == [0, 0.0, 30.0, 30.0, None, 30.0 * 3600, 3600.0]
    assert (1, T0 + 8 * 3600) not in hours  # not complete yet
    day = c.result()["day"][(1, T0)]
    assert day[6] == 8 * 3600 and day[0] == 4


def test_a_bad_sample_ends_the_hold_and_hold_limits_it() -> None:
    bad = [(1, 1, T0, 10.0, 0), (2, 1, T0 + 600, 10.0, 2), (3, 1, T0 + 1200, 30.0, 0)]
    agg = consolidate(bad, "range", ["hour"], Calendar())["hour"][(1, T0)]
    assert agg[0] == 2 and agg[6] == 600.0  # the bad sample is not counted, nor its time
    limited = consolidate(
        rows_of([(1, T0, 10.0), (1, T0 + 3000, 40.0)]), "range", ["hour"], Calendar(), hold=600.0
    )["hour"][(1, T0)]
    assert limited[5:] == [6000.0, 600.0]


def test_late_samples_count_but_do_not_rewrite_time_already_weighted() -> None:
    points: dict[int, PointState] = {}
    c = Consolidator("range", ["hour"], Calendar(), points, carried=float(T0 + 3600))
    c.add(rows_of([(1, T0 + 100, 50.0), (1, T0 + 4000, 10.0)]))
    hours = c.result()["hour"]
    assert hours[(1, T0)][:4] == [1, 50.0, 50.0, 50.0]  # counted in its hour ...
    assert hours[(1, T0)][6] == 0.0  # ... which was already weighted
    assert hours[(1, T0 + 3600)][5:] == [50.0 * 400, 400.0]  # held from the mark on


def counter_total(readings: list[float], **options: object) -> float:
    out = consolidate(
        rows_of([(1, T0 + i, v) for i, v in enumerate(readings)]),
        "counter",
        ["day"],
        Calendar(),
        **options,
    )
    return sum(agg[4] for agg in out["day"].values())


def test_counter_glitches_do_not_spike_and_resets_are_confirmed() -> None:
    # One reading of 0 from a meter at 1000: a glitch, not a reset: +1 kWh, not +1001.
    assert counter_total([1000.0, 0.0, 1001.0]) == 1.0
    assert counter_total([1000.0, 0.0, 0.0, 1002.0]) == 2.0
    # A real reset: 0, then counting up from it: the new readings count.
    assert counter_total([1000.0, 1010.0, 0.0, 0.5, 2.0]) == 10.0 + 2.0
    assert counter_total([1000.0, 4.0, 6.0]) == 4.0 + 2.0  # a replaced meter starting at 4
    # A small dip (a noisy reading) is jitter: ignored until the counter passes it again.
    assert counter_total([1000.0, 999.0, 1000.5, 1003.0]) == 3.0
    # A wrap of a 16-bit register is the way round.
    assert counter_total([65_000.0, 65_535.0, 100.0], wrap=65_536) == 535 + 101
    # The plausibility bound is configurable: 10% means a drop to 300 is jitter.
    assert counter_total([1000.0, 300.0, 310.0, 1005.0], reset_below=0.1) == 5.0


def test_a_random_walk_counter_counts_its_new_highs_not_every_dip() -> None:
    """What the dummy's drift did to energy before: 89 -> 156 counted 67,919 kWh."""
    rng = random.Random(3)
    value, readings = 89.0, []
    for _ in range(20_000):
        value = round(value + rng.uniform(-0.5, 0.5), 3)
        readings.append(value)
    total = counter_total([89.0, *readings])
    assert total == pytest.approx(max(readings) - 89.0)
    assert counter_increase(120.3, 120.1) == 120.1  # the face-value step: a "reset"


def test_counter_deltas_across_reset_and_wrap_credit_the_later_reading() -> None:
    # Readings of one meter each 20 minutes over two hours: growth, a reset, growth.
    readings = [100.0, 110.0, 125.0, 3.0, 8.0, 20.0]
    rows = rows_of([(1, T0 + i * 1200, v) for i, v in enumerate(readings)])
    out = consolidate(rows, "counter", ["hour", "day"], Calendar(), {})
    hour0, hour1 = out["hour"][(1, T0)], out["hour"][(1, T0 + 3600)]
    assert hour0[4] == 0 + 10 + 15  # 100 (first, 0), 110, 125
    assert hour1[4] == 3 + 5 + 12  # reset to 3 counts 3 (confirmed by 8), then 8, then 20
    assert out["day"][(1, T0)][4] == 45.0
    assert (hour0[2], hour0[3]) == (100.0, 125.0)  # min / max of the readings


def test_counter_state_carries_across_passes() -> None:
    points: dict[int, PointState] = {}
    first = consolidate(
        rows_of([(1, T0, 10.0), (1, T0 + 5, 12.0)]), "counter", ["hour"], Calendar(), points
    )
    second = consolidate(
        rows_of([(1, T0 + 4000, 15.0)], 3), "counter", ["hour"], Calendar(), points
    )
    assert first["hour"][(1, T0)][4] == 2.0
    assert second["hour"][(1, T0 + 3600)][4] == 3.0  # 12 -> 15, from the previous pass
    assert points[1].base == 15.0 and points[1].held == 15.0


def test_chunked_consolidation_equals_one_pass() -> None:
    rng = random.Random(7)
    rows, value = [], 0.0
    for seq in range(1, 3001):
        value = value + rng.uniform(0, 5) if rng.random() > 0.01 else rng.uniform(0, 3)
        quality = 2 if rng.random() < 0.01 else 0
        rows.append((seq, rng.randint(1, 3), T0 + seq * 37.3, round(value, 3), quality))
    levels = ["minute", "hour", "day", "month"]
    rome = Calendar("Europe/Rome")
    for kind in ("counter", "range"):
        whole = consolidate(rows, kind, levels, rome, {})
        merged: dict[str, dict] = {level: {} for level in levels}
        points: dict[int, PointState] = {}
        for i in range(0, len(rows), 250):
            part = consolidate(rows[i : i + 250], kind, levels, rome, points)
            for level, buckets in part.items():
                for key, agg in buckets.items():
                    have = merged[level].get(key)
                    if have is None:
                        merged[level][key] = list(agg)
                    else:
                        merge(have, agg)
        for level in levels:
            assert merged[level].keys() == whole[level].keys()
            for key in whole[level]:
                assert merged[level][key] == pytest.approx(whole[level][key])


def test_tariffs_compile_the_week_and_report_overlaps_and_gaps() -> None:
    t = parse_tariffs(
        {
            "peak": {"rate": 0.3, "when": ["mon-fri 08:00-19:00"]},
            "night": {"rate": 0.1, "when": ["22:00-06:00", "sun"]},
            "day": {"rate": 0.2},
        },
        "loggers.e.tariffs",
    )
    names = [x.name for x in t.tariffs]
    assert names[t.index(0, 8, 0)] == "peak" and names[t.index(4, 18, 59)] == "peak"
    assert names[t.index(0, 19, 0)] == "day" and names[t.index(5, 12, 0)] == "day"
    assert names[t.index(1, 23, 0)] == "night" and names[t.index(2, 5, 59)] == "night"
    assert names[t.index(6, 12, 0)] == "night" and names[t.index(0, 3, 0)] == "night"
    with pytest.raises(
        TariffError,
        match=r"loggers.e.tariffs.b.when\[0\]: 'mon 10:00-11:00' "
        r"overlaps tariff 'a' at mon 10:00",
    ):
        parse_tariffs(
            {"a": {"rate": 1, "when": ["mon-fri"]}, "b": {"rate": 2, "when": ["mon 10:00-11:00"]}},
            "loggers.e.tariffs",
        )
    with pytest.raises(TariffError, match="no tariff covers sat 00:00; add one without 'when'"):
        parse_tariffs({"a": {"rate": 1, "when": ["mon-fri"]}}, "loggers.e.tariffs")
    with pytest.raises(TariffError, match="cannot read days 'monday'"):
        parse_tariffs({"a": {"rate": 1, "when": ["monday"]}}, "x")
    with pytest.raises(TariffError, match="invalid time range '08:00-25:00'"):
        parse_tariffs({"a": {"rate": 1, "when": ["08:00-25:00"]}}, "x")


def test_counter_deltas_are_split_per_tariff_slot_in_local_time() -> None:
    rome = Calendar("Europe/Rome")
    tariffs = parse_tariffs(
        {"peak": {"rate": 0.3, "when": ["mon-fri 08:00-19:00"]}, "off": {"rate": 0.1}}, "t"
    )
    monday = ts("2024-03-04T07:00", "Europe/Rome")  # a Monday, 07:00 in Rome (06:00 UTC)
    readings = [(monday + i * 900, 10.0 * i) for i in range(9)]  # +10 every 15 min to 09:00
    c = Consolidator("counter", ["hour", "day"], rome, {}, tariffs=tariffs)
    c.add(rows_of([(1, t, v) for t, v in readings]))
    slots = c.tariff_result()
    by_hour = {
        (start, tariffs.tariffs[slot].name): delta
        for (_p, start, slot), (delta,) in slots["hour"].items()
    }
    # 07:15 .. 07:45 readings are off-peak; 08:00 (the step 07:45 -> 08:00) and later peak.
    assert by_hour == {
        (int(monday), "off"): 30.0,
        (int(monday + 3600), "peak"): 40.0,
        (int(monday + 7200), "peak"): 10.0,
    }
    day = {tariffs.tariffs[slot].name: d for (_p, _s, slot), (d,) in slots["day"].items()}
    assert day == {"off": 30.0, "peak": 50.0}


def test_the_system_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert system_zone()[0] == "America/New_York"
    assert Calendar(None).name == "America/New_York"
    monkeypatch.setenv("TZ", "Nowhere/Special")
    name, zone = system_zone()  # falls back to /etc/localtime or UTC, never a fixed offset
    assert name != "Nowhere/Special" and zone is not None


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
    rows = rows_of([(1, start + i * 600, 1.0) for i in range(23 * 6)])  # every 10 min all day
    out = consolidate(rows, "range", ["hour", "day"], rome)
    assert len(out["hour"]) == 23
    assert out["day"] == {(1, int(start)): [138, 138.0, 1.0, 1.0, None, 137 * 600.0, 137 * 600.0]}


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,6}", fullmatch=True),
        st.fixed_dictionaries(
            {"rate": st.one_of(st.floats(), st.integers(), st.text(max_size=3))},
            optional={
                "when": st.one_of(
                    st.lists(
                        st.text(alphabet="monturfiwedsahu0123456789:-, ", max_size=24), max_size=3
                    ),
                    st.text(max_size=5),
                    st.integers(),
                )
            },
        ),
        max_size=4,
    )
)
def test_tariff_tables_from_the_outside_raise_only_tariff_error(table: dict) -> None:
    try:
        tariffs = parse_tariffs(table, "loggers.e.tariffs")
    except TariffError as exc:
        assert str(exc).startswith("loggers.e.tariffs")
    else:
        assert len(tariffs.week) == 7 * 1440
        assert all(0 <= i < len(tariffs.tariffs) for i in tariffs.week)
