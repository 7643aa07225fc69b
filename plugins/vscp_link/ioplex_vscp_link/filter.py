"""Filter and mask: which events a receiver takes (vscpd's ``vscp_doLevel2Filter``).

An event passes when, for its priority, class, type and each of its 16 GUID bytes,
``((field XOR filter) AND mask) == 0``: a mask bit of 1 means "must equal the filter bit".
An all-zero mask, the state of every new session, passes everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from .event import Event
from .guid import NULL_GUID, format_guid, parse_guid
from .number import read_bounded


@dataclass(frozen=True, slots=True)
class Fields:
    """One side of a filter: a priority, class, type and GUID to compare or mask with."""

    priority: int = 0
    vscp_class: int = 0
    vscp_type: int = 0
    guid: bytes = NULL_GUID

    def text(self) -> str:
        """The wire form ``priority,class,type,GUID`` (what SFLT and SMSK take)."""
        return (
            f"0x{self.priority:02X},0x{self.vscp_class:04X},0x{self.vscp_type:04X},"
            f"{format_guid(self.guid)}"
        )


def parse_fields(text: str, *, complete: bool = False) -> Fields:
    """Read ``priority,class,type,GUID``; raise ValueError naming the part at fault.

    With `complete` (SFLT/SMSK on the wire, as vscpd) all four parts are required; otherwise
    (configuration strings, like vscpd's ``vscp_readFilterFromString``) missing trailing
    parts are 0 and an empty string is all zero.
    """
    parts = text.split(",") if text.strip() else []
    if len(parts) > 4:
        raise ValueError(
            f"{text.strip()!r} has {len(parts)} parts; expected priority,class,type,GUID"
        )
    if complete and len(parts) < 4:
        raise ValueError(
            f"{text.strip()!r} has {len(parts)} parts; expected priority,class,type,GUID"
        )
    parts += [""] * (4 - len(parts))
    return Fields(
        read_bounded(parts[0], "priority", 0xFF),
        read_bounded(parts[1], "class", 0xFFFF),
        read_bounded(parts[2], "type", 0xFFFF),
        parse_guid(parts[3]),
    )


class Filter:
    """A filter and its mask, compiled for a fast `accepts`."""

    __slots__ = ("_guid_mask", "_guid_want", "accepts_all", "filter", "mask")

    def __init__(self, filter: Fields | None = None, mask: Fields | None = None) -> None:
        self.filter = filter or Fields()
        self.mask = mask or Fields()
        m = self.mask
        self.accepts_all = not (m.priority or m.vscp_class or m.vscp_type or any(m.guid))
        # The GUID test as one integer operation instead of sixteen byte comparisons.
        self._guid_mask = int.from_bytes(m.guid, "big")
        self._guid_want = int.from_bytes(self.filter.guid, "big") & self._guid_mask

    @classmethod
    def parse(cls, filter: str, mask: str) -> Filter:
        """From configuration strings (see `parse_fields`)."""
        return cls(parse_fields(filter), parse_fields(mask))

    def with_filter(self, filter: Fields) -> Filter:
        return Filter(filter, self.mask)

    def with_mask(self, mask: Fields) -> Filter:
        return Filter(self.filter, mask)

    def accepts(self, event: Event) -> bool:
        if self.accepts_all:
            return True
        f, m = self.filter, self.mask
        return (
            ((event.priority ^ f.priority) & m.priority) == 0
            and ((event.vscp_class ^ f.vscp_class) & m.vscp_class) == 0
            and ((event.vscp_type ^ f.vscp_type) & m.vscp_type) == 0
            and (
                not self._guid_mask
                or int.from_bytes(event.guid, "big") & self._guid_mask == self._guid_want
            )
        )

    def __repr__(self) -> str:
        return f"Filter(filter={self.filter.text()!r}, mask={self.mask.text()!r})"


ACCEPT_ALL = Filter()
