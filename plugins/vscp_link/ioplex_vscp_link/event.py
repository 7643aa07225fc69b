"""The VSCP event and its text line, the form the tcp/ip link protocol carries.

The line is ``head,class,type,obid,datetime,timestamp,GUID[,data0,...]``. Two dialects are
in use (notes/vscp-link.md §3): the *legacy* one, with a UTC ``YYYY-MM-DDTHH:MM:SSZ`` datetime
and a relative 32-bit microsecond timestamp, and the 2026 one, with an empty datetime and
nanoseconds since the epoch (head bit ``0x100``). Both are read; the legacy one is written,
data bytes as ``0x%02X``, because every vscpd, link driver and client in the field reads it.

There is no maintained Python library for VSCP (pyvscp has no link-protocol code and writes a
different line), so this is written here, from the spec and vscpd's sources.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from .guid import NULL_GUID, format_guid, parse_guid
from .number import BYTE_TOKENS, read_bounded

MAX_DATA = 512
"""Most data bytes a Level II event carries (``VSCP_LEVEL2_MAXDATA``)."""
LEVEL1_MAX_DATA = 8
HEAD_FRAME_VERSION = 0x0300
"""Head bits 8-9: 0 = legacy datetime + µs timestamp, 1 = nanoseconds since the epoch."""
HEAD_FRAME_UNIX_NS = 0x0100

_HEX = tuple(f"0x{b:02X}" for b in range(256))
_MAX32 = 0xFFFF_FFFF


@dataclass(slots=True, eq=True)
class Event:
    """One VSCP event. Treat it as immutable: one object is shared by every receiver on the
    host's VSCP bus (and its wire line is cached on first use); make changed copies with
    `dataclasses.replace`."""

    vscp_class: int
    vscp_type: int
    data: bytes = b""
    guid: bytes = NULL_GUID
    head: int = 0
    obid: int = 0
    timestamp: int = 0
    """Microseconds, relative and wrapping at 32 bits (the legacy timestamp)."""
    datetime: datetime | None = None
    """When the event happened, UTC, whole seconds; None if not known."""
    _line: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.data.__class__ is not bytes:
            self.data = bytes(self.data)
        if len(self.data) > MAX_DATA:
            raise ValueError(
                f"an event carries at most {MAX_DATA} data bytes, got {len(self.data)}"
            )
        if len(self.guid) != 16:
            raise ValueError(f"a GUID has 16 bytes, got {len(self.guid)}")

    @property
    def priority(self) -> int:
        """0 (highest) to 7 (lowest): head bits 5-7."""
        return (self.head >> 5) & 7

    def line(self) -> str:
        """The event as a legacy-dialect line, without line ending (computed once)."""
        text = self._line
        if text is None:
            text = self._line = format_line(self)
        return text

    def __str__(self) -> str:
        return self.line()


# --- writing -----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def format_datetime(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC, as vscpd writes it (always four year digits:
    ``strftime`` writes year 1 as ``1``, which no reader takes back)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"
    )


def format_line(event: Event) -> str:
    when = format_datetime(event.datetime) if event.datetime is not None else ""
    head = (
        f"{event.head & ~HEAD_FRAME_VERSION},{event.vscp_class},{event.vscp_type},{event.obid},"
        f"{when},{event.timestamp},{format_guid(event.guid)}"
    )
    if not event.data:
        return head
    return head + "," + ",".join([_HEX[b] for b in event.data])


# --- reading -----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def parse_datetime(text: str) -> datetime:
    """A line's datetime field: ISO 8601, ``Z`` or an offset or nothing (UTC), to the second.

    Raises ValueError only: also for a time whose UTC equivalent falls outside years 1-9999
    (``0001-01-01T00:00:00+01:00``), which Python reports as OverflowError.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"datetime {text.strip()!r} is not YYYY-MM-DDTHH:MM:SS") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    else:
        try:
            when = when.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"datetime {text.strip()!r} is outside years 1-9999 in UTC") from None
    return when.replace(microsecond=0)


@lru_cache(maxsize=2)
def _utc_second(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


def utc_now() -> datetime:
    """Now, UTC, to the whole second (one object per second: it is on every event)."""
    return _utc_second(int(time.time()))


def make_timestamp() -> int:
    """A legacy timestamp for an event made here: microseconds, wrapping at 32 bits."""
    return int(time.monotonic() * 1_000_000) & _MAX32


def _field(text: str, what: str, maximum: int) -> int:
    if text.isdigit() and text.isascii():
        value = int(text)
        if value <= maximum:
            return value
    return read_bounded(text, what, maximum)


def parse_line(text: str) -> Event:
    """Read an event line in either dialect; raise ValueError naming the field at fault.

    Empty obid and timestamp fields read as 0, an empty datetime as None and an empty or
    ``-`` GUID as the null GUID: whoever takes the event in fills those in (`complete`).
    """
    fields = text.split(",")
    if len(fields) < 7:
        raise ValueError(
            f"an event line needs at least 7 comma-separated fields "
            f"(head,class,type,obid,datetime,timestamp,GUID), got {len(fields)}"
        )
    if len(fields) - 7 > MAX_DATA:
        raise ValueError(f"an event carries at most {MAX_DATA} data bytes, got {len(fields) - 7}")
    head = _field(fields[0], "head", 0xFFFF)
    vscp_class = _field(fields[1], "class", 0xFFFF)
    vscp_type = _field(fields[2], "type", 0xFFFF)
    obid = _field(fields[3], "obid", _MAX32)
    when_text = fields[4].strip()
    stamp = _field(fields[5], "timestamp", 0xFFFF_FFFF_FFFF_FFFF)
    guid = parse_guid(fields[6])
    when: datetime | None = None
    if when_text:
        when = parse_datetime(when_text)
    elif stamp and (head & HEAD_FRAME_VERSION == HEAD_FRAME_UNIX_NS or stamp > _MAX32):
        # The 2026 dialect: nanoseconds since the epoch (0 meaning now).
        when = _utc_second(stamp // 1_000_000_000)
        stamp = (stamp // 1000) & _MAX32
    if stamp > _MAX32:
        raise ValueError(f"timestamp {fields[5].strip()!r} is out of range 0..{_MAX32}")
    raw = fields[7:]
    if raw:
        try:
            data = bytes([BYTE_TOKENS[t] for t in raw])
        except KeyError:
            data = bytes([read_bounded(t, f"data byte {i}", 0xFF) for i, t in enumerate(raw)])
    else:
        data = b""
    event = Event(vscp_class, vscp_type, data, guid, head & ~HEAD_FRAME_VERSION, obid, stamp, when)
    return event
