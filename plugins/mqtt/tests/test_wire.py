"""The fast lane's MQTT framing (wire.py) against hostile bytes: a broker, or anything that
answers on its port, decides what we read. Only WireError may escape, and what we encode is
what paho decodes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ioplex_mqtt.wire import (
    PUBLISH,
    WireError,
    decode_publish,
    encode_pubacks,
    encode_publish,
    frame,
    remaining_length,
)
from paho.mqtt import _packet


@given(st.binary(max_size=300), st.integers(0, 10))
def test_hostile_bytes_raise_only_wire_errors(data: bytes, pos: int) -> None:
    try:
        framed = frame(data, pos)
        if framed is not None:
            first, start, end = framed
            assert pos + 2 <= start <= end <= len(data)
            if first & 0xF0 == PUBLISH:
                decode_publish(first, data, start, end)
    except WireError:
        pass


@given(
    st.text(min_size=1, max_size=200).filter(lambda t: "+" not in t and "#" not in t),
    st.binary(max_size=20_000),
    st.sampled_from([0, 1]),
    st.booleans(),
    st.integers(1, 65535),
)
def test_publish_round_trip_and_paho_agrees(
    topic: str, payload: bytes, qos: int, retain: bool, mid: int
) -> None:
    packet = encode_publish(topic.encode(), payload, qos, retain, mid)
    first, start, end = frame(packet + b"\x40", 0)  # type: ignore[misc]
    assert end == len(packet)
    assert decode_publish(first, packet, start, end) == (
        topic.encode(),
        payload,
        qos,
        retain,
        mid if qos else 0,
    )
    theirs = _packet.decode_publish(first, bytearray(packet[start:end]), 4)
    assert (theirs.topic, theirs.payload, theirs.qos, theirs.retain) == (
        topic.encode(),
        payload,
        qos,
        retain,
    )
    assert frame(packet[:-1], 0) is None or not payload  # a partial packet waits for more


def test_lengths_and_acks() -> None:
    assert remaining_length(0) == b"\x00"
    assert remaining_length(127) == b"\x7f"
    assert remaining_length(128) == b"\x80\x01"
    assert remaining_length(268_435_455) == b"\xff\xff\xff\x7f"
    with pytest.raises(WireError):
        remaining_length(268_435_456)
    with pytest.raises(WireError):
        frame(b"\x30\xff\xff\xff\xff\x01", 0)  # five length bytes
    assert encode_pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    with pytest.raises(WireError):
        decode_publish(0x36, b"\x00\x00", 0, 2)  # QoS 3
    with pytest.raises(WireError):
        decode_publish(0x32, b"\x00\x05ab", 0, 4)  # topic past the end


def _reference_parse(prefix: str, topic: str) -> tuple[str, str, str] | None:
    """Topics.parse as first written, level by level with is_level (the one regular
    expression that replaced it must agree)."""
    from ioplex_mqtt.topics import LIVE, RESULT, SET, STATE, is_level

    start = prefix + "/"
    if not topic.startswith(start):
        return None
    levels = topic[len(start) :].split("/")
    if len(levels) < 2 or not is_level(levels[0]):
        return None
    host, first = levels[0], levels[1]
    if first == "$state":
        return (LIVE, host, "") if len(levels) == 2 else None
    kind, rest = STATE, levels[1:]
    if first == "$set":
        kind, rest = SET, levels[2:]
    elif first == "$result":
        kind, rest = RESULT, levels[2:]
    if not rest or not all(is_level(level) for level in rest):
        return None
    return kind, host, ".".join(rest)


@given(
    st.lists(
        st.one_of(
            st.sampled_from(["", "$state", "$set", "$result", "$x", "a", "b.c", "+", "#", "\x00"]),
            st.text(max_size=6),
        ),
        max_size=6,
    )
)
def test_topic_parse_agrees_with_level_by_level(levels: list[str]) -> None:
    from ioplex_mqtt.topics import Topics

    topic = "/".join(["ioplex", *levels])
    topics = Topics("ioplex", cache=4)
    assert topics.parse(topic) == _reference_parse("ioplex", topic)
    assert topics.parse_cached(topic) == topics.parse(topic)
