"""The event line, numbers and GUIDs, against the notes' and the spec's examples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ioplex_vscp_link.event import Event, parse_line
from ioplex_vscp_link.guid import NULL_GUID, format_guid, interface_guid, parse_guid
from ioplex_vscp_link.number import read_value

GUID = "FF:FF:FF:FF:FF:FF:FF:FE:00:11:22:33:00:03:00:00"
LEGACY = f"96,10,6,3,2026-01-10T12:00:01Z,123456,{GUID},0x88,0x81,0x00,0xEB"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("08", 8),
        ("010", 10),
        ("0x1F", 31),
        ("0X1f", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("", 0),
        ("  42 ", 42),
        ("-1", -1),
        ("0x0F", 15),
    ],
)
def test_numbers_read_as_vscpd_reads_them(text: str, value: int) -> None:
    assert read_value(text) == value


@pytest.mark.parametrize("text", ["0F", "12abc", "0x", "0xZZ", "1_000", "²"])
def test_a_field_that_is_not_a_number_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="head .* is not a number"):
        read_value(text, "head")


def test_guid_text_forms() -> None:
    want = bytes([0xFF] * 7 + [0xFE, 0, 0x11, 0x22, 0x33, 0, 3, 0, 0])
    assert parse_guid(GUID) == want
    assert parse_guid(GUID.lower()) == want
    assert parse_guid("{" + GUID + "}") == want
    assert parse_guid("FFFFFFFF-FFFF-FFFE-0011-223300030000") == want
    assert parse_guid("0:1:2:3:4:5:6:7:8:9:a:b:c:d:e:f") == bytes(range(16))
    assert parse_guid("-") == NULL_GUID
    assert parse_guid("") == NULL_GUID
    assert format_guid(want) == GUID
    assert format_guid(bytes(range(16))) == "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("FF:FF", "has 2 bytes"),
        ("GG:" + GUID[3:], "'GG' is not a hex byte"),
        ("::1", "has 3 bytes"),
        ("100:" + GUID[3:], "'100' is not a hex byte"),
    ],
)
def test_bad_guids_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_guid(text)


def test_interface_guid_carries_the_channel_in_bytes_12_and_13() -> None:
    base = bytes(range(16))
    assert interface_guid(base, 0x0102)[12:] == b"\x01\x02\x00\x00"
    assert interface_guid(base, 7)[:12] == base[:12]


def test_legacy_line_reads_and_writes_back_byte_for_byte() -> None:
    event = parse_line(LEGACY)
    assert event.head == 96 and event.priority == 3
    assert (event.vscp_class, event.vscp_type, event.obid) == (10, 6, 3)
    assert event.datetime == datetime(2026, 1, 10, 12, 0, 1, tzinfo=UTC)
    assert event.timestamp == 123456
    assert format_guid(event.guid) == GUID
    assert event.data == bytes([0x88, 0x81, 0x00, 0xEB])
    assert event.line() == LEGACY


def test_the_2026_dialect_reads_as_the_same_event_and_is_written_legacy() -> None:
    ns = 1768046401 * 10**9 + 123456000
    new = parse_line(f"352,10,6,3,,{ns},{GUID},0x88,0x81,0x00,0xEB")
    assert new.head == 96  # the frame-version bit is the dialect's, not the event's
    assert new.datetime == datetime(2026, 1, 10, 12, 0, 1, tzinfo=UTC)
    assert new.timestamp == (ns // 1000) & 0xFFFFFFFF
    assert (
        new.line() == f"96,10,6,3,2026-01-10T12:00:01Z,{new.timestamp},{GUID},0x88,0x81,0x00,0xEB"
    )


def test_firmware_decimal_data_and_node_iso_datetimes_read() -> None:
    fw = parse_line(f"96,10,6,3,,0,{GUID},136,129,0,235")
    assert fw.data == bytes([0x88, 0x81, 0x00, 0xEB]) and fw.datetime is None
    node = parse_line(f"0,10,6,0,2026-01-10T12:00:01.000Z,0,{GUID},0x88")
    assert node.datetime == datetime(2026, 1, 10, 12, 0, 1, tzinfo=UTC)


def test_the_specs_send_examples() -> None:
    full = parse_line("0,20,3,,,,00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F,0,1,35")
    assert (full.vscp_class, full.vscp_type, full.obid, full.timestamp) == (20, 3, 0, 0)
    assert full.guid == bytes(range(16)) and full.data == bytes([0, 1, 35])
    short = parse_line("0,20,3,,,,-,0,1,35")
    assert short.guid == NULL_GUID and short.datetime is None
    dated = parse_line("0,20,3,,2001-11-02T18:00:01,,-,0,1,35")
    assert dated.datetime == datetime(2001, 11, 2, 18, 0, 1, tzinfo=UTC)
    assert parse_line("0,10,6,0,,,-").data == b""  # no data: GUID is the last field


def test_data_is_0_to_512_bytes() -> None:
    line = "0,1024,1,0,,0,-," + ",".join(["0x01"] * 512)
    assert len(parse_line(line).data) == 512
    with pytest.raises(ValueError, match="at most 512 data bytes, got 513"):
        parse_line(line + ",0x01")
    with pytest.raises(ValueError, match="at most 512 data bytes"):
        Event(1024, 1, bytes(513))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("0,10,6", "at least 7 comma-separated fields"),
        ("0,10,6,0,,0,-,0x100", r"data byte 0 '0x100' is out of range 0..255"),
        ("0,10,6,0,,0,-,1,xyz", r"data byte 1 'xyz' is not a number"),
        ("0,70000,6,0,,0,-", r"class '70000' is out of range"),
        ("0,10,6,0,yesterday,0,-", r"datetime 'yesterday'"),
        ("0,10,6,0,,0,12:34", r"GUID '12:34' has 2 bytes"),
    ],
)
def test_bad_lines_name_the_field(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_line(line)


def test_events_compare_by_value_and_cache_their_line() -> None:
    a, b = parse_line(LEGACY), parse_line(LEGACY)
    assert a == b and a.line() is a.line()
    assert Event(10, 6, [1, 2]).data == b"\x01\x02"
