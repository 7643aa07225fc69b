"""The engine's fast paths keep its behaviour: a subscription to exactly the named points,
firings run at once when every action completes at once (with the points they name looked
up once, until a point is declared or removed), traces stored in bounded batches and read
back as the last `trace_size` of each rule."""

from __future__ import annotations

import json

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ioplex_events.engine import Trace, subscription_patterns
from ioplex_events.store import Store, read_traces

from .conftest import make_config, running, until

pytestmark = pytest.mark.anyio


def test_subscription_patterns_are_the_names_exactly():
    names = [f"d.p{i}" for i in range(100)] + ["$exec", "d.[x]"]
    patterns = subscription_patterns(names)
    assert len(patterns) == len(names)
    assert set(patterns) == {n for n in names if n != "d.[x]"} | {"d.[[]x]"}


async def test_changes_of_points_no_rule_names_are_never_queued(tmp_path):
    n = 40
    points = {f"p{i}": 0 for i in range(n + 3)} | {"out": 0}
    rules = "".join(f"IO d.p{i} : IO d.out = {i}\n" for i in range(n))
    async with running(make_config(tmp_path, rules, points=points)) as (host, engine):
        sub = engine.subs["io"]
        assert sorted(sub.patterns) == sorted(f"d.p{i}" for i in range(n))
        c = engine.index[("io", "d.p3")][0]
        host.points.update(host.points[f"d.p{n + 1}"], 5)  # a point of d no rule names
        assert sub.pending() == 0
        await host.write("d.p3", 5)
        await until(lambda: host.points["d.out"].value == 3)
        await anyio.sleep(0.1)
        assert c.fired == 1 and engine.firings == 1
        assert ("io", f"d.p{n + 1}") not in engine.view  # nothing kept for unnamed points


async def test_points_looked_up_once_follow_declare_and_remove(tmp_path):
    rules = "IO d.a : UISET panel.v panel.w = IO d.a\n"
    async with running(make_config(tmp_path, rules)) as (host, engine):
        ui = host.ui
        v = ui.declare("panel.v", None, writable=True, quiet=True)
        ui.declare("panel.w", "", writable=True, quiet=True)  # a str variable
        c = engine.index[("io", "d.a")][0]
        engine.consider(c, ("io", "d.a", 4), 0, ())
        # each target gets the value converted to its own type, at once
        assert v.value == 0 and ui["panel.w"].value == "0" and c.running == 0
        host.points.update(host.points["d.a"], 7)
        await until(lambda: c.fired == 2)  # (now also fired by the change itself)
        assert v.value == 7 and ui["panel.w"].value == "7"
        # A variable removed and declared again: the write reaches the new one.
        ui.remove("panel.v")
        v2 = ui.declare("panel.v", 0.5, writable=True, quiet=True)
        engine.consider(c, ("io", "d.a", 8), 0, ())
        assert v2.value == 7.0 and v.value == 7 and c.running == 0
        # Removed and not declared again: the firing goes through a worker, whose UISET
        # creates the variable (as before the rule was ever looked up).
        ui.remove("panel.v")
        engine.consider(c, ("io", "d.a", 9), 0, ())
        assert c.running == 1
        await until(lambda: "panel.v" in ui and ui["panel.v"].value == 7 and c.running == 0)
        assert v2.value == 7.0  # the removed variable was not written
        assert all(t[1]["status"] == "done" for t in c.traces)


async def test_a_write_that_fails_at_once_is_traced_and_the_rest_runs(tmp_path):
    rules = 'IO d.a : UISET panel.n = "many", UISET panel.s = "ok"\n'
    async with running(make_config(tmp_path, rules)) as (host, engine):
        host.ui.declare("panel.n", 0, writable=True, quiet=True)
        host.ui.declare("panel.s", "", writable=True, quiet=True)
        c = engine.index[("io", "d.a")][0]
        engine.consider(c, ("io", "d.a", 1), 0, ())
        assert host.ui["panel.s"].value == "ok" and host.ui["panel.n"].value == 0
        (outcome_n, outcome_s) = c.traces[-1][1]["actions"]
        assert outcome_n[1].startswith("error: panel.n: expected int") and outcome_s[1] == "ok"


async def test_rules_writing_unowned_points_run_at_once(tmp_path):
    rules = 'IO d.a : UISET panel.v = IO d.a, $last = "a", LOG = IO d.a\nIO d.b : IO d.c = 1\n'
    async with running(make_config(tmp_path, rules)) as (host, engine):
        host.ui.declare("panel.v", None, writable=True, quiet=True)
        host.ui.declare("$last", None, writable=True, quiet=True)
        ui_rule = engine.index[("io", "d.a")][0]
        engine.consider(ui_rule, ("io", "d.a", 4), 0, ())
        # no await: the UI writes are done and traced already
        assert host.ui["panel.v"].value == 0 and host.ui["$last"].value == "a"
        assert ui_rule.running == 0 and ui_rule.traces[-1][1]["status"] == "done"
        assert ui_rule.traces[-1][1]["trigger"] == "IO d.a = 4"
        engine.flush_fired()
        assert ui_rule.point.value is not None
        # d.c belongs to the dummy I/O server: its write goes through a worker
        driver_rule = engine.index[("io", "d.b")][0]
        engine.consider(driver_rule, ("io", "d.b", 1), 0, ())
        assert driver_rule.running == 1
        await until(lambda: host.points["d.c"].value == 1 and driver_rule.running == 0)


