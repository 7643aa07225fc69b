"""The serving side's change log, on real registries."""

from __future__ import annotations

import time

import anyio
import pytest
from ioplex import Registry
from ioplex_hsyco_remote.changelog import COMPACT_SLACK, ChangeLog, ResyncNeeded


def registries() -> tuple[Registry, Registry]:
    points, ui = Registry("io"), Registry("ui", min_segments=1)
    for i in range(5):
        points.declare(f"d.p{i}", 0)
    ui.declare("note", "")
    return points, ui


def test_changes_are_coalesced_per_point_in_one_sequence():
    points, ui = registries()
    with ChangeLog(points, ui) as log:
        for v in (1, 2, 3):
            points.update(points["d.p1"], v)
        ui.update(ui["note"], "n")
        points.update(points["d.p2"], 9)
        entries, next_seq, more = log.since(0, 100)
        assert [(k, n) for _, k, n in entries] == [("io", "d.p1"), ("ui", "note"), ("io", "d.p2")]
        assert next_seq == log.seq == 5 and more is False
        assert [n for _, _, n in log.since(3, 100)[0]] == ["note", "d.p2"]
        assert log.since(0, 100, ("io",))[0][-1][2] == "d.p2"
        assert log.since(5, 100) == ([], 5, False)


def test_paging_never_skips_an_entry():
    points, ui = registries()
    with ChangeLog(points, ui) as log:
        for round_ in range(3):
            for i in range(5):
                points.update(points[f"d.p{i}"], round_ * 10 + i)
                ui.update(ui["note"], f"{round_}-{i}")
        seen: list[str] = []
        since = 0
        while True:
            entries, since, more = log.since(since, 2)
            assert len(entries) <= 2
            seen += [f"{k}:{n}" for _, k, n in entries]
            if not more:
                break
        assert sorted(seen) == sorted(["ui:note"] + [f"io:d.p{i}" for i in range(5)])
        assert since == log.seq


def test_compaction_keeps_memory_bounded_and_drops_removed_points():
    points, ui = registries()
    with ChangeLog(points, ui) as log:
        for n in range(10 * COMPACT_SLACK):
            points.update(points[f"d.p{n % 5}"], n)
        assert log.stats()["entries"]["io"] <= 2 * 5 + COMPACT_SLACK
        position = log.seq
        points.update(points["d.p4"], -1)
        points.remove("d.p4")
        for n in range(2 * COMPACT_SLACK):
            points.update(points[f"d.p{n % 4}"], -n)
        assert log.floor > position  # the removed point's entry is gone ...
        with pytest.raises(ResyncNeeded, match="older"):
            log.check(log.epoch, position)  # ... so a client from before it must resync
        log.check(log.epoch, log.floor)
        with pytest.raises(ResyncNeeded, match="new epoch"):
            log.check("another", log.seq)
        with pytest.raises(ResyncNeeded, match="ahead"):
            log.check(log.epoch, log.seq + 1)


def test_filters_and_closing():
    points, ui = registries()
    log = ChangeLog(points, ui, io_patterns=("d.p1",), ui_patterns=())
    with log:
        points.update(points["d.p1"], 1)
        points.update(points["d.p2"], 1)
        ui.update(ui["note"], "x")
        assert [n for _, _, n in log.since(0, 10)[0]] == ["d.p1"]
    points.update(points["d.p1"], 2)  # closed: no longer listening
    assert log.seq == 1 and log.closed


@pytest.mark.anyio
async def test_waiters_wake_on_change_and_on_close():
    points, ui = registries()
    with ChangeLog(points, ui) as log:
        with anyio.fail_after(2):
            async with anyio.create_task_group() as tg:
                results: list[bool] = []

                async def wait() -> None:
                    results.append(await log.wait(0, 10))

                tg.start_soon(wait)
                tg.start_soon(wait)
                await anyio.sleep(0.05)
                assert results == []
                points.update(points["d.p0"], 5)
            assert results == [True, True]
        assert await log.wait(log.seq, 0.05) is False  # nothing new: times out
        with anyio.fail_after(2):
            async with anyio.create_task_group() as tg:
                tg.start_soon(log.wait, log.seq, 10)
                await anyio.sleep(0.05)
                log.close()


def test_rioget_timestamps_are_the_time_of_the_last_change():
    points, ui = registries()
    with ChangeLog(points, ui) as log:
        start = log.timestamp()
        assert start > 10**15  # microseconds since the epoch, like HSYCO's
        assert log.timestamp() == start  # nothing changed: the same timestamp
        time.sleep(0.05)
        before = time.time_ns() // 1000
        points.update(points["d.p0"], 1)
        after = time.time_ns() // 1000
        time.sleep(0.05)
        stamp = log.timestamp()
        assert before <= stamp <= after  # when the change happened, not when asked
        assert log.position(start) == 0 and log.position(stamp) == 1
        assert log.position(1) is None  # the full state
        assert log.position(start - 1) is None  # another server run
        assert log.position(stamp + 1) is None
        # many changes within one microsecond still give strictly growing timestamps
        stamps = []
        for i in range(50):
            points.update(points["d.p0"], i + 10)
            stamps.append(log.timestamp())
        assert stamps == sorted(set(stamps)) and stamps[0] > stamp
        assert [log.position(s) for s in stamps] == list(range(2, 52))
