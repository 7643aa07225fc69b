"""The server's MEASUREMENT command: a value and its description turned into a measurement
event, as vscpd's ``handleClientMeasurement`` builds it (notes/vscp-link.md §2, §5, §12).

``MEASUREMENT format,level,type,value[,unit,guid,sensoridx,zone,subzone,destguid]``

- format: ``float`` or ``0``, ``string`` or ``1``;
- level: ``0`` or ``level1`` → Level I, ``1``, ``2`` or ``level2`` → Level II (vscpd's code
  reads ``1`` as Level II, its comment says ``2``: both are taken);
- the event built:

  ======= ======== ============================================================
  level   format   event
  ======= ======== ============================================================
  I       float    CLASS1.MEASUREMENT (10): ``0xA0|unit<<3|sensor``, float32 BE
  I       string   CLASS1.MEASUREMENT (10): ``0x40|unit<<3|sensor``, up to 7 ASCII
  I + dst either   CLASS2.LEVEL1.MEASUREMENT (522): destguid, then the above
  II      float    CLASS2.MEASUREMENT_FLOAT (1060): sensor, zone, subzone, unit, double BE
  II      string   CLASS2.MEASUREMENT_STR (1040): sensor, zone, subzone, unit, ``%f``
  ======= ======== ============================================================

Where vscpd quietly wraps or zeroes a value out of range (a Level I unit over 3, a sensor
index over 7, a non-number), this raises ValueError naming the field: the client gets the
parameter error instead of an event it did not ask for. Non-finite values are refused.
"""

from __future__ import annotations

import math
import re
import struct

from .event import LEVEL1_MAX_DATA, MAX_DATA, Event
from .guid import NULL_GUID, parse_guid
from .number import read_bounded

CLASS1_MEASUREMENT = 10
CLASS2_LEVEL1_MEASUREMENT = 522
CLASS2_MEASUREMENT_STR = 1040
CLASS2_MEASUREMENT_FLOAT = 1060
PRIORITY_NORMAL = 0x60
"""vscpd's head for the Level I events it builds (``VSCP_PRIORITY_NORMAL``); its Level II
ones get head 0."""

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)


def _format(text: str) -> str:
    s = text.strip().upper()
    if s in ("FLOAT", "0"):
        return "float"
    if s in ("STRING", "1"):
        return "string"
    raise ValueError(f"format {text.strip()!r} is not float, string, 0 or 1")


def _level(text: str) -> int:
    s = text.strip().upper()
    if s in ("0", "LEVEL1"):
        return 1
    if s in ("1", "2", "LEVEL2"):
        return 2
    raise ValueError(f"level {text.strip()!r} is not 0/level1 or 1/level2")


def _value(text: str) -> float:
    s = text.strip()
    if len(s) > 400 or not _NUMBER.match(s):
        raise ValueError(f"value {s[:40]!r} is not a decimal number")
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(f"value {s[:40]!r} is out of range")
    return value


def _short_text(value: float, room: int) -> bytes:
    """The value as at most `room` ASCII characters, as precise as they allow."""
    for digits in range(room, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= room:
            return text.encode("ascii")
    raise ValueError(f"value {value!r} does not fit in {room} characters")


def build(arg: str, own_guid: bytes) -> Event:
    """The event of a MEASUREMENT argument; ValueError saying which field is wrong.

    `own_guid` (the sending client's interface GUID) stands in for an empty, ``-`` or null
    GUID; obid, datetime and timestamp are left for the server to fill in, as for SEND.
    """
    fields = arg.split(",")
    if len(fields) < 4:
        raise ValueError(
            "MEASUREMENT needs format,level,type,value[,unit,guid,sensoridx,zone,subzone,destguid]"
        )
    if len(fields) > 10:
        raise ValueError(f"MEASUREMENT takes at most 10 fields, got {len(fields)}")
    fields += [""] * (10 - len(fields))
    kind = _format(fields[0])
    level = _level(fields[1])
    value = _value(fields[3])
    guid = parse_guid(fields[5])
    if guid == NULL_GUID:
        guid = own_guid
    destination = parse_guid(fields[9])
    if level == 1:
        vscp_type = read_bounded(fields[2], "type", 0xFFFF)
        if vscp_type >= 512:  # vscpd: a Level II type number of a Level I type
            vscp_type -= 512
        if vscp_type > 0xFF:
            raise ValueError(f"type {fields[2].strip()!r} is not a Level I type (0..255)")
        unit = read_bounded(fields[4], "unit", 3)
        sensor = read_bounded(fields[6], "sensoridx", 7)
        if kind == "float":
            try:
                number = struct.pack(">f", value)
            except OverflowError:
                raise ValueError(f"value {value!r} does not fit a 32-bit float") from None
            data = bytes([0xA0 | unit << 3 | sensor]) + number
        else:
            data = bytes([0x40 | unit << 3 | sensor]) + _short_text(value, LEVEL1_MAX_DATA - 1)
        if destination != NULL_GUID:
            return Event(
                CLASS2_LEVEL1_MEASUREMENT, vscp_type, destination + data, guid, PRIORITY_NORMAL
            )
        return Event(CLASS1_MEASUREMENT, vscp_type, data, guid, PRIORITY_NORMAL)
    vscp_type = read_bounded(fields[2], "type", 0xFFFF)
    unit = read_bounded(fields[4], "unit", 0xFF)
    sensor = read_bounded(fields[6], "sensoridx", 0xFF)
    zone = read_bounded(fields[7], "zone", 0xFF)
    subzone = read_bounded(fields[8], "subzone", 0xFF)
    head = bytes([sensor, zone, subzone, unit])
    if kind == "float":
        return Event(CLASS2_MEASUREMENT_FLOAT, vscp_type, head + struct.pack(">d", value), guid)
    text = f"{value:f}".encode("ascii")
    if len(head) + len(text) > MAX_DATA:  # cannot happen for finite doubles; stated anyway
        raise ValueError(f"value {value!r} is too long as text")
    return Event(CLASS2_MEASUREMENT_STR, vscp_type, head + text, guid)