def test_traces_pruned_in_batches_and_read_as_the_last_keep(tmp_path):
    store = Store(tmp_path / "events.sqlite")
    keep = 5
    try:
        for batch in range(7):
            rows = [
                (
                    "a.txt:1",
                    "IO d.a : LOG = 1",
                    batch * 10.0 + k,
                    f'{{"trigger": "t{batch}.{k}", "actions": [], "status": "done"}}',
                )
                for k in range(3)
            ]
            start = '{"trigger": "START", "actions": [], "status": "done"}'
            rows.append(("a.txt:2", "START : LOG = 2", batch, start))
            store.add_traces(rows, keep)
            stored = store.traces_db.execute(
                "SELECT COUNT(*) FROM traces WHERE rule = 'a.txt:1'"
            ).fetchone()[0]
            assert stored < 2 * keep
    finally:
        store.close()
    traces = read_traces(tmp_path / "events.sqlite", "a.txt:1", keep)
    assert [t["trigger"] for t in traces] == ["t5.1", "t5.2", "t6.0", "t6.1", "t6.2"]
    assert len(read_traces(tmp_path / "events.sqlite", None, keep)) == 2 * keep


async def test_traces_of_a_burst_are_stored_later_not_lost(tmp_path):
    rules = "IO d.a : UISET panel.v = IO d.a\n"
    async with running(make_config(tmp_path, rules, trace_size=3)) as (host, engine):
        host.ui.declare("panel.v", None, writable=True, quiet=True)
        c = engine.index[("io", "d.a")][0]
        for k in range(10):
            engine.consider(c, ("io", "d.a", k), 0, ())
            c.state = False
        assert c.unstored == 10 and list(engine.unstored) == [c] and len(c.traces) == 3
        engine.flush_traces()
        assert engine.dropped_traces == 7 and not engine.unstored and c.unstored == 0
        assert isinstance(c.traces[-1][1], Trace)
    stored = read_traces(tmp_path / "data" / "events" / "events.sqlite", "main.txt:1", 3)
    assert [t["trigger"] for t in stored] == ["IO d.a = 7", "IO d.a = 8", "IO d.a = 9"]


values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
triggers = (
    st.none()
    | st.tuples(st.sampled_from(["io", "ui"]), st.text(min_size=1, max_size=20), values)
    | st.tuples(st.sampled_from(["time", "timer"]), st.text(max_size=20))
    | st.tuples(st.sampled_from(["start", "init", "sun"]))
)


@given(
    trigger=triggers,
    texts=st.lists(st.text(max_size=30), max_size=4).map(tuple),
    failed=st.lists(st.text(max_size=30), max_size=4),
    all_ok=st.booleans(),
    status=st.text(max_size=30),
)
def test_trace_json_is_json_dumps_of_as_dict(trigger, texts, failed, all_ok, status):
    outcomes = None if all_ok else [f"error: {m}" for m in failed]
    trace = Trace(trigger, texts, outcomes, status)
    assert trace.json() == json.dumps(trace.as_dict())


async def test_writes_of_a_drain_are_seen_by_what_reads_them_in_order(tmp_path):
    rules = (
        "IO d.a : $x = IO d.a\n"
        "IO d.b : UISET panel.y = $x\n"  # reads what the first rule wrote in the same drain
        'IO d.c : UISET panel.s = "toolong", UISET panel.y = "after"\n'
    )
    async with running(make_config(tmp_path, rules)) as (host, engine):
        ui = host.ui
        for name, value in (("$x", 0), ("panel.y", ""), ("panel.s", "")):
            ui.declare(name, value, writable=True, quiet=True)
        seen = []
        listener = ui.listen(lambda e: seen.append((e.name, e.value)), "*")
        ui.max_string = 5  # "toolong" is refused by the registry itself
        points = host.points
        try:
            # Changes queued, then handled as one drain (no await: the engine's reader
            # does not run); a rule's value is the point's value now (6 for both d.a).
            for name, value in (("d.a", 5), ("d.b", 1), ("d.a", 6), ("d.c", 1)):
                points.update(points[name], value)
            engine.on_changes("io", engine.subs["io"].drain())
        finally:
            listener.close()
        assert seen == [("$x", 6), ("panel.y", "6"), ("panel.y", "after")]
        assert engine.deferred is None and not engine.deferred_points
        refused = engine.index[("io", "d.c")][0].traces[-1][1]["actions"]
        assert refused[0][1].startswith("error: ") and refused[1][1] == "ok"


async def test_a_point_a_listener_declares_within_a_drain_is_looked_up_again(tmp_path):
    rules = (
        "IO d.a : UISET panel.v = 1\n"
        "IO d.c > 0 : LOG = 1\n"  # a condition: the writes so far are made before it
        "IO d.b : UISET panel.w = IO d.b\n"
    )
    async with running(make_config(tmp_path, rules)) as (host, engine):
        ui, points = host.ui, host.points
        ui.declare("panel.v", 0, writable=True, quiet=True)
        old_w = ui.declare("panel.w", 0, writable=True, quiet=True)
        writer = engine.index[("io", "d.b")][0]
        engine.consider(writer, ("io", "d.b", 0), 0, ())  # its plan names old_w now

        def swap(event) -> None:  # a listener replacing panel.w when panel.v changes
            ui.remove("panel.w")
            ui.declare("panel.w", 0, writable=True, quiet=True)

        listener = ui.listen(swap, "panel.v")
        try:
            for name, value in (("d.a", 1), ("d.c", 1), ("d.b", 7)):
                points.update(points[name], value)
            engine.on_changes("io", engine.subs["io"].drain())
        finally:
            listener.close()
        assert ui["panel.w"] is not old_w and ui["panel.w"].value == 7 and old_w.value == 0
