"""Filter and mask: ((field XOR filter) AND mask) == 0 for priority, class, type, GUID bytes."""

from __future__ import annotations

import pytest
from ioplex_vscp_link.event import Event
from ioplex_vscp_link.filter import Fields, Filter, parse_fields

NODE = bytes([0xFF] * 7 + [0x01] + [0] * 8)


def event(cls: int = 10, typ: int = 6, prio: int = 3, guid: bytes = NODE) -> Event:
    return Event(cls, typ, b"", guid, head=prio << 5)


def test_a_cleared_filter_takes_everything() -> None:
    f = Filter()
    assert f.accepts_all and f.accepts(event(1, 2, 7, bytes(16)))


def test_the_notes_example_filter() -> None:
    f = Filter(
        parse_fields("1,0x0000,0x0006,ff:ff:ff:ff:ff:ff:ff:01:00:00:00:00:00:00:00:00"),
        parse_fields("0x0f,0xffff,0x00ff,ff:ff:ff:ff:ff:ff:ff:01:00:00:00:00:00:00:00:00"),
    )
    # priority must be 1 (mask 0x0f over 3 bits), class 0, type 6 (low byte), GUID bytes 0-7
    assert f.accepts(event(0, 6, 1))
    assert f.accepts(event(0, 0x0106, 1))  # the type's high byte is not masked
    assert not f.accepts(event(0, 6, 2))
    assert not f.accepts(event(10, 6, 1))
    assert not f.accepts(event(0, 7, 1))
    assert not f.accepts(event(0, 6, 1, bytes(16)))


@pytest.mark.parametrize("byte", range(16))
def test_each_guid_byte_is_compared_under_its_mask(byte: int) -> None:
    mask = bytearray(16)
    mask[byte] = 0xF0
    f = Filter(Fields(guid=NODE), Fields(guid=bytes(mask)))
    assert f.accepts(event(guid=NODE))
    other = bytearray(NODE)
    other[byte] ^= 0x0F  # only bits outside the mask differ
    assert f.accepts(event(guid=bytes(other)))
    other[byte] ^= 0x10
    assert not f.accepts(event(guid=bytes(other)))


def test_configuration_strings_may_leave_out_trailing_parts() -> None:
    assert parse_fields("") == Fields()
    assert parse_fields("0,10") == Fields(0, 10, 0)
    assert parse_fields("0,0xffff,0xffff").vscp_type == 0xFFFF
    with pytest.raises(ValueError, match="expected priority,class,type,GUID"):
        parse_fields("0,10", complete=True)
    with pytest.raises(ValueError, match="class '0x1FFFF' is out of range"):
        parse_fields("0,0x1FFFF,0,-")


def test_text_round_trips() -> None:
    f = Fields(3, 10, 6, NODE)
    assert parse_fields(f.text(), complete=True) == f
