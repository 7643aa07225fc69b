"""Plugins' read-only views (the register_views hook): registration, listing, calls, errors."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import anyio
import ioplex
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex import UnknownViewError, ViewError, ViewParamError, Views

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.anyio


def plugin(**views: Any) -> types.SimpleNamespace:
    """A plugin object whose register_views registers `views` (name -> (function, text))."""

    @ioplex.hookimpl
    def register_views(register: Any) -> None:
        for name, (function, description) in views.items():
            register(name, function, description)

    return types.SimpleNamespace(register_views=register_views)


def counter(host: Any, start: str = "0") -> dict[str, Any]:
    try:
        n = int(start)
    except ValueError:
        raise ValueError(f"start: {start!r} is not a whole number") from None
    return {"host": host.name, "next": n + 1}


async def slow_sum(host: Any, a: str, b: str = "1") -> int:
    await anyio.sleep(0.01)
    return int(a) + int(b)


@pytest.fixture
def plugins(builtins_only: ioplex.Plugins) -> ioplex.Plugins:
    builtins_only.register(
        plugin(counter=(counter, "A sync view"), sum=(slow_sum, "An async view")), "alpha"
    )
    return builtins_only


async def test_sync_and_async_views_on_a_running_host(make_host: Any, plugins: Any) -> None:
    host = make_host({"host": {"name": "h1"}}, plugins)
    async with host:
        assert list(host.views) == ["alpha.counter", "alpha.sum"]
        assert host.views["alpha.sum"].as_dict() == {
            "name": "alpha.sum",
            "plugin": "alpha",
            "description": "An async view",
            "params": ["a", "b"],
            "required": ["a"],
        }
        assert await host.views.call(host, "alpha.counter") == {"host": "h1", "next": 1}
        assert await host.views.call(host, "alpha.counter", {"start": "41"}) == {
            "host": "h1",
            "next": 42,
        }
        assert await host.views.call(host, "alpha.sum", {"a": "2", "b": "3"}) == 5
        assert await host.views.call_json(host, "alpha.sum", {"a": "2"}) == "3"
        assert host.views is host.views  # collected once per host


async def test_bad_parameters_are_the_callers_fault(make_host: Any, plugins: Any) -> None:
    host = make_host({}, plugins)
    views = host.views
    cases = [
        ("alpha.counter", {"start": "x"}, "view alpha.counter: start: 'x' is not a whole number"),
        ("alpha.counter", {"stop": "1"}, "unknown parameter 'stop' (it takes start)"),
        ("alpha.sum", {}, "missing parameter a"),
        ("alpha.sum", {"a": "1", "b": 2}, "parameters are strings"),
        ("alpha.counter", {"start": "1" * 5000}, "longer than 4096 characters"),
        ("alpha.counter", {"host": "x"}, "unknown parameter 'host'"),
        ("alpha.counter", {f"p{i}": "" for i in range(40)}, "at most 32 parameters"),
        ("alpha.counter", {"a\u202eb": ""}, "bad parameter name 'a\\u202eb'"),
    ]
    for name, params, message in cases:
        with pytest.raises(ViewParamError) as caught:
            await views.call(host, name, params)
        assert message in str(caught.value), (params, str(caught.value))
        assert isinstance(caught.value, ValueError)


async def test_unknown_view_says_which_it_may_be(make_host: Any, plugins: Any) -> None:
    host = make_host({}, plugins)
    with pytest.raises(UnknownViewError, match=r"did you mean 'alpha\.counter'\?"):
        await host.views.call(host, "alpha.countr")
    with pytest.raises(UnknownViewError, match=r"views: alpha\.counter, alpha\.sum"):
        host.views["\x00zzz"]
    assert "alpha.counter" in host.views and "alpha.nothing" not in host.views


async def test_a_failing_slow_or_non_json_view_is_its_own_fault(builtins_only: Any) -> None:
    async def hangs(host: Any) -> None:
        await anyio.sleep(30)

    def breaks(host: Any) -> None:
        raise RuntimeError("the engine is gone")

    def not_json(host: Any) -> Any:
        return {"x": object()}

    def nan(host: Any) -> Any:
        return [float("nan"), float("-inf")]

    views = Views()
    for name, function in (("hangs", hangs), ("breaks", breaks), ("odd", not_json), ("nan", nan)):
        views.add("beta", name, function, "test view")
    with pytest.raises(ViewError, match="view beta.hangs of plugin beta took over 0.2 s"):
        with anyio.fail_after(5):
            await views.call(None, "beta.hangs", timeout=0.2)
    with pytest.raises(ViewError, match="failed: RuntimeError: the engine is gone"):
        await views.call(None, "beta.breaks")
    with pytest.raises(ViewError, match="not JSON"):
        await views.call_json(None, "beta.odd")
    assert await views.call_json(None, "beta.nan") == '["NaN","-Infinity"]'


def test_duplicates_are_refused_naming_both(builtins_only: Any) -> None:
    twice = types.SimpleNamespace()

    @ioplex.hookimpl
    def register_views(register: Any) -> None:
        register("counter", counter, "first")
        register("counter", counter, "second")

    twice.register_views = register_views
    builtins_only.register(twice, "gamma")
    builtins_only.register(plugin(counter=(counter, "fine")), "delta")
    views = Views.collect(builtins_only)
    assert list(views) == ["delta.counter"]  # gamma offers none: all or nothing
    (problem,) = views.problems
    assert problem == (
        "plugin gamma: views not registered: view 'gamma.counter' of plugin 'gamma' "
        "is already registered by plugin 'gamma'"
    )
    with pytest.raises(ioplex.IoplexError, match="already registered by plugin 'delta'"):
        views.add("delta", "counter", counter, "again")


@pytest.mark.parametrize(
    ("name", "function", "description", "message"),
    [
        ("Traces", counter, "x", "lower case letters"),
        ("a.b", counter, "x", "lower case letters"),
        ("ok", 42, "x", "not callable"),
        ("ok", counter, " ", "one-line description"),
        ("ok", lambda: None, "x", "host as its first argument"),
        ("ok", lambda *, host: None, "x", "host as its first argument"),
        ("ok", lambda host, a, /: None, "x", "must be passable by name"),
        ("ok", lambda host, *rest: None, "x", "must be passable by name"),
    ],
)
def test_bad_registrations_are_refused(
    builtins_only: Any, name: str, function: Any, description: str, message: str
) -> None:
    builtins_only.register(plugin(**{name: (function, description)}), "eps")
    views = Views.collect(builtins_only)
    assert not views and message in views.problems[0] and "plugin eps" in views.problems[0]


async def test_any_parameters_with_var_keyword(builtins_only: Any) -> None:
    views = Views()
    views.add("zeta", "echo", lambda host, **params: params, "echoes")
    assert await views.call(None, "zeta.echo", {"x": "1", "y": ""}) == {"x": "1", "y": ""}
    assert views["zeta.echo"].as_dict()["params"] == []


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(max_size=30) | st.sampled_from(["alpha.counter", "alpha.sum"]),
    params=st.dictionaries(
        st.text(max_size=70) | st.sampled_from(["a", "b", "start"]),
        st.text(max_size=50) | st.integers().map(str) | st.integers(),
        max_size=5,
    ),
)
def test_hostile_calls_raise_only_the_documented_errors(name: str, params: dict[str, Any]) -> None:
    views = Views()
    views.add("alpha", "counter", counter, "sync")
    views.add("alpha", "sum", slow_sum, "async")
    host = types.SimpleNamespace(name="fuzz")

    async def call() -> None:
        try:
            await views.call_json(host, name, params)
        except (UnknownViewError, ViewParamError):
            pass

    anyio.run(call)


def test_the_hooks_md_example_runs(builtins_only: Any, tmp_path: Path) -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    section = text[text.index("## register_views(") :]
    (code,) = re.findall(r"```python\n(.*?)```", section[: section.index("\n## ", 5)], re.DOTALL)
    module = types.ModuleType("queue_demo")
    exec(compile(code, "hooks.md", "exec"), module.__dict__)  # noqa: S102 - the doc's own code
    builtins_only.register(module, "queue_demo")
    host = ioplex.Host.from_config({"host": {"data_dir": str(tmp_path)}}, plugins=builtins_only)
    module.WAITING[host] = ["a", "b", "c"]

    async def main() -> None:
        assert await host.views.call(host, "queue_demo.queue", {"limit": "2"}) == {
            "waiting": 3,
            "first": ["a", "b"],
        }
        with pytest.raises(ViewParamError, match="1...100"):
            await host.views.call(host, "queue_demo.queue", {"limit": "0"})

    anyio.run(main)
    assert host.views["queue_demo.queue"].description == "Commands waiting to be sent, oldest first"
