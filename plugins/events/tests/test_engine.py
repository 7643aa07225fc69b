"""The engine against a running host: triggers, conditions, actions, gating, modes."""

from __future__ import annotations

import anyio
import pytest
from ioplex import Quality

from .conftest import make_config, running, until

pytestmark = pytest.mark.anyio


async def test_transient_and_condition_rules(tmp_path):
    rules = (
        'IO d.a : IO d.b = IO d.a\nIO d.c > 5 : IO d.text = "hot"\nIO d.c <= 5 : IO d.text = cold\n'
    )
    async with running(make_config(tmp_path, rules)) as (host, _engine):
        await host.write("d.a", 7)
        await until(lambda: host.points["d.b"].value == 7)
        await host.write("d.c", 9)
        await until(lambda: host.points["d.text"].value == "hot")
        await host.write("d.c", 12)  # still > 5: a condition fires only when it becomes true
        await host.write("d.text", "x")
        await anyio.sleep(0.1)
        assert host.points["d.text"].value == "x"
        await host.write("d.c", 1)
        await until(lambda: host.points["d.text"].value == "cold")


async def test_seed_examples_with_ui_variables(tmp_path):
    rules = (
        'USER "$exec" : IO d.text = $exec, UISET "$exec.focus" = true\n'
        "IO d.text : UISET stdout.text = IO d.text\n"
    )
    async with running(make_config(tmp_path, rules)) as (host, _engine):
        host.ui.declare("$exec", "", writable=True)
        await host.ui.write("$exec", "uptime")
        await until(lambda: host.points["d.text"].value == "uptime")
        await until(lambda: "stdout.text" in host.ui and host.ui["stdout.text"].value == "uptime")
        assert host.ui["$exec.focus"].value is True


async def test_and_or_not_left_to_right(tmp_path):
    # Without brackets AND/OR run left to right: (a=1 OR b=1) AND c=1.
    rules = "IO d.a = 1 OR IO d.b = 1 AND IO d.c = 1 : IO d.t = 1\n"
    async with running(make_config(tmp_path, rules)) as (host, _engine):
        await host.write("d.a", 1)
        await anyio.sleep(0.1)
        assert host.points["d.t"].value == 20.5
        await host.write("d.c", 1)
        await until(lambda: host.points["d.t"].value == 1.0)


async def test_quality_gating(tmp_path):
    rules = "IO d.a = 1 AND IO d.b = 1 : IO d.c = 1\nIO d.t AND IO d.b = 1 : IO d.c = 2\n"
    async with running(make_config(tmp_path, rules)) as (host, engine):
        both, stale = next(iter(engine.files.values()))
        point_b = host.points["d.b"]
        await host.write("d.b", 1)
        await host.write("d.a", 1)
        await until(lambda: both.fired == 1)
        host.points.update(point_b, 1, Quality.BAD)  # b's link drops: its value is stale
        await host.write("d.t", 30)  # would fire with the stale b = 1
        await anyio.sleep(0.1)
        assert stale.fired == 0 and both.state is True
        host.points.update(point_b, 1, Quality.GOOD)  # back with the same value
        await anyio.sleep(0.1)
        assert both.fired == 1 and stale.fired == 0  # a reconnect fires nothing
        await host.write("d.t", 31)
        await until(lambda: stale.fired == 1)


async def test_failed_action_does_not_stop_the_others(tmp_path, caplog):
    rules = 'IO d.a : IO d.light = IO d.text, IO d.b = 5, LOG = "done"\n'
    async with running(make_config(tmp_path, rules)) as (host, engine):
        await host.write("d.text", "maybe")
        await host.write("d.a", 3)
        await until(lambda: host.points["d.b"].value == 5)
        await until(lambda: any(c.traces for r in engine.files.values() for c in r))
        c = next(iter(engine.files.values()))[0]
        _, trace = c.traces[-1]
        assert trace["actions"][0][1].startswith("error: d.light: expected bool")
        assert trace["actions"][1][1] == "ok"
    assert "main.txt:1:10" in caplog.text


async def test_runaway_rule_is_stopped(tmp_path, caplog):
    # Two rules that undo each other's write: a loop through the registry.
    rules = "IO d.light = true : IO d.light = false\nIO d.light = false : IO d.light = true\n"
    async with running(make_config(tmp_path, rules, runaway_depth=5)) as (host, engine):
        await host.write("d.light", True)
        await until(lambda: engine.runaways >= 1)
        on, off = next(iter(engine.files.values()))
        assert (on.disabled or off.disabled) and on.fired + off.fired <= 6
        fired = on.fired + off.fired
        await anyio.sleep(0.2)
        assert on.fired + off.fired == fired  # stopped
    assert "stopped as a runaway" in caplog.text
    assert "main.txt:1 -> " in caplog.text  # the loop is named


