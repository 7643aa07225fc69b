"""rioget values are strings; the ``convert`` option turns chosen ones into numbers or booleans.

Opt-in and per pattern because a string is all HSYCO promises: ``"1"`` may be a light's
level or a room's code, and guessing would give one point two types over its life.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable

from ioplex import Value

TRUE = frozenset({"true", "1", "on", "yes"})
FALSE = frozenset({"false", "0", "off", "no"})


def _int(text: str) -> int:
    return int(text.strip(), 10)


def _float(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _number(text: str) -> int | float:
    try:
        return _int(text)
    except ValueError:
        return _float(text)


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false, 1/0, on/off, yes/no)")


CONVERTERS: dict[str, tuple[type | None, Callable[[str], Value]]] = {
    "str": (str, str),
    "int": (int, _int),
    "float": (float, _float),
    "number": (None, _number),
    "bool": (bool, _bool),
}
"""Conversion name → (declared point type, converter raising ValueError)."""


class Conversions:
    """The ``convert`` option: the first pattern matching a remote name decides its type."""

    def __init__(self, table: dict[str, str]) -> None:
        self._rules = [(re.compile(fnmatch.translate(p)).match, kind) for p, kind in table.items()]

    def kind(self, name: str) -> str:
        for match, kind in self._rules:
            if match(name):
                return kind
        return "str"

    @staticmethod
    def point_type(kind: str) -> type | None:
        return CONVERTERS[kind][0]

    @staticmethod
    def convert(kind: str, text: str | None) -> Value:
        """`text` as `kind`; None stays None; ValueError when it does not convert."""
        if text is None or kind == "str":
            return text
        return CONVERTERS[kind][1](text)
