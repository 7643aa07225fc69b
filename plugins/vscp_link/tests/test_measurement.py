"""Decoding measurements: the notes' and the spec's examples, every coding, every class."""

from __future__ import annotations

import struct

import pytest
from ioplex_vscp_link.event import Event
from ioplex_vscp_link.measurement import decode


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
