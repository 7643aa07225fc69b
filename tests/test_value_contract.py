"""The value contract at the registry's boundary, and names that cannot fool a reader."""

from __future__ import annotations

import math
import re

import ioplex
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex import PointNameError, PointTypeError, Quality, Registry
from ioplex.points import INT_MAX, INT_MIN, check_name, check_pattern, printable

pytestmark = pytest.mark.anyio


def make_registry() -> Registry:
    return Registry("io")


def test_huge_integers_are_refused_and_nothing_is_stored() -> None:
    reg = make_registry()
    point = reg.declare("dev.count", 1)
    huge = 10**400
    with pytest.raises(PointTypeError, match=r"dev.count: an integer of \d+ bits is outside"):
        reg.update(point, huge)
    assert point.value == 1
    reg.update(point, INT_MAX)
    reg.update(point, INT_MIN)
    with pytest.raises(PointTypeError):
        reg.update(point, INT_MAX + 1)
    assert point.value == INT_MIN
    # an int written to a float point is held to the same bound
    temp = reg.declare("dev.temp", 1.5)
    with pytest.raises(PointTypeError):
        reg.update(temp, 10**400)
    assert temp.value == 1.5


def test_non_finite_floats_only_where_declared() -> None:
    reg = make_registry()
    temp = reg.declare("dev.temp", 20.0)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(PointTypeError, match="not a finite number"):
            reg.update(temp, bad)
    assert temp.value == 20.0
    ratio = reg.declare("dev.ratio", 0.5, nonfinite=True)
    reg.update(ratio, math.inf)
    assert ratio.value == math.inf


def test_strings_are_bounded_and_valid_unicode() -> None:
    reg = make_registry()
    reg.max_string = 10
    text = reg.declare("dev.text", "")
    reg.update(text, "ünïcødé ok")
    with pytest.raises(PointTypeError, match="longer than the host's limit of 10"):
        reg.update(text, "x" * 11)
    with pytest.raises(PointTypeError, match="lone surrogate"):
        reg.update(text, "a\ud800b")
    assert text.value == "ünïcødé ok"


def test_a_bad_value_does_not_stop_the_rest_of_a_batch() -> None:
    reg = make_registry()
    a, b, c = (reg.declare(f"dev.{n}", 0) for n in "abc")
    with pytest.raises(PointTypeError, match=r"dev.b.*\(and 1 more"):
        reg.update_many([(a, 1), (b, 10**30), (c, 3), (a, "x")])
    assert (a.value, b.value, c.value) == (1, 0, 3)
    assert reg.refused == 2


async def test_host_write_refuses_misuse_with_documented_errors(make_host) -> None:
    host = make_host(
        {"ioservers": {"dummy": {"plugin": "dummy", "options": {"points": {"n": 0, "t": 1.5}}}}}
    )
    async with host:
        await host.wait_online("dummy")
        with pytest.raises(PointNameError, match="must be a string"):
            await host.write(None, 1)  # type: ignore[arg-type]
        with pytest.raises(PointTypeError, match="outside the signed 64-bit range"):
            await host.write("dummy.n", 10**400)
        with pytest.raises(PointTypeError, match="not a finite number"):
            await host.write("dummy.t", math.nan)
        with pytest.raises(PointTypeError, match="has type list"):
            await host.write("dummy.n", [1])  # type: ignore[arg-type]
        assert host.points["dummy.n"].value == 0


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("a.b\u202ec", "U+202E"),
        ("a.\x00b", "U+0000"),
        ("a.b\u200bc", "U+200B"),
        ("a.\x9bb", "U+009B"),
        ("a.b\x7f", "U+007F"),
        ("a.\u2066x", "U+2066"),
    ],
)
def test_names_refuse_unsafe_characters_by_code_point(name: str, code: str) -> None:
    with pytest.raises(PointNameError, match=re.escape(code)):
        check_name(name)
    with pytest.raises(PointNameError, match=re.escape(code)):
        check_pattern(name)


def test_name_errors_are_in_words_and_long_names_are_refused() -> None:
    with pytest.raises(PointNameError, match="the limit is 255"):
        check_name("a." + "b" * 300)
    with pytest.raises(PointNameError, match="empty segment"):
        check_name("a..b")
    with pytest.raises(PointNameError, match="whitespace"):
        check_name("a.b c")
    with pytest.raises(PointNameError, match="kept for patterns"):
        check_name("a.b*")
    assert printable("a\u202eb\x00") == "a\\u202eb\\u0000"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_point_names(name: str) -> None:
    """Any text is either a safe name or a PointNameError, never anything else."""
    try:
        check_name(name)
    except PointNameError:
        return
    assert len(name) <= 255 and printable(name, 1000) == name


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([None, int, float, str, bool]), scalars)
def test_fuzz_values(type_, value) -> None:
    """The registry stores a value that meets the contract, or refuses it with PointTypeError
    and keeps the old one."""
    reg = make_registry()
    point = reg.declare("dev.p", type=type_)
    try:
        reg.update(point, value)
    except PointTypeError:
        assert point.value is None
        return
    stored = point.value
    if isinstance(stored, int) and not isinstance(stored, bool):
        assert INT_MIN <= stored <= INT_MAX
    if isinstance(stored, float):
        assert math.isfinite(stored)
    if isinstance(stored, str):
        stored.encode("utf-8")


async def test_result_points_do_not_follow_the_connection(make_host) -> None:
    async with make_host({"ioservers": {"dummy": {"plugin": "dummy"}}}) as host:
        await host.wait_online("dummy")
        io = host.ioservers["dummy"]
        result = io.declare("result", 0, follows_connection=False, sensitive=True)
        value = io.declare("value", 0)
        with host.subscribe("dummy.result") as events:
            io.set_offline()
            assert value.quality is Quality.BAD and result.quality is Quality.GOOD
            io.set_online()
            assert events.pending() == 0  # no event for a result on a reconnect
        assert result.sensitive and value.quality is Quality.STALE  # carried over: unconfirmed


def test_secret_masking_replaces_whole_values_only(tmp_path) -> None:
    plugins = ioplex.Plugins()
    plugins.load_builtins()

    def problems(host: dict) -> str:
        with pytest.raises(ioplex.ConfigError) as info:
            ioplex.Host.from_config(
                {"host": {"data_dir": str(tmp_path), **host}},
                plugins=plugins,
                environ={"SECRET": "one"},
            )
        return str(info.value)

    # A secret that happens to be a word of the message leaves the message alone...
    text = problems({"name": {"env": "SECRET"}, "clock": "LINE"})
    assert "'LINE' is not one of" in text and "***" not in text
    # ...and a secret that is the offending value is hidden whole.
    text = problems({"clock": {"env": "SECRET"}})
    assert "'***' is not one of" in text and "'one'" not in text
