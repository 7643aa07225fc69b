"""Points, their quality, the change events they emit, and the rules for names and patterns."""

from __future__ import annotations

import re
from operator import itemgetter
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .errors import PointNameError, PointTypeError

if TYPE_CHECKING:
    from .ioserver import IOServer

Value = str | int | float | bool | None
"""A point's value: one of these scalar types, never a container."""

VALUE_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}

# A name segment is any run of visible characters other than the dot (the separator) and the
# glob characters * ? [ ] (so that every name is also a pattern that matches only itself).
_SEGMENT = r"[^\s.*?\[\]]+"
NAME_RE = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
# A pattern segment may also hold the glob characters; brackets are checked for balance below.
_PATTERN_SEGMENT = r"[^\s.]+"
PATTERN_RE = re.compile(rf"{_PATTERN_SEGMENT}(?:\.{_PATTERN_SEGMENT})*")
INSTANCE_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


class Quality(StrEnum):
    """How far a point's value can be trusted."""

    GOOD = "good"
    """Fresh from the device."""
    STALE = "stale"
    """The last known value; the device has not confirmed it recently."""
    BAD = "bad"
    """The owning I/O server is offline or the device reported an error."""


def check_name(name: str, *, min_segments: int = 2) -> str:
    """Return `name` if it is a valid point name, else raise PointNameError saying why."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise PointNameError(
            f"invalid point name {name!r}: segments are separated by single dots and may not be "
            "empty or contain spaces or the characters * ? [ ]"
        )
    if name.count(".") + 1 < min_segments:
        raise PointNameError(f"invalid point name {name!r}: expected '<ioserver>.<point id>'")
    return name


def check_pattern(pattern: str) -> str:
    """Return `pattern` if it is a valid glob pattern over point names, else raise PointNameError.

    Patterns use fnmatch syntax: `*` matches any run of characters (dots included), `?` one
    character, `[...]` a set. `remote.*` matches every point of the I/O server `remote`.
    """
    if not isinstance(pattern, str) or not PATTERN_RE.fullmatch(pattern):
        raise PointNameError(
            f"invalid pattern {pattern!r}: segments are separated by single dots and may not be "
            "empty or contain spaces"
        )
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                raise PointNameError(f"invalid pattern {pattern!r}: nested '['")
            depth = 1
        elif ch == "]" and depth:
            depth = 0
        elif ch == "]":
            raise PointNameError(f"invalid pattern {pattern!r}: ']' without '['")
    if depth:
        raise PointNameError(f"invalid pattern {pattern!r}: '[' is never closed")
    return pattern


def check_value(name: str, value: Any, type_: type | None) -> Value:
    """Return `value` converted for a point of type `type_`, or raise PointTypeError.

    An int is accepted for a float point (and converted); a bool is never taken for a number.
    `None` is always accepted: it means "no value".
    """
    if value is None:
        return None
    vt = type(value)
    if vt not in (str, int, float, bool):
        raise PointTypeError(
            f"{name}: value {value!r} has type {vt.__name__}; points hold str, int, float, bool "
            "or None"
        )
    if type_ is None or vt is type_:
        return value
    if type_ is float and vt is int:
        return float(value)
    raise PointTypeError(f"{name}: expected {type_.__name__}, got {vt.__name__} {value!r}")


class Point:
    """A named value with its quality and timestamps.

    Timestamps are seconds since the epoch (float), from the host's clock. `last_updated` moves
    on every update, `last_changed` only when the value or quality changes.
    """

    __slots__ = (
        "name",
        "value",
        "quality",
        "last_changed",
        "last_updated",
        "writable",
        "owner",
        "type",
        "meta",
        "_subs",
        "_gen",
    )

    def __init__(
        self,
        name: str,
        value: Value,
        *,
        owner: IOServer | None,
        writable: bool,
        type: type | None,
        quality: Quality,
        now: float,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.quality = quality
        self.last_changed = now
        self.last_updated = now
        self.writable = writable
        self.owner = owner
        self.type = type
        self.meta = meta
        self._subs: tuple = ()
        self._gen = -1

    @property
    def ioserver(self) -> str | None:
        """Name of the owning I/O server, or None for a host-local UI variable."""
        return self.owner.name if self.owner is not None else None

    def __repr__(self) -> str:
        return f"<Point {self.name}={self.value!r} {self.quality}>"


class PointEvent(tuple):
    """A change of one point, as seen by subscribers: ``name``, ``value``, ``old_value``,
    ``time`` (seconds since the epoch) and ``quality``.

    A tuple underneath (it unpacks as ``name, value, old_value, time, quality``) because one is
    made for every change on the registry's hot path, and a tuple is the cheapest object
    Python can build.
    """

    __slots__ = ()

    def __new__(
        cls, name: str, value: Value, old_value: Value, time: float, quality: Quality
    ) -> PointEvent:
        return tuple.__new__(cls, (name, value, old_value, time, quality))

    name = property(itemgetter(0), doc="The point's full name.")
    value = property(itemgetter(1), doc="The new value.")
    old_value = property(itemgetter(2), doc="The value before the change (None for a new point).")
    time = property(itemgetter(3), doc="When it changed, seconds since the epoch.")
    quality = property(itemgetter(4), doc="The new quality.")

    def __repr__(self) -> str:
        return (
            f"PointEvent({self[0]!r}, {self[1]!r}, old_value={self[2]!r}, "
            f"quality={self[4].value!r})"
        )


make_event = tuple.__new__
"""``make_event(PointEvent, (name, value, old_value, time, quality))``: PointEvent without the
cost of a Python-level ``__new__`` call, for the registry's hot path."""
