"""The JSON shapes of API v1 and of rioget, shared by the serving and the replicating side.

Values travel typed (JSON string, number, boolean or null) with the point's quality, so a
mirrored point has the remote's type. Rows are arrays rather than objects to keep 100,000
points and 20,000 changes a second compact:

- a state row: ``[name, value, quality, type, writable, origin, hops]``, type one of
  ``"str"``, ``"int"``, ``"float"``, ``"bool"`` or null (any scalar); `origin` the name of the
  host where the point originates (a mirrored point keeps its remote's origin), `hops` how
  many replications it went through (0 on its origin host). Clients read the fields they
  know and ignore any further ones, so rows may grow at the end in later versions;
- a change row: ``[name, value, quality]``;
- a data logger sample: ``[seq, time, point, value, quality]``.

JSON is written ASCII-only. A non-finite float (only on points declared ``nonfinite``) is
written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, never as a bare token
strict JSON parsers refuse.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

from ioplex import Point, Quality, Value
from ioplex.points import NONFINITE_JSON
from ioplex.provenance import provenance
from ioplex.serving import jsontext

API_PREFIX = "/api/v1"
PASSWORD_HEADER = "authorization"
"""The password travels as ``Authorization: Bearer <password>``, never in a URL."""
SESSION_HEADER = "X-Ioplex-Session"
"""A session token: answered by the server to every API v1 request it let in, sent back by the
client on its next requests. A live token lets a request in without the password throttle, so
a client that logged in once is not locked out by others' failures from its address; an
unknown or expired token is ignored (the password decides, and a new token is answered)."""
STATE_MEDIA_TYPE = "application/x-ndjson"
PAGE_SIZE = 1000
"""Points per line of the full-state stream."""

TYPE_NAMES: dict[type | None, str | None] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    None: None,
}
TYPES: dict[str | None, type | None] = {v: k for k, v in TYPE_NAMES.items()}
QUALITIES: dict[str, Quality] = {q.value: q for q in Quality}

_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def dumps(data: Any) -> bytes:
    """Compact ASCII JSON as bytes; non-finite floats as their documented strings."""
    try:
        return _encoder.encode(data).encode("ascii")
    except ValueError:
        # Non-finite floats are the common cause; anything else (an int too long to print)
        # is raised again by the second attempt for the caller to contain.
        return jsontext.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def state_row(point: Point, here: str) -> list[Any]:
    """A point's state row; `here` is this host's name (the origin of its own points)."""
    origin, hops = provenance(point, here)
    return [
        point.name,
        point.value,
        point.quality,
        TYPE_NAMES.get(point.type),
        point.writable,
        origin,
        hops,
    ]


def row_provenance(row: list[Any], remote_host: str) -> tuple[str, int]:
    """(origin, hops) of a state row; rows from servers older than the origin fields
    originate on the remote, 0 hops away."""
    origin, hops = remote_host, 0
    if len(row) >= 7:
        origin = row[5] if isinstance(row[5], str) and row[5] else remote_host
        hops = row[6] if isinstance(row[6], int) and not isinstance(row[6], bool) else 0
    return origin, hops


def rioget_string(value: Value) -> str:
    """A value as rioget's strings: booleans as ``true``/``false``, no value as ``""``."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value.__class__ is str:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return NONFINITE_JSON[repr(value)]
    return str(value)


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
