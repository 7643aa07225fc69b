"""The engine's fast paths keep its behaviour: whole-server subscriptions past `EXACT_NAMES`
names, firings run at once when every action completes at once, traces stored in bounded
batches and read back as the last `trace_size` of each rule."""

from __future__ import annotations

import anyio
import pytest
from ioplex_events.engine import EXACT_NAMES, Trace, subscription_patterns
from ioplex_events.store import Store, read_traces

from .conftest import make_config, running, until

pytestmark = pytest.mark.anyio


def test_subscription_patterns_exact_then_whole_server():
    few = [f"d.p{i}" for i in range(EXACT_NAMES)]
    assert subscription_patterns(few) == sorted(few)
    many = [f"d.p{i}" for i in range(EXACT_NAMES + 1)]
    assert subscription_patterns([*many, "e.x", "$exec"]) == ["$exec", "d.*", "e.x"]


async def test_whole_server_subscription_fires_only_named_points(tmp_path):
    n = EXACT_NAMES + 4
    points = {f"p{i}": 0 for i in range(n + 3)} | {"out": 0}
    rules = "".join(f"IO d.p{i} : IO d.out = {i}\n" for i in range(n))
    async with running(make_config(tmp_path, rules, points=points)) as (host, engine):
        assert engine.subs["io"].patterns == ("d.*",)
        c = engine.index[("io", "d.p3")][0]
        await host.write(f"d.p{n + 1}", 5)  # a point of d no rule names
        await host.write("d.p3", 5)
        await until(lambda: host.points["d.out"].value == 3)
        await anyio.sleep(0.1)
        assert c.fired == 1 and engine.firings == 1
        assert ("io", f"d.p{n + 1}") not in engine.view  # nothing kept for unnamed points


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
        assert engine.unstored[c] == 10 and len(c.traces) == 3
        engine.flush_traces()
        assert engine.dropped_traces == 7 and not engine.unstored
        assert isinstance(c.traces[-1][1], Trace)
    stored = read_traces(tmp_path / "data" / "events" / "events.sqlite", "main.txt:1", 3)
    assert [t["trigger"] for t in stored] == ["IO d.a = 7", "IO d.a = 8", "IO d.a = 9"]
