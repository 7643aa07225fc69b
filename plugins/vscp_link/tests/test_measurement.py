"""Decoding measurements: the notes' and the spec's examples, every coding, every class."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex_vscp_link.event import Event
from ioplex_vscp_link.measurement import MEASUREMENT_CLASSES, decode


def m(cls: int, typ: int, *data: int) -> Event:
    return Event(cls, typ, bytes(data))


@pytest.mark.parametrize(
    ("data", "value", "unit", "sensor", "coding"),
    [
        ((0x88, 0x81, 0x00, 0xEB), 23.5, 1, 0, "normalized"),  # 23.5 °C
        ((0xA8, 0x41, 0xBC, 0x00, 0x00), 23.5, 1, 0, "float"),
        ((0x48, 0x32, 0x33, 0x2E, 0x35), 23.5, 1, 0, "string"),
        ((0x88, 0x82, 0xFD, 0xF3), -5.25, 1, 0, "normalized"),
        ((0x80, 0x02, 0x1B, 0x22), 694600.0, 0, 0, "normalized"),
        ((0x80, 0x85, 0x8D), -0.00115, 0, 0, "normalized"),
        ((0x80, 0x81, 0x01, 0x07), 26.3, 0, 0, "normalized"),
        ((0x6B, 0xFF, 0x38), -200.0, 1, 3, "integer"),
        ((0x22, 0x80), 128.0, 0, 2, "byte"),
        ((0x07, 0x01, 0x00), 256.0, 0, 7, "bits"),
        ((0xA8, *struct.pack(">f", 21.3)), 21.3, 1, 0, "float"),
        ((0xD0, *struct.pack(">d", 1013.25)), 1013.25, 2, 0, "double"),
    ],
)
def test_class1_codings(
    data: tuple[int, ...], value: float, unit: int, sensor: int, coding: str
) -> None:
    got = decode(m(10, 6, *data))
    assert got is not None
    assert got.value == pytest.approx(value, rel=1e-12)
    assert (got.unit, got.sensor, got.coding) == (unit, sensor, coding)


def test_units_and_names_come_from_the_spec_table() -> None:
    got = decode(m(10, 6, 0x88, 0x81, 0x00, 0xEB))
    assert got is not None and (got.quantity, got.symbol) == ("temperature", "°C")
    hum = decode(m(10, 35, 0x80, 0x81, 0x01, 0x07))
    assert hum is not None and (hum.quantity, hum.symbol, hum.value) == ("humidity", "%", 26.3)
    odd = decode(m(10, 300, 0x78, 0x01))
    assert odd is not None and (odd.quantity, odd.symbol) == ("type300", None)


def test_level1_over_level2_skips_the_16_guid_bytes() -> None:
    got = decode(m(522, 6, *range(16), 0x88, 0x81, 0x00, 0xEB))
    assert got is not None and got.value == 23.5 and got.unit == 1


def test_level2_string_and_float_classes() -> None:
    text = decode(m(1040, 6, 2, 5, 7, 1, *b"23.5"))
    assert text is not None
    assert (text.value, text.sensor, text.zone, text.subzone, text.unit) == (23.5, 2, 5, 7, 1)
    double = decode(m(1060, 6, 1, 0, 0, 1, 0x40, 0x37, 0x80, 0, 0, 0, 0, 0))
    assert double is not None and double.value == 23.5 and double.sensor == 1


def test_other_classes_carry_no_measurement() -> None:
    assert decode(m(20, 3, 0, 1, 35)) is None


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (m(10, 6, 0x88), "needs a coding byte and a value"),
        (m(10, 6, 0x88, 0x81), "exponent and 1-6 mantissa bytes"),
        (m(10, 6, 0xE8, 1), "coding 7 is not defined"),
        (m(10, 6, 0x48, *b"abc"), "'abc' is not a number"),
        (m(1060, 6, 1, 0, 0), "needs 12 bytes"),
        (m(522, 6, *range(16)), "16 GUID bytes and a value"),
        (m(10, 6, 0xA8, 0x7F, 0x80, 0, 0), "not a finite number"),
    ],
)
def test_undecodable_measurements_say_why(event: Event, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode(event)


@pytest.mark.parametrize("over_level2", [False, True], ids=["level1", "level2-twin"])
@pytest.mark.parametrize(
    ("cls", "typ", "data", "expected"),
    [
        # CLASS1.DATA: a coding byte like class 10; types are data kinds
        (15, 2, (0x60, 0x03, 0xE8), ("data.ad_value", 1000.0, 0, 0, None, None, None)),
        (15, 4, (0x29, 0xF6), ("data.relative_strength", 246.0, 1, 1, None, None, "dB")),
        # CLASS1.MEASUREMENT64: a bare double in the standard unit
        (60, 6, tuple(struct.pack(">d", 296.65)), ("temperature", 296.65, 0, 0, None, None, "K")),
        # CLASS1.MEASUREZONE: index, zone, subzone, then a coded value
        (
            65,
            6,
            (3, 5, 7, 0x88, 0x81, 0x00, 0xEB),
            ("temperature", 23.5, 1, 3, 5, 7, "°C"),
        ),
        # CLASS1.MEASUREMENT32: a bare float32 in the standard unit
        (70, 35, tuple(struct.pack(">f", 45.2)), ("humidity", 45.2, 0, 0, None, None, "%")),
        # CLASS1.SETVALUEZONE: the layout of 65, a value to set
        (
            85,
            6,
            (1, 2, 3, 0x88, 0x81, 0x00, 0xD2),
            ("setvalue.temperature", 21.0, 1, 1, 2, 3, "°C"),
        ),
    ],
)
def test_more_measurement_classes(
    cls: int, typ: int, data: tuple[int, ...], expected: tuple[object, ...], over_level2: bool
) -> None:
    if over_level2:
        cls, data = cls + 512, (*range(16), *data)
    got = decode(m(cls, typ, *data))
    assert got is not None
    quantity, value, unit, sensor, zone, subzone, symbol = expected
    assert got.quantity == quantity and got.value == pytest.approx(value, rel=1e-12)
    assert (got.unit, got.sensor, got.zone, got.subzone, got.symbol) == (
        unit,
        sensor,
        zone,
        subzone,
        symbol,
    )


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (m(60, 6, 1, 2, 3), "MEASUREMENT64 needs an 8-byte double"),
        (m(70, 6, 1, 2, 3, 4, 5), "MEASUREMENT32 needs a 4-byte float"),
        (m(65, 6, 1, 2, 3, 0x88), "index,zone,subzone, a coding byte and a value"),
        (m(597, 6, *range(10)), "Level I class 85 over Level II"),
        (m(60, 6, *struct.pack(">d", float("inf"))), "not a finite number"),
        (m(10, 6, 0x00, *b"\xff" * 200), "-bit integer does not fit a float"),
        (m(15, 6, 0x60, *b"\x7f" * 200), "-bit integer does not fit a float"),
    ],
)
def test_more_classes_undecodable_say_why(event: Event, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode(event)


@settings(max_examples=400, deadline=None)
@given(
    cls=st.sampled_from(sorted(MEASUREMENT_CLASSES)),
    typ=st.integers(0, 0xFFFF),
    data=st.binary(max_size=40)
    | st.binary(min_size=16, max_size=512)
    | st.tuples(
        st.sampled_from([0x00, 0x20, 0x60, 0x7F]), st.binary(min_size=100, max_size=511)
    ).map(lambda t: bytes([t[0]]) + t[1]),
)
def test_decode_takes_any_bytes(cls: int, typ: int, data: bytes) -> None:
    """Whatever a remote sends in a measurement class: a finite number or ValueError."""
    if 512 <= cls < 1024 and len(data) > 16:
        data = bytes(16) + data  # reach the Level I payload behind the GUID too
    try:
        got = decode(Event(cls, typ, data[:512]))
    except ValueError:
        return
    assert got is not None and math.isfinite(got.value)
    assert isinstance(got.quantity, str) and (got.symbol is None or isinstance(got.symbol, str))
