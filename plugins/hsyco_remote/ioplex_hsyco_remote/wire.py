"""The JSON shapes of API v1 and of rioget, shared by the serving and the replicating side.

Values travel typed (JSON string, number, boolean or null) with the point's quality, so a
mirrored point has the remote's type. Rows are arrays rather than objects to keep 100,000
points and 20,000 changes a second compact:

- a state row: ``[name, value, quality, type, writable]``, type one of ``"str"``, ``"int"``,
  ``"float"``, ``"bool"`` or null (any scalar);
- a change row: ``[name, value, quality]``;
- a data logger sample: ``[seq, time, point, value, quality]``.

JSON is written ASCII-only, so every Python string (even a lone surrogate) round-trips.
"""

from __future__ import annotations

import json
from urllib.parse import quote
from typing import Any

from ioplex import Point, Quality, Value

API_PREFIX = "/api/v1"
PASSWORD_HEADER = "authorization"
"""The password travels as ``Authorization: Bearer <password>``, never in a URL."""
STATE_MEDIA_TYPE = "application/x-ndjson"
PAGE_SIZE = 1000
"""Points per line of the full-state stream."""

TYPE_NAMES: dict[type | None, str | None] = {
    str: "str", int: "int", float: "float", bool: "bool", None: None,
}
TYPES: dict[str | None, type | None] = {v: k for k, v in TYPE_NAMES.items()}
QUALITIES: dict[str, Quality] = {q.value: q for q in Quality}

_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def dumps(data: Any) -> bytes:
    """Compact JSON as bytes."""
    return _encoder.encode(data).encode("ascii")


def state_row(point: Point) -> list[Any]:
    return [point.name, point.value, point.quality, TYPE_NAMES.get(point.type), point.writable]


def rioget_string(value: Value) -> str:
    """A value as rioget's strings: booleans as ``true``/``false``, no value as ``""``."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value if value.__class__ is str else str(value)


_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def bearer(password: str) -> dict[str, str]:
    """The password header; non-ASCII (and "%") percent-encoded, as HTTP headers are ASCII."""
    return {"Authorization": "Bearer " + quote(password, safe=_HEADER_SAFE)}


def password_from(header: str | None) -> str | None:
    """The password of an ``Authorization: Bearer ...`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token if scheme.lower() == "bearer" else None
