"""The engine's views (``events.traces``, ``events.rules``) through the kernel's host.views, on
running hosts: real firings, traces kept across a restart, bounds and bad parameters."""

from __future__ import annotations

from typing import Any

import anyio
import ioplex
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex import ViewParamError

from .conftest import ONLY_EVENTS, make_config, running, until

pytestmark = pytest.mark.anyio

RULES = 'IO d.a : IO d.b = IO d.a, LOG = "a changed"\nIO d.c > 5 : IO d.light = IO d.text\n'


async def traces(host: Any, **params: str) -> dict[str, Any]:
    return await host.views.call(host, "events.traces", params)


async def fire_a(host: Any, engine: Any, values: range) -> None:
    rule = next(iter(engine.files.values()))[0]
    for v in values:
        fired = rule.fired
        await host.write("d.a", v)
        await until(lambda r=rule, n=fired: r.fired == n + 1 and not r.running)


async def test_traces_of_real_firings_newest_first(tmp_path):
    async with running(make_config(tmp_path, RULES)) as (host, engine):
        assert sorted(host.views) == ["events.rules", "events.traces"]
        await fire_a(host, engine, range(1, 4))
        await host.write("d.text", "maybe")
        await host.write("d.c", 9)  # the write of "maybe" to a bool fails: traced as an error
        await until(lambda: host.points["d.b"].value == 3)
        second = next(iter(engine.files.values()))[1]
        await until(lambda: len(second.traces) == 1)

        answer = await traces(host)
        assert answer["engine"] and answer["limit"] == 20 and answer["rule"] is None
        got = answer["traces"]
        assert len(got) == 4
        assert [t["time"] for t in got] == sorted((t["time"] for t in got), reverse=True)
        (failed,) = [t for t in got if t["rule"].endswith("main.txt:2")]
        assert failed["trigger"] == "IO d.c = 9" and failed["status"] == "done"
        assert failed["actions"][0][0] == "IO d.light = IO d.text"
        assert failed["actions"][0][1].startswith("error: d.light: expected bool")
        firsts = [t for t in got if t["rule"].endswith("main.txt:1")]
        assert [t["trigger"] for t in firsts] == ["IO d.a = 3", "IO d.a = 2", "IO d.a = 1"]
        assert firsts[0]["actions"] == [["IO d.b = IO d.a", "ok"], ['LOG = "a changed"', "ok"]]
        assert firsts[0]["text"] == RULES.splitlines()[0]
        assert firsts[0]["point"] == "events." + firsts[0]["point"].split(".", 1)[1]
        assert host.points[firsts[0]["point"]].value == firsts[0]["time"]

        # one rule, named by its id, its point or its point's key (as /api/v1/rules lists)
        rid, point = firsts[0]["rule"], firsts[0]["point"]
        for name in (rid, point, point.removeprefix("events.")):
            one = await traces(host, rule=name, limit="2")
            assert [t["trigger"] for t in one["traces"]] == ["IO d.a = 3", "IO d.a = 2"]
        assert len((await traces(host, limit="1"))["traces"]) == 1
        assert len((await traces(host, rule=""))["traces"]) == 4  # empty: every rule


async def test_bad_parameters_and_unknown_rules(tmp_path):
    async with running(make_config(tmp_path, RULES)) as (host, engine):
        rid = next(iter(engine.files.values()))[0].id
        for limit, message in (
            ("0", "limit: 0 is not within 1...1000"),
            ("1001", "limit: 1001 is not within 1...1000"),
            ("-1", "is not a whole number"),
            ("²", "is not a whole number"),
            ("9" * 30, "is not a whole number"),
        ):
            with pytest.raises(ViewParamError, match=message):
                await traces(host, limit=limit)
        wrong = rid[: -len("1")] + "9"
        with pytest.raises(ViewParamError) as caught:
            await traces(host, rule=wrong)
        assert f"no rule '{wrong}' is loaded; did you mean '{rid[:-1]}" in str(caught.value)
        with pytest.raises(ViewParamError, match=r"no rule 'x\\u202ey' is loaded"):
            await traces(host, rule="x\u202ey")
        with pytest.raises(ViewParamError, match="unknown parameter 'rules'"):
            await traces(host, rules="x")


