"""VSCP events seen on the host's event bus, duck-typed: this plugin never imports another.

An event is anything with ``vscp_class``, ``vscp_type``, ``guid`` (16 bytes) and ``data``
(bytes), and optionally ``head``, ``obid``, ``timestamp`` and ``line()`` (vscp_link's
``Event`` has them all). Filters and masks work as vscpd's: a mask bit of 1 means the event's
bit must equal the filter's.
"""

from __future__ import annotations

from typing import Any


def is_vscp_event(event: Any) -> bool:
    return (
        isinstance(getattr(event, "vscp_class", None), int)
        and isinstance(getattr(event, "vscp_type", None), int)
        and isinstance(getattr(event, "guid", None), bytes | bytearray)
        and len(event.guid) == 16
        and isinstance(getattr(event, "data", b""), bytes | bytearray)
    )


def priority(event: Any) -> int:
    p = getattr(event, "priority", None)
    if isinstance(p, int):
        return p
    return (getattr(event, "head", 0) >> 5) & 7


def vscp_matches(
    event: Any, filt: tuple[int, int, int, bytes], mask: tuple[int, int, int, bytes]
) -> bool:
    if (event.vscp_class ^ filt[1]) & mask[1] or (event.vscp_type ^ filt[2]) & mask[2]:
        return False
    if mask[0] and (priority(event) ^ filt[0]) & mask[0]:
        return False
    guid, fg, mg = event.guid, filt[3], mask[3]
    return all(not ((guid[i] ^ fg[i]) & mg[i]) for i in range(16) if mg[i])


def format_guid(guid: bytes) -> str:
    return ":".join(f"{b:02X}" for b in guid)


def event_line(event: Any) -> str:
    """The event as a link-protocol line (``head,class,type,obid,datetime,timestamp,GUID,
    data...``): the event's own ``line()`` when it has one."""
    line = getattr(event, "line", None)
    if callable(line):
        return str(line())
    fields = [
        str(getattr(event, "head", 0)),
        str(event.vscp_class),
        str(event.vscp_type),
        str(getattr(event, "obid", 0)),
        "",
        str(getattr(event, "timestamp", 0)),
        format_guid(event.guid),
    ]
    fields += [f"0x{b:02X}" for b in event.data]
    return ",".join(fields)


def event_part(event: Any, part: str, index: int | None) -> Any:
    """``%event`` (the line) or ``%event.<part>`` of a VSCP event."""
    if part in ("", "line"):
        return event_line(event)
    if part == "class":
        return event.vscp_class
    if part == "type":
        return event.vscp_type
    if part == "guid":
        return format_guid(event.guid)
    if part == "priority":
        return priority(event)
    if part == "data":
        if index is None:
            return ",".join(f"0x{b:02X}" for b in event.data)
        if index >= len(event.data):
            raise LookupError(f"%event.data[{index}]: the event has {len(event.data)} data bytes")
        return event.data[index]
    return getattr(event, part, None)
