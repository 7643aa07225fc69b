"""Values in rules: turning what a rule says into what a point takes, and comparing.

HSYCO's values are all text (``IO k.1 = 1`` switches a light on); ioplex points are typed.
So a value written to a point is converted to the point's type where the meaning is plain
(1/0, true/false, on/off for a boolean; a number for text), and refused otherwise with the
kernel's `PointTypeError`. Conditions compare the same way.
"""

from __future__ import annotations

from typing import Any

from ioplex import PointTypeError
from ioplex.points import describe_value, printable

TRUE_WORDS = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


def convert(name: str, value: Any, type_: type | None) -> Any:
    """`value` for a point of type `type_`, or PointTypeError naming the point."""
    if value is None or type_ is None or value.__class__ is type_:
        return value
    if type_ is bool:
        key = str(value).lower() if not isinstance(value, float) else None
        if key in TRUE_WORDS and not isinstance(value, float):
            return TRUE_WORDS[key]
    elif type_ is float and value.__class__ is int:
        return float(value)
    elif type_ is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif type_ is int and isinstance(value, bool):
        return int(value)
    elif type_ is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif type_ is int and isinstance(value, float) and value.is_integer():
        return int(value)
    elif type_ is str and value.__class__ in (int, float, bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    raise PointTypeError(
        f"{printable(name)}: expected {type_.__name__}, got {type(value).__name__} "
        f"{describe_value(value)}"
    )


def _number(value: Any) -> float | None:
    if value.__class__ is bool:
        return float(value)
    if value.__class__ in (int, float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def compare(current: Any, op: str, wanted: Any) -> bool:
    """``current <op> wanted`` as a rule means it: numerically when both read as numbers
    (a boolean is 0 or 1, ``on``/``off`` too), else as text; ordering text is by code point."""
    if isinstance(wanted, str) and isinstance(current, bool):
        w = TRUE_WORDS.get(wanted.lower())
        if w is not None:
            wanted = w
    a, b = _number(current), _number(wanted)
    if a is not None and b is not None:
        x: Any = a
        y: Any = b
    elif current is None or wanted is None:
        x, y = current, wanted
        if op == "=":
            return x is y
        if op == "!=":
            return x is not y
        return False
    else:
        x, y = str(current), str(wanted)
    if op == "=":
        return x == y
    if op == "!=":
        return x != y
    if op == ">":
        return x > y
    if op == ">=":
        return x >= y
    if op == "<":
        return x < y
    return x <= y