async def test_limit_bounds_a_burst(tmp_path):
    burst = 'IO d.a : LOG = "a"\n'  # runs at once: every firing is traced, none skipped
    async with running(make_config(tmp_path, burst, trace_size=1000)) as (host, engine):
        rule = next(iter(engine.files.values()))[0]
        for v in range(1, 1101):
            await host.write("d.a", v)
        await until(lambda: rule.fired == 1100)
        engine.flush_traces()  # half stored, the rest of memory too: still no repeats
        await host.write("d.a", 5000)
        await until(lambda: rule.traces[-1][1]["trigger"] == "IO d.a = 5000")
        answer = await traces(host, limit="1000")
        got = answer["traces"]
        assert len(got) == 1000
        assert len({(t["time"], t["trigger"]) for t in got}) == 1000
        assert got[0]["trigger"] == "IO d.a = 5000"


async def test_traces_outlive_a_restart_without_repeats(tmp_path):
    config = make_config(tmp_path, RULES)
    async with running(config) as (host, engine):
        await fire_a(host, engine, range(1, 3))
    async with running(config) as (host, engine):
        assert not any(c.traces for r in engine.files.values() for c in r)
        await fire_a(host, engine, range(10, 12))
        got = (await traces(host))["traces"]
        assert [t["trigger"] for t in got] == [
            "IO d.a = 11",
            "IO d.a = 10",
            "IO d.a = 2",
            "IO d.a = 1",
        ]
        engine.flush_traces()  # now stored too: memory and store overlap, still no repeats
        assert [t["trigger"] for t in (await traces(host))["traces"]] == [t["trigger"] for t in got]
        rules = (await host.views.call(host, "events.rules"))["rules"]
        first = next(r for r in rules if r["rule"].endswith("main.txt:1"))
        assert first["fired"] == 2 and first["skipped"] == 0 and first["disabled"] is None
        assert first["last_fired"] == got[0]["time"] and first["point"] == got[0]["point"]


async def test_without_a_running_engine_the_store_answers(tmp_path):
    config = make_config(tmp_path, RULES)
    async with running(config) as (host, engine):
        await fire_a(host, engine, range(1, 4))
        rid = next(iter(engine.files.values()))[0].id
    stopped = ioplex.Host.from_config(config, environ=ONLY_EVENTS)  # not started
    answer = await traces(stopped, rule=rid, limit="2")
    assert not answer["engine"]
    assert [t["trigger"] for t in answer["traces"]] == ["IO d.a = 3", "IO d.a = 2"]
    key = answer["traces"][0]["point"].removeprefix("events.")
    assert len((await traces(stopped, rule=key))["traces"]) == 3
    assert (await traces(stopped, rule="nothing.txt:1"))["traces"] == []  # unknown: none
    assert await stopped.views.call(stopped, "events.rules") == {"engine": False, "rules": []}
    (tmp_path / "other").mkdir()
    empty = ioplex.Host.from_config(make_config(tmp_path / "other", RULES), environ=ONLY_EVENTS)
    assert (await traces(empty))["traces"] == []  # no store yet


@pytest.fixture(scope="module")
def stored_host(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A host that is not running, whose store holds traces of two rules."""
    path = tmp_path_factory.mktemp("hostile")
    config = make_config(path, RULES)

    async def fill() -> None:
        async with running(config) as (host, engine):
            await fire_a(host, engine, range(1, 4))

    anyio.run(fill)
    return ioplex.Host.from_config(config, environ=ONLY_EVENTS)


@settings(max_examples=300, deadline=None)
@given(
    rule=st.none()
    | st.text(max_size=60)
    | st.sampled_from(["main.txt:1", "events.x.1", ":", "%", "_", "'"]),
    limit=st.none() | st.text(max_size=10) | st.integers(-5, 2000).map(str),
)
def test_hostile_parameters_raise_only_value_errors(
    stored_host: Any, rule: Any, limit: Any
) -> None:
    params = {k: v for k, v in (("rule", rule), ("limit", limit)) if v is not None}

    async def call() -> None:
        try:
            answer = await traces(stored_host, **params)
        except ViewParamError:
            return
        assert isinstance(answer["traces"], list)
        assert len(answer["traces"]) <= answer["limit"] <= 1000

    anyio.run(call)
