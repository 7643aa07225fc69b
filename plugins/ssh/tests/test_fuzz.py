"""Property-based fuzzing of what reads the outside world: get/put values, local names in the
transfer area, and command output under every parse rule. Only documented errors escape."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex_ssh.paths import PathRefused, Sandbox, split_transfer
from ioplex_ssh.polled import ParseError, parse_output

NAMES = st.lists(
    st.sampled_from(list("ab./\\ \"'*?[]~-\0\n\t\u202e") + ["..", "é", "up", "state", "inner"]),
    max_size=20,
).map("".join)


@settings(max_examples=500)
@given(st.one_of(NAMES, st.text(max_size=60)))
def test_split_transfer_gives_two_names_or_value_error(value):
    try:
        source, destination = split_transfer(value)
    except ValueError as exc:
        assert "source" in str(exc) or "split" in str(exc)
        return
    assert source and destination


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    area = root / "files"
    (area / "sub").mkdir(parents=True)
    (area / "sub" / "f").write_text("x")
    (root / "state.db").write_text("state")
    (area / "up").symlink_to(root)
    (area / "state").symlink_to(root / "state.db")
    (area / "inner").symlink_to(area / "sub")
    return area


@settings(max_examples=800, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(NAMES)
def test_a_resolved_name_is_always_inside_the_area(area, name):
    sandbox = Sandbox(area, [area.parent / "state.db"])
    try:
        path = sandbox.resolve(name)
    except PathRefused:
        return
    real = Path(os.path.realpath(path))
    assert real == sandbox.root or real.is_relative_to(sandbox.root)


PARSES = st.sampled_from(["text", "number", "int", "bool", "json", "regex"])
OUTPUTS = st.one_of(
    st.text(max_size=200),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["a", "b", "0"]), inner, max_size=3)
        ),
        max_leaves=10,
    ).map(lambda v: __import__("json").dumps(v)),
    st.just("[" * 5000),
)


@settings(max_examples=800)
@given(OUTPUTS, PARSES, st.lists(st.sampled_from(["a", "b", 0, 1]), max_size=3))
def test_parse_output_gives_a_storable_value_or_parse_error(output, parse, key):
    regex = re.compile(r"(\d+)") if parse == "regex" else None
    try:
        value = parse_output(output, parse, tuple(key), regex)
    except ParseError:
        return
    assert value is None or isinstance(value, (bool, int, float, str))
    if isinstance(value, float):
        assert math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        assert -(2**63) <= value < 2**63
