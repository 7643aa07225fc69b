"""The payloads and topics read from a shared broker: documented shapes in, PayloadError
(or None, for topics) for everything else, whatever bytes arrive."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex import Quality
from ioplex_mqtt.payload import (
    PayloadError,
    decode_result,
    decode_set,
    decode_state,
    encode_result,
    encode_set,
    encode_state,
)
from ioplex_mqtt.topics import LIVE, RESULT, SET, STATE, Topics, parse_rules, publishable

LIMIT = 4096
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
)


@given(scalars, st.sampled_from(list(Quality)), st.integers(0, 2**40), st.integers(0, 1000))
def test_state_round_trip(value, quality, ms, hops) -> None:
    data = encode_state(value, quality, ms / 1000, "site-a", hops, type(value))
    state = decode_state(data, LIMIT)
    assert state.value == value and type(state.value) is type(value)
    assert (state.quality, state.src, state.hops) == (quality, "site-a", hops)
    assert state.ts == ms / 1000


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_floats_travel_as_strings(value: float) -> None:
    data = encode_state(value, Quality.GOOD, 1.0, "a", 0, float, nonfinite=True)
    assert b"NaN" in data or b"Infinity" in data
    decoded = decode_state(data, LIMIT).value
    assert decoded == value or (math.isnan(value) and math.isnan(decoded))
    # the same text on a point that is not nonfinite is just a string
    assert decode_state(data.replace(b',"nf":1', b""), LIMIT).value in (
        "NaN",
        "Infinity",
        "-Infinity",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b'{"v":1}',
        b'{"v":1,"q":"fine","ts":0,"src":"a","hops":0}',
        b'{"v":[1],"q":"good","ts":0,"src":"a","hops":0}',
        b'{"v":{"a":1},"q":"good","ts":0,"src":"a","hops":0}',
        b'{"v":1,"q":"good","ts":-1,"src":"a","hops":0}',
        b'{"v":1,"q":"good","ts":0,"src":"","hops":0}',
        b'{"v":1,"q":"good","ts":0,"src":"a","hops":1001}',
        b'{"v":1,"q":"good","ts":0,"src":"a","hops":true}',
        b'{"v":NaN,"q":"good","ts":0,"src":"a","hops":0}',
        b'{"v":99999999999999999999,"q":"good","ts":0,"src":"a","hops":0}',
        b'{"v":"\\ud800","q":"good","ts":0,"src":"a","hops":0}',
        b'{"v":1,"q":"good","ts":0,"src":"\\udfff","hops":0}',
        b'{"v":1,"q":"good","ts":0,"src":"a","hops":0,"t":"complex"}',
        b"\xff\xfe",
        b'{"v":' + b"[" * 100 + b"]" * 100 + b"}",
        b'{"v":"' + b"x" * LIMIT + b'"}',
    ],
)
def test_malformed_states_are_refused(data: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_state(data, LIMIT)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_any_bytes(data: bytes) -> None:
    for decode in (decode_state, decode_set, decode_result):
        try:
            decode(data, LIMIT)
        except PayloadError:
            pass


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["v", "q", "ts", "src", "hops", "t", "nf", "s", "id", "from", "ok", "error"]
        ),
        json_values,
        max_size=8,
    )
)
@settings(max_examples=500)
def test_any_json_object(body: dict) -> None:
    import json

    data = json.dumps(body).encode()
    for decode in (decode_state, decode_set, decode_result):
        try:
            decode(data, LIMIT)
        except PayloadError:
            pass


def test_set_and_result_round_trip() -> None:
    request = decode_set(encode_set(3, "abc", "site-b", 12.5), LIMIT)
    assert (request.value, request.id, request.sender, request.ts) == (3, "abc", "site-b", 12.5)
    assert decode_result(encode_result("abc", None), LIMIT).error is None
    assert decode_result(encode_result("abc", "no"), LIMIT).error == "no"
    assert len(decode_result(encode_result("abc", "x" * 5000), LIMIT).error) == 500
    with pytest.raises(PayloadError):
        decode_set(b'{"v":1,"id":"' + b"i" * 65 + b'","from":"b","ts":0}', LIMIT)


def test_topics() -> None:
    topics = Topics("ioplex")
    assert topics.state("site-a", "dummy.light.1") == "ioplex/site-a/dummy/light/1"
    assert topics.set("site-a", "dummy.x") == "ioplex/site-a/$set/dummy/x"
    assert topics.parse("ioplex/site-a/dummy/light/1") == (STATE, "site-a", "dummy.light.1")
    assert topics.parse("ioplex/site-a/$state") == (LIVE, "site-a", "")
    assert topics.parse("ioplex/site-a/$set/dummy/x") == (SET, "site-a", "dummy.x")
    assert topics.parse("ioplex/site-a/$result/dummy/x") == (RESULT, "site-a", "dummy.x")
    # a point whose last segment is "set" is a point, not a request
    assert topics.parse("ioplex/site-a/hvac/set") == (STATE, "site-a", "hvac.set")
    for other in (
        "other/site-a/x",
        "ioplex/site-a",
        "ioplex//x",
        "ioplex/a/$set",
        "ioplex/a/b//c",
        "ioplex/a/$state/x",
        "ioplex/a/$other/x",
        "ioplex/a.b/x",
        "ioplex/a/b.c",
    ):
        assert topics.parse(other) is None, other
    assert publishable("dummy.light.1")
    assert not publishable("dummy.a/b") and not publishable("dummy.$x")
    assert not publishable("dummy.a+") and not publishable("dummy.#")


@given(st.text(max_size=80))
def test_any_topic(topic: str) -> None:
    parsed = Topics("ioplex").parse(topic)
    if parsed is not None:
        _kind, host, name = parsed
        assert publishable(name) and "/" not in host


def test_subscribe_rules() -> None:
    rules = parse_rules(["site-b/*", "site-*/dummy.*"], "x")
    assert [(r.host, r.points, r.host_is_glob) for r in rules] == [
        ("site-b", "*", False),
        ("site-*", "dummy.*", True),
    ]
    for bad in ("site-b", "/x", "a/", "a/b/c", "+/x", "#/x", "$SYS/x", "a/b c"):
        with pytest.raises(ValueError, match=r"x\[0\]"):
            parse_rules([bad], "x")
