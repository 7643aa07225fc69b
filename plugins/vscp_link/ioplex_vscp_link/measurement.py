"""Measurements carried by VSCP events, decoded into a number, a unit and a sensor index.

The classes vscpd's helper decodes (spec: class1.*.md, vscp_measurements.md):

- CLASS1.MEASUREMENT (10): data[0] is the coding byte ``ccc uu iii`` (coding, unit 0-3,
  sensor index 0-7), followed by the value in that coding.
- CLASS1.DATA (15): the same layout; the types are data kinds (A/D value, signal level...),
  not measurement types. Points are named ``data.<kind>``.
- CLASS1.MEASUREMENT64 (60): an 8-byte big-endian double in the type's standard unit (0).
- CLASS1.MEASUREZONE (65): ``index,zone,subzone`` then a coding byte and its value; the
  index (byte 0) names the sensor.
- CLASS1.MEASUREMENT32 (70): a 4-byte big-endian float in the standard unit.
- CLASS1.SETVALUEZONE (85): the layout of 65, a value to set rather than a measurement.
  Points are named ``setvalue.<quantity>``.
- Their Level II twins (class + 512: 522, 527, 572, 577, 582, 597): the same Level I event
  over Level II, with 16 bytes of interface GUID in front of it.
- CLASS2.MEASUREMENT_STR (1040): ``index,zone,subzone,unit`` then the value as ASCII text.
- CLASS2.MEASUREMENT_FLOAT (1060): ``index,zone,subzone,unit`` then an 8-byte big-endian double.

Codings (spec, vscp_measurements.md): bits 0x00, byte 0x20, string 0x40, integer 0x60,
normalized integer 0x80, float32 0xA0, double 0xC0. A normalized value is a signed
big-endian mantissa of 1-6 bytes after an exponent byte: bit 7 set divides by 10^(bits 0-6),
clear multiplies.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace

from .event import Event
from .quantities import data_kind_name, data_unit_symbol, quantity_name, unit_symbol

CLASS1_MEASUREMENT = 10
CLASS1_DATA = 15
CLASS1_MEASUREMENT64 = 60
CLASS1_MEASUREZONE = 65
CLASS1_MEASUREMENT32 = 70
CLASS1_SETVALUEZONE = 85
LEVEL1_OVER_LEVEL2 = 512
"""A Level I class + 512 is the same event over Level II, behind 16 bytes of GUID."""
CLASS2_LEVEL1_MEASUREMENT = CLASS1_MEASUREMENT + LEVEL1_OVER_LEVEL2
CLASS2_MEASUREMENT_STR = 1040
CLASS2_MEASUREMENT_FLOAT = 1060
LEVEL1_CLASSES = frozenset(
    {
        CLASS1_MEASUREMENT,
        CLASS1_DATA,
        CLASS1_MEASUREMENT64,
        CLASS1_MEASUREZONE,
        CLASS1_MEASUREMENT32,
        CLASS1_SETVALUEZONE,
    }
)
MEASUREMENT_CLASSES = frozenset(
    {
        *LEVEL1_CLASSES,
        *(c + LEVEL1_OVER_LEVEL2 for c in LEVEL1_CLASSES),
        CLASS2_MEASUREMENT_STR,
        CLASS2_MEASUREMENT_FLOAT,
    }
)

CODINGS = {
    0: "bits",
    1: "byte",
    2: "string",
    3: "integer",
    4: "normalized",
    5: "float",
    6: "double",
}


@dataclass(frozen=True, slots=True)
class Measurement:
    """One decoded measurement. `value` is in the unit the sender chose (`unit`)."""

    vscp_type: int
    value: float
    unit: int
    sensor: int
    coding: str
    zone: int | None = None
    subzone: int | None = None
    kind: str = "measurement"
    """``measurement``, ``data`` (CLASS1.DATA) or ``setvalue`` (CLASS1.SETVALUEZONE)."""

    @property
    def quantity(self) -> str:
        """What is measured, as used in point names: ``temperature``, ``humidity``...;
        ``data.ad_value`` for CLASS1.DATA, ``setvalue.temperature`` for a value to set."""
        if self.kind == "data":
            return f"data.{data_kind_name(self.vscp_type)}"
        name = quantity_name(self.vscp_type)
        return f"setvalue.{name}" if self.kind == "setvalue" else name

    @property
    def symbol(self) -> str | None:
        """The unit's symbol (``°C``), None when the spec's table does not know the code."""
        if self.kind == "data":
            return data_unit_symbol(self.vscp_type, self.unit)
        return unit_symbol(self.vscp_type, self.unit)


def decode(event: Event) -> Measurement | None:
    """The measurement an event carries; None if its class carries none.

    Raises ValueError, saying why, for a measurement event whose data cannot be decoded.
    """
    cls = event.vscp_class
    data = event.data
    if cls in LEVEL1_CLASSES:
        return _level1_class(cls, event.vscp_type, data)
    if cls - LEVEL1_OVER_LEVEL2 in LEVEL1_CLASSES:
        if len(data) < 17:
            raise ValueError(
                f"class {cls} (Level I class {cls - LEVEL1_OVER_LEVEL2} over Level II) needs "
                f"16 GUID bytes and a value, got {len(data)} bytes"
            )
        return _level1_class(cls - LEVEL1_OVER_LEVEL2, event.vscp_type, data[16:])
    if cls == CLASS2_MEASUREMENT_STR:
        if len(data) < 5:
            raise ValueError(
                "CLASS2.MEASUREMENT_STR needs index,zone,subzone,unit and text, "
                f"got {len(data)} bytes"
            )
        text = data[4:].split(b"\x00", 1)[0].decode("ascii", "replace")
        return Measurement(
            event.vscp_type, _number(text), data[3], data[0], "string", data[1], data[2]
        )
    if cls == CLASS2_MEASUREMENT_FLOAT:
        if len(data) != 12:
            raise ValueError(f"CLASS2.MEASUREMENT_FLOAT needs 12 bytes, got {len(data)}")
        (value,) = struct.unpack(">d", data[4:12])
        return Measurement(
            event.vscp_type, _finite(value), data[3], data[0], "double", data[1], data[2]
        )
    return None


def _level1_class(cls: int, vscp_type: int, data: bytes) -> Measurement:
    if cls == CLASS1_MEASUREMENT:
        return _level1(vscp_type, data)
    if cls == CLASS1_DATA:
        return replace(_level1(vscp_type, data), kind="data")
    if cls == CLASS1_MEASUREMENT64:
        if len(data) != 8:
            raise ValueError(f"CLASS1.MEASUREMENT64 needs an 8-byte double, got {len(data)} bytes")
        (value,) = struct.unpack(">d", data)
        return Measurement(vscp_type, _finite(value), 0, 0, "double")
    if cls == CLASS1_MEASUREMENT32:
        if len(data) != 4:
            raise ValueError(f"CLASS1.MEASUREMENT32 needs a 4-byte float, got {len(data)} bytes")
        (raw,) = struct.unpack(">f", data)
        return Measurement(vscp_type, float(f"{_finite(raw):.7g}"), 0, 0, "float")
    # CLASS1.MEASUREZONE, CLASS1.SETVALUEZONE: index, zone, subzone, then a coded value
    if len(data) < 5:
        raise ValueError(
            f"class {cls} needs index,zone,subzone, a coding byte and a value, "
            f"got {len(data)} bytes"
        )
    inner = _level1(vscp_type, data[3:])
    return replace(
        inner,
        sensor=data[0],
        zone=data[1],
        subzone=data[2],
        kind="setvalue" if cls == CLASS1_SETVALUEZONE else "measurement",
    )


def _level1(vscp_type: int, data: bytes) -> Measurement:
    if len(data) < 2:
        raise ValueError(
            f"a Level I measurement needs a coding byte and a value, got {len(data)} bytes"
        )
    coding_byte = data[0]
    coding = coding_byte >> 5
    unit = (coding_byte >> 3) & 3
    sensor = coding_byte & 7
    body = data[1:]
    if coding in (0, 1):  # bits, byte: the bytes as one unsigned number
        value = _as_float(int.from_bytes(body, "big"))
    elif coding == 2:
        value = _number(body.split(b"\x00", 1)[0].decode("ascii", "replace"))
    elif coding == 3:
        value = _as_float(int.from_bytes(body, "big", signed=True))
    elif coding == 4:
        if len(body) < 2 or len(body) > 7:
            raise ValueError(
                "a normalized value needs an exponent and 1-6 mantissa bytes, "
                f"got {len(body)} bytes"
            )
        exponent = body[0]
        mantissa = int.from_bytes(body[1:], "big", signed=True)
        if exponent & 0x80:
            value = mantissa / 10 ** (exponent & 0x7F)
        else:
            value = float(mantissa * 10 ** (exponent & 0x7F))
    elif coding == 5:
        if len(body) != 4:
            raise ValueError(f"a float32 value needs 4 bytes, got {len(body)}")
        (raw,) = struct.unpack(">f", body)
        # A float32 holds about 7 significant digits: 21.3 arrives as 21.299999237..., which
        # no sender meant.
        value = float(f"{_finite(raw):.7g}")
    elif coding == 6:
        if len(body) != 8:
            raise ValueError(f"a double value needs 8 bytes, got {len(body)}")
        (value,) = struct.unpack(">d", body)
        value = _finite(value)
    else:
        raise ValueError(f"coding byte 0x{coding_byte:02X}: coding {coding} is not defined")
    return Measurement(vscp_type, value, unit, sensor, CODINGS[coding])


def _as_float(number: int) -> float:
    try:
        return float(number)
    except OverflowError:  # hundreds of bytes of integer, from a remote
        raise ValueError(f"a {number.bit_length()}-bit integer does not fit a float") from None


def _number(text: str) -> float:
    try:
        return _finite(float(text.strip()))
    except ValueError:
        raise ValueError(f"measurement text {text!r} is not a number") from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"measurement value {value} is not a finite number")
    return value
