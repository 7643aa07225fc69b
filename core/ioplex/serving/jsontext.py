"""JSON in and out of servers: non-finite floats written one documented way, bodies parsed
with a nesting limit."""

from __future__ import annotations

import json
import math
from typing import Any

from ..points import NONFINITE_JSON

MAX_DEPTH = 32
"""The deepest nesting a request body may have; API bodies need three or four levels."""


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return NONFINITE_JSON[repr(obj)]
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that writes NaN and infinities as ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"`` (strings), never as the bare tokens strict parsers refuse."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:  # only non-finite floats make allow_nan=False fail
        return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write NaN and infinities as strings)")


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body; ValueError (with a message for the client) when it is not
    JSON, nests deeper than `max_depth`, or uses the NaN/Infinity tokens."""
    try:
        obj = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return obj