async def test_mode_single_skips_and_queued_runs_after(tmp_path):
    rules = "IO d.a : IO d.b = IO d.a\n"
    async with running(make_config(tmp_path, rules, mode="queued")) as (_host, engine):
        c = next(iter(engine.files.values()))[0]
        c.running = 1  # pretend a run is in progress
        engine.consider(c, ("io", "d.a", 1), 0, ())
        engine.consider(c, ("io", "d.a", 2), 0, ())
        assert len(c.waiting) == 2
    async with running(make_config(tmp_path, rules, mode="single")) as (_host, engine):
        c = next(iter(engine.files.values()))[0]
        c.running = 1
        engine.consider(c, ("io", "d.a", 1), 0, ())
        assert c.skipped == 1 and c.traces[-1][1]["status"].startswith("skipped")
        c.running = 0


async def test_program_timers_persist_across_restarts(tmp_path):
    rules = "IO d.a = 1 : TIMER t = SET 0.5\nIO d.a = 2 : TIMER long = SET 3600\nTIMER t : IO d.b = 42\n"
    config = make_config(tmp_path, rules)
    async with running(config) as (host, engine):
        await host.write("d.a", 1)
        await host.write("d.a", 2)
        await until(lambda: "t" in engine.timers and "long" in engine.timers)
    # The host stops before t expires; it fires once after the restart.
    await anyio.sleep(0.6)
    async with running(config) as (host, engine):
        assert "long" in engine.timers
        await until(lambda: host.points["d.b"].value == 42)
        assert "t" not in engine.timers


async def test_start_and_init(tmp_path):
    rules = "START : IO d.a = 11\nINIT : IO d.b = 12\n"
    async with running(make_config(tmp_path, rules)) as (host, _engine):
        await until(lambda: host.points["d.a"].value == 11 and host.points["d.b"].value == 12)


async def test_rule_points_and_traces_cli(tmp_path):
    import subprocess
    import sys

    def ioplex(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ioplex", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    rules = "IO d.a : IO d.b = 1\n"
    config = make_config(tmp_path, rules)
    async with running(config) as (host, engine):
        await host.write("d.a", 5)
        await until(lambda: host.points["d.b"].value == 1)
        c = next(iter(engine.files.values()))[0]
        await until(lambda: c.point.value is not None)
        engine.flush_traces()
    toml = tmp_path / "site.toml"
    toml.write_text(
        f'[host]\ndata_dir = "{tmp_path / "data"}"\n[ioservers.d]\nplugin = "dummy"\n'
        f"[ioservers.d.options.points]\na = 0\nb = 0\n"
        f'[plugins.events]\nfiles = ["events/*.txt"]\n'
    )
    result = ioplex("events", "trace", str(toml))
    assert result.returncode == 0, result.stderr
    assert "IO d.a = 5" in result.stdout and "IO d.b = 1: ok" in result.stdout
    result = ioplex("events", "check", str(toml))
    assert result.returncode == 0 and "1 rules in 1 files: valid" in result.stdout
    (tmp_path / "events" / "bad.txt").write_text("IO x.a : IO d.bb = 1\nTIMR 0000 : LOG = 1\n")
    result = ioplex("events", "check", str(toml))
    assert result.returncode == 2
    assert "events/bad.txt:1:1: unknown point 'x.a'" in result.stderr
    assert "events/bad.txt:2:1: unknown keyword 'TIMR'; did you mean TIMER?" in result.stderr
    assert "did you mean 'd.b'" not in result.stderr  # d.bb: instance d exists, allowed
    result = ioplex("check", str(toml))  # ioplex check reports every problem too
    assert result.returncode == 2 and "bad.txt:2:1" in result.stderr
    assert "events/bad.txt:1:1: unknown point 'x.a'" in result.stderr
    (tmp_path / "events" / "bad.txt").write_text("NIGHT : IO d.a = 1\n")
    result = ioplex("check", str(toml))
    assert result.returncode == 2 and "bad.txt:1:1" in result.stderr and "latitude" in result.stderr
    toml.write_text(
        toml.read_text().replace("[host]\n", "[host]\nlatitude = 45.5\nlongitude = 9.2\n")
    )
    result = ioplex("check", str(toml))
    assert result.returncode == 0, result.stderr
