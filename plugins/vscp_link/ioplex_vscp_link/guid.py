"""VSCP GUIDs: 16 bytes, most significant first, and their text forms.

Out, always the full form ``FF:FF:FF:FF:FF:FF:FF:FE:B8:27:EB:C9:69:7A:00:02`` (the spec's
shorthands contradict each other, so they are never written). In, the full form (one or two
hex digits per byte, any case), ``-`` or an empty field (the null GUID: "use the interface's
own"), the same wrapped in ``{...}``, and the RFC 4122 form
``FFFFFFFF-FFFF-FFFF-0102-03AABB440130``.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache

NULL_GUID = bytes(16)
_HEX_BYTE = re.compile(r"[0-9A-Fa-f]{1,2}\Z")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z")


# Both conversions are memoized: every event of a node carries the same GUID.
@lru_cache(maxsize=4096)
def parse_guid(text: str) -> bytes:
    """The 16 bytes a GUID text stands for; raises ValueError saying what is wrong."""
    s = text.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1].strip()
    if s in ("", "-"):
        guid = NULL_GUID
    elif _UUID.match(s):
        guid = bytes.fromhex(s.replace("-", ""))
    else:
        parts = s.split(":")
        if len(parts) != 16:
            raise ValueError(
                f"GUID {text.strip()!r} has {len(parts)} bytes; expected 16 hex bytes separated "
                "by ':' (or '-' for the interface's own GUID)"
            )
        for part in parts:
            if not _HEX_BYTE.match(part):
                raise ValueError(f"GUID {text.strip()!r}: {part!r} is not a hex byte")
        guid = bytes(int(part, 16) for part in parts)
    return guid


@lru_cache(maxsize=4096)
def format_guid(guid: bytes) -> str:
    """The full text form: 16 upper-case hex bytes separated by colons."""
    return guid.hex(":").upper()


def interface_guid(base: bytes, channel: int) -> bytes:
    """The GUID of one interface (client) of a server: the server's GUID with bytes 12-13
    set to the channel id and 14-15 zero, as vscpd numbers its clients."""
    return base[:12] + (channel & 0xFFFF).to_bytes(2, "big") + b"\x00\x00"


def machine_guid() -> bytes:
    """A default server GUID: the Ethernet-derived form ``FF:..:FE:<MAC 6 bytes>:00:00``."""
    return b"\xff" * 7 + b"\xfe" + uuid.getnode().to_bytes(6, "big") + b"\x00\x00"


def is_null(guid: bytes) -> bool:
    return guid == NULL_GUID
