"""What a remote API v1 host answers, checked before the mirror uses it.

A remote is another machine: broken, older, newer or hostile, it can answer anything. Every
answer body goes through here, so the mirror's code reads checked shapes only and a bad
answer becomes one clear `RemoteError` naming the URL and what was wrong (the supervisor
then reconnects with backoff), never a KeyError or TypeError from deep inside the mirror.

Values are only checked to be JSON scalars: whether this host accepts one (64-bit ints,
finite floats, string length) is the registry's value contract, which refuses it with
`ioplex.PointTypeError` when the mirror stores it.
"""

from __future__ import annotations

import math
from typing import Any

from ioplex import Quality
from ioplex.serving import jsontext

from .refusals import RemoteError
from .wire import QUALITIES, TYPES

MAX_DEPTH = 8
"""API v1 answers nest four levels at most (an answer, a namespace's rows, a row)."""
SCALARS = (str, int, float, bool, type(None))


def parse(body: str | bytes, url: str) -> Any:
    """JSON of an answer or of a state stream line; RemoteError when it is not (or nests
    absurdly deep: Python's own parser would raise RecursionError)."""
    try:
        return jsontext.loads(body, max_depth=MAX_DEPTH)
    except ValueError as exc:
        raise RemoteError(f"{url}: the answer is not JSON: {exc}") from None


def _fail(url: str, what: str, data: Any) -> RemoteError:
    text = repr(data)
    return RemoteError(f"{url}: malformed answer: {what} (got {text[:120]})")


def _int(data: dict[str, Any], key: str, url: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise _fail(url, f"{key!r} must be an integer from 0 to 2**63-1", value)
    return value


def _time(data: dict[str, Any], url: str) -> float:
    value = data.get("time")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(url, "'time' must be a number", value)
    try:
        value = float(value)
    except OverflowError:
        raise _fail(url, "'time' must be a finite number", value) from None
    if not math.isfinite(value):
        raise _fail(url, "'time' must be a finite number", value)
    return value


def _epoch(data: dict[str, Any], url: str) -> str:
    value = data.get("epoch")
    if not isinstance(value, str) or not value:
        raise _fail(url, "'epoch' must be a non-empty string", value)
    return value


def _object(data: Any, url: str, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(url, f"{what} must be a JSON object", data)
    return data


def info(data: Any, url: str) -> dict[str, Any]:
    """``/info``, already known to say ``api: 1``: host, epoch, control and clock."""
    data = _object(data, url, "the info")
    host = data.get("host")
    clock = data.get("clock")
    if clock is not None and not isinstance(clock, dict):
        raise _fail(url, "'clock' must be an object", clock)
    point = (clock or {}).get("point")
    if point is not None and not isinstance(point, str):
        raise _fail(url, "'clock.point' must be a string", point)
    return {
        "api": 1,
        "host": host if isinstance(host, str) and host else None,
        "epoch": _epoch(data, url),
        "control": data.get("control") is True,
        "clock": None
        if clock is None
        else {"point": point, "writable": clock.get("writable") is True},
    }


def clock(data: Any, url: str) -> dict[str, Any]:
    """``/clock``: the remote's time (seconds)."""
    data = _object(data, url, "the clock answer")
    return {"time": _time(data, url)}


def state_head(data: Any, url: str) -> dict[str, Any]:
    """The first line of a state stream: epoch, log position and row count."""
    data = _object(data, url, "the state header")
    return {
        "epoch": _epoch(data, url),
        "seq": _int(data, "seq", url),
        "count": _int(data, "count", url),
    }


def state_rows(data: Any, url: str) -> list[list[Any]]:
    """A page of state rows ``[name, value, quality, type, writable, ...]``; later fields are
    passed on for `wire.row_provenance`, which reads them leniently."""
    if not isinstance(data, list):
        raise _fail(url, "a state page must be a list of rows", data)
    for row in data:
        if not (
            isinstance(row, list)
            and len(row) >= 5
            and isinstance(row[0], str)
            and isinstance(row[1], SCALARS)
            and isinstance(row[2], str)
            and row[2] in QUALITIES
            and (row[3] is None or (isinstance(row[3], str) and row[3] in TYPES))
            and isinstance(row[4], bool)
        ):
            raise _fail(url, "a state row must be [name, value, quality, type, writable]", row)
    return data


def changes(data: Any, url: str, spaces: tuple[str, ...]) -> dict[str, Any]:
    """A change answer: either a resync request, or the new position, the remote's time,
    its point counts and ``[name, value, quality]`` rows per namespace."""
    data = _object(data, url, "the change answer")
    if data.get("resync") is True:
        reason = data.get("reason")
        return {
            "resync": True,
            "reason": reason if isinstance(reason, str) else "(no reason given)",
        }
    answer: dict[str, Any] = {
        "seq": _int(data, "seq", url),
        "more": data.get("more") is True,
        "time": _time(data, url),
        "count": {},
    }
    count = data.get("count")
    if isinstance(count, dict):
        answer["count"] = {
            ns: n
            for ns, n in count.items()
            if ns in spaces and isinstance(n, int) and not isinstance(n, bool)
        }
    for ns in spaces:
        rows = data.get(ns) or []
        if not isinstance(rows, list):
            raise _fail(url, f"{ns!r} must be a list of changes", rows)
        for row in rows:
            if not (
                isinstance(row, list)
                and len(row) == 3
                and isinstance(row[0], str)
                and isinstance(row[1], SCALARS)
                and isinstance(row[2], str)
                and row[2] in QUALITIES
            ):
                raise _fail(url, "a change must be [name, value, quality]", row)
        answer[ns] = rows
    return answer


def samples(data: Any, url: str, logger: str) -> tuple[list[tuple[Any, ...]], str | None]:
    """A logger's samples ``[seq, time, point, value, quality]`` as the kernel's rows, and
    the identity of the remote's logger database (None from servers without one)."""
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise _fail(
            url, f"the samples answer of logger {logger!r} must be an object with a list", data
        )
    rows = []
    for row in data["samples"]:
        if not (
            isinstance(row, list)
            and len(row) == 5
            and isinstance(row[0], int)
            and not isinstance(row[0], bool)
            and 0 <= row[0] < 2**63
            and isinstance(row[1], int | float)
            and not isinstance(row[1], bool)
            and isinstance(row[2], str)
            and isinstance(row[3], SCALARS)
            and isinstance(row[4], str)
        ):
            raise _fail(
                url,
                f"a sample of logger {logger!r} must be [seq, time, point, value, quality]",
                row,
            )
        try:
            stamp = float(row[1])
        except OverflowError:
            stamp = math.inf
        if not math.isfinite(stamp):
            raise _fail(url, f"a sample of logger {logger!r} has no finite time", row)
        rows.append((row[0], stamp, row[2], row[3], QUALITIES.get(row[4], Quality.BAD)))
    store = data.get("store")
    return rows, store if isinstance(store, str) and store else None
