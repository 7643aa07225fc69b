"""The point registry: names, values, change events, subscriptions and writes."""

from __future__ import annotations

import anyio
import ioplex
import pytest
from ioplex import PointNameError, PointTypeError, Quality, ReadOnlyPointError, Registry


@pytest.mark.parametrize(
    "name",
    ["a.b", "remote.dummy.light.1", "vscp.FF:EE:00.temperature.0", "x.$exec", "a.b-c_d/e"],
)
def test_valid_names(name: str) -> None:
    assert Registry().declare(name).name == name


@pytest.mark.parametrize(
    "name", ["a", "a..b", ".a.b", "a.b.", "a b.c", "a.b c", "a.*", "a.b?", "a.[x]", ""]
)
def test_invalid_names_say_why(name: str) -> None:
    with pytest.raises(PointNameError, match="invalid point name"):
        Registry().declare(name)


def test_ui_variables_may_have_one_segment() -> None:
    assert Registry("ui", min_segments=1).declare("status").name == "status"


def test_duplicate_declaration_is_refused() -> None:
    registry = Registry()
    registry.declare("a.b", 1)
    with pytest.raises(PointNameError, match="already declared"):
        registry.declare("a.b", 2)


def test_value_types_are_kept() -> None:
    registry = Registry()
    point = registry.declare("a.temp", 21.5)
    assert point.type is float
    registry.update(point, 22)  # an int is accepted for a float point
    assert point.value == 22.0 and type(point.value) is float
    with pytest.raises(PointTypeError, match="expected float, got bool"):
        registry.update(point, True)
    with pytest.raises(PointTypeError, match="list"):
        registry.update(registry.declare("a.any"), [1])


def test_same_value_refreshes_last_updated_only() -> None:
    now = [100.0]
    registry = Registry(clock=lambda: now[0])
    point = registry.declare("a.b", 1)
    with registry.subscribe("a.*") as events:
        now[0] = 101.0
        assert registry.update(point, 1) is False
        assert (point.last_changed, point.last_updated) == (100.0, 101.0)
        assert events.pending() == 0
        now[0] = 102.0
        assert registry.update(point, 1, force=True) is True  # a driver forces an event
        assert events.pending() == 1
        assert point.last_changed == 102.0
    untyped = registry.declare("a.any")
    registry.update(untyped, 1)
    assert registry.update(untyped, True) is True  # 1 == True, but another type: a change


def test_quality_change_is_an_event() -> None:
    registry = Registry()
    point = registry.declare("a.b", 5)
    with registry.subscribe("a.b") as events:
        registry.set_quality([point], Quality.BAD)
        ((name, value, old, _, quality),) = events.drain()
        assert (name, value, old, quality) == ("a.b", 5, 5, Quality.BAD)


def test_patterns_select_points() -> None:
    registry = Registry()
    remote = registry.subscribe("remote.*")
    connections = registry.subscribe("*.connection")
    for name in ("remote.dummy.light.1", "remote.connection", "local.connection", "local.x"):
        registry.declare(name, 0)
    assert [e[0] for e in remote.drain()] == ["remote.dummy.light.1", "remote.connection"]
    assert [e[0] for e in connections.drain()] == ["remote.connection", "local.connection"]
    assert [p.name for p in registry.match("*.light.?")] == ["remote.dummy.light.1"]


@pytest.mark.parametrize("pattern", ["a b", "a..b", "a.[b", "a.b]", "a.[[b]]", ""])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(PointNameError, match="invalid pattern"):
        Registry().subscribe(pattern)


def test_slow_subscriber_drops_oldest_and_counts() -> None:
    registry = Registry()
    point = registry.declare("a.b", 0)
    with registry.subscribe("a.b", maxsize=3) as slow, registry.subscribe("a.b") as fast:
        for value in range(1, 11):
            registry.update(point, value)
        assert [e[1] for e in slow.drain()] == [8, 9, 10]
        assert slow.dropped == 7
        assert [e[1] for e in fast.drain()] == list(range(1, 11))
        assert fast.dropped == 0


def test_closed_subscription_gets_nothing() -> None:
    registry = Registry()
    point = registry.declare("a.b", 0)
    sub = registry.subscribe("*")
    sub.close()
    registry.update(point, 1)
    assert sub.pending() == 0


@pytest.mark.anyio
async def test_async_iteration_wakes_on_change() -> None:
    registry = Registry()
    point = registry.declare("a.b", 0)
    got = []
    async with registry.subscribe("a.*") as events:

        async def reader() -> None:
            async for event in events:
                got.append((event.name, event.value, event.old_value))
                if len(got) == 2:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.sleep(0.01)
            registry.update(point, 1)
            await anyio.sleep(0.01)
            registry.update(point, 2)
    assert got == [("a.b", 1, 0), ("a.b", 2, 1)]


def test_listener_error_does_not_reach_the_driver(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    point = registry.declare("a.b", 0)
    seen = []

    def broken(event: ioplex.PointEvent) -> None:
        raise RuntimeError("boom")

    bad = registry.listen(broken, "a.*")
    registry.listen(lambda e: seen.append(e.value), "a.*")
    registry.update(point, 1)
    assert seen == [1] and bad.errors == 1
    assert "boom" in caplog.text


@pytest.mark.anyio
async def test_writes_are_checked_before_the_driver_sees_them() -> None:
    registry = Registry()
    registry.declare("a.ro", 1)
    registry.declare("a.rw", 1, writable=True)
    with pytest.raises(ioplex.UnknownPointError, match="unknown point 'a.rx'; did you mean"):
        await registry.write("a.rx", 1)
    with pytest.raises(ReadOnlyPointError, match="a.ro is read-only"):
        await registry.write("a.ro", 2)
    with pytest.raises(PointTypeError, match="a.rw: expected int, got str"):
        await registry.write("a.rw", "2")
    await registry.write("a.rw", 2)  # no owner: a host-local variable is simply set
    assert registry["a.rw"].value == 2
