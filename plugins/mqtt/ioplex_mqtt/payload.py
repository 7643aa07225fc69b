"""The JSON payloads on the broker: a point's state, a set request and its result.

Everything here reads what any client of a shared broker may have published, so the decoders
accept only the documented shapes and raise `PayloadError` (a ValueError) for anything else:
a size limit before parsing, a nesting limit while parsing, every field's type and range.

State (retained, on ``<prefix>/<host>/<point>``)::

    {"v": 21.5, "q": "good", "ts": 1767225600000, "src": "site-b", "hops": 0}

optionally with ``"t"`` (the point's type: ``bool``, ``int``, ``float``, ``str``), ``"nf": 1``
(a float point that may hold NaN/Infinity, written as the strings ``"NaN"``...) and
``"s": 1`` (a sensitive point: a mirror marks it sensitive too).

Set request (``…/set``, never retained): ``{"v": 1, "id": "<token>", "from": "<host>",
"ts": <ms>}``; result (``…/set/result``): ``{"id": "<token>", "ok": true}`` or
``{"id": "<token>", "error": "<why>"}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ioplex import Quality
from ioplex.points import INT_MAX, INT_MIN
from ioplex.serving import jsontext

MAX_DEPTH = 4
"""Nesting allowed in a payload: an object holding scalars needs 2."""
MAX_ID = 64
"""The longest request id accepted."""
MAX_HOPS = 1000
MAX_ERROR = 500
"""Characters of a refusal's text kept (a result is shown to the writer)."""
TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
QUALITIES = {q.value: q for q in Quality}
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class PayloadError(ValueError):
    """A payload that is not one of the documented shapes."""


@dataclass(slots=True)
class State:
    """A point's state as published by its host."""

    value: Any
    quality: Quality
    ts: float
    """When the value last changed on the origin host, in seconds since the epoch."""
    src: str
    hops: int
    type: type | None = None
    nonfinite: bool = False
    sensitive: bool = False


@dataclass(slots=True)
class SetRequest:
    value: Any
    id: str
    sender: str
    ts: float


@dataclass(slots=True)
class SetResult:
    id: str
    error: str | None
    """None when the write was accepted."""


def encode_state(
    value: Any,
    quality: Quality,
    ts: float,
    src: str,
    hops: int,
    type: type | None = None,
    nonfinite: bool = False,
    sensitive: bool = False,
) -> bytes:
    body: dict[str, Any] = {
        "v": value,
        "q": quality.value,
        "ts": round(ts * 1000),
        "src": src,
        "hops": hops,
    }
    if type in TYPE_NAMES:
        body["t"] = TYPE_NAMES[type]
    if nonfinite:
        body["nf"] = 1
    if sensitive:
        body["s"] = 1
    try:
        return _ENCODER.encode(body).encode()
    except ValueError:  # NaN or an infinity: written as documented, by jsontext
        return jsontext.dumps(body, separators=(",", ":")).encode()


def encode_set(value: Any, id: str, sender: str, ts: float) -> bytes:
    return jsontext.dumps(
        {"v": value, "id": id, "from": sender, "ts": round(ts * 1000)}, separators=(",", ":")
    ).encode()


def encode_result(id: str, error: str | None) -> bytes:
    body: dict[str, Any] = {"id": id}
    if error is None:
        body["ok"] = True
    else:
        body["error"] = error[:MAX_ERROR]
    return jsontext.dumps(body, separators=(",", ":")).encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write NaN and infinities as strings)")


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""Made once: ``json.loads`` or ``dumps`` with an argument builds a coder per call, a third of a small
payload's decoding time."""


def _object(data: bytes, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise PayloadError(f"payload of {len(data)} bytes is over the limit of {limit}")
    try:
        text = data.decode("utf-8")
        try:
            body = _DECODER.decode(text)
        except RecursionError:
            body = None
        # the documented shapes are flat: anything nested gets jsontext's depth check
        if body is None or text.find("{", 1) >= 0 or "[" in text:
            body = jsontext.loads(text, max_depth=MAX_DEPTH)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(body, dict):
        raise PayloadError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _scalar(body: dict[str, Any], nonfinite: bool) -> Any:
    if "v" not in body:
        raise PayloadError('no value ("v")')
    value = body["v"]
    if value.__class__ is str and not _unicode(value):
        raise PayloadError("string value with a lone surrogate (not valid Unicode)")
    if value is None or value.__class__ in (bool, str):
        if nonfinite and value in _NONFINITE:
            return _NONFINITE[value]
        return value
    if value.__class__ is int:
        if not INT_MIN <= value <= INT_MAX:
            raise PayloadError("integer value out of the signed 64-bit range")
        return value
    if value.__class__ is float:
        if not math.isfinite(value):
            raise PayloadError("non-finite number")
        return value
    raise PayloadError(f"value is a JSON {type(value).__name__}, not a scalar")


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int:
    value = body.get(key)
    if value.__class__ is not int or not low <= value <= high:
        raise PayloadError(f"{key!r} must be an integer from {low} to {high}")
    return value


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit or not _unicode(value):
        raise PayloadError(f"{key!r} must be a non-empty string of at most {limit} characters")
    return value


def _unicode(text: str) -> bool:
    """Whether `text` is valid Unicode (JSON's escapes can carry lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_state(data: bytes, limit: int) -> State:
    """A published state; PayloadError for anything but the documented shape."""
    body = _object(data, limit)
    get = body.get
    type_name = get("t")
    if type_name is not None and (type_name.__class__ is not str or type_name not in TYPES):
        raise PayloadError(f"unknown type {str(type_name)[:20]!r}")
    nonfinite = get("nf") == 1
    q = get("q")
    if q.__class__ is not str or q not in QUALITIES:
        raise PayloadError("'q' must be one of good, stale, bad")
    value = _scalar(body, nonfinite)
    ts = get("ts")
    if ts.__class__ is not int or not 0 <= ts <= 2**53:
        raise PayloadError("'ts' must be an integer from 0 to 9007199254740992")
    src = get("src")
    if src.__class__ is not str or not 0 < len(src) <= 255 or not _unicode(src):
        src = _text(body, "src", 255)  # raises, saying what is wrong
    hops = get("hops")
    if hops.__class__ is not int or not 0 <= hops <= MAX_HOPS:
        hops = _int(body, "hops", 0, MAX_HOPS)  # raises
    return State(
        value,
        QUALITIES[q],
        ts / 1000,
        src,
        hops,
        TYPES[type_name] if type_name is not None else None,
        nonfinite,
        get("s") == 1,
    )


def decode_set(data: bytes, limit: int) -> SetRequest:
    body = _object(data, limit)
    return SetRequest(
        value=_scalar(body, nonfinite=False),
        id=_text(body, "id", MAX_ID),
        sender=_text(body, "from", 255),
        ts=_int(body, "ts", 0, 2**53) / 1000,
    )


def decode_result(data: bytes, limit: int) -> SetResult:
    body = _object(data, limit)
    id = _text(body, "id", MAX_ID)
    if body.get("ok") is True:
        return SetResult(id, None)
    error = body.get("error")
    if not isinstance(error, str):
        raise PayloadError('a result has "ok": true or an "error" string')
    return SetResult(id, error[:MAX_ERROR] or "refused")
