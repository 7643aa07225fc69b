"""Points, their quality, the change events they emit, and the rules for names and patterns."""

from __future__ import annotations

import re
from enum import StrEnum
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Self

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

MAX_NAME = 255
"""The longest point name, in characters."""
# Characters no name may hold: C0 and C1 controls, DEL, zero-width characters and the
# bidirectional overrides and isolates, which make a name look like another one in a log or
# on a page (the "Trojan Source" trick), and lone surrogates, which no encoder can write.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
)

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""Integers are signed 64-bit: what SQLite, JSON parsers in other languages and every
automation protocol can carry without loss."""
DEFAULT_MAX_STRING = 64 * 1024
"""The default of ``[host] max_string``: the longest string value, in characters."""
NONFINITE_JSON = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
"""How JSON outputs write a non-finite float (only points declared with ``nonfinite`` hold
one): as these strings, JavaScript's spellings, never as a bare ``NaN`` that no strict JSON
parser reads."""


def printable(text: str, limit: int = 80) -> str:
    """`text` safe for a log line or a terminal: unsafe characters (see `check_name`) and
    other whitespace than the space as ``\\uXXXX``, cut at `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).replace("\t", "\\t")


def name_problem(name: str, kind: str) -> str | None:
    """What is wrong with a name or pattern, in words (None when nothing is)."""
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; the limit is {MAX_NAME}"
    bad = _UNSAFE.search(name)
    if bad:
        return (
            f"contains U+{ord(bad.group()):04X} at position {bad.start()}: control, "
            "zero-width and bidirectional-override characters are not allowed"
        )
    if not name:
        return "is empty"
    for i, segment in enumerate(name.split(".")):
        if not segment:
            return "has an empty segment (names are segments joined by single dots)"
        space = re.search(r"\s", segment)
        if space:
            return f"contains whitespace (U+{ord(space.group()):04X}) in segment {i + 1}"
        if kind == "name":
            glob = re.search(r"[*?\[\]]", segment)
            if glob:
                return f"contains {glob.group()!r}, which is kept for patterns"
    return None


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
    if not isinstance(name, str):
        raise PointNameError(f"a point name must be a string, not {type(name).__name__}")
    if not NAME_RE.fullmatch(name) or len(name) > MAX_NAME or _UNSAFE.search(name):
        why = name_problem(name, "name") or "is malformed"
        raise PointNameError(f"invalid point name '{printable(name)}': it {why}")
    if name.count(".") + 1 < min_segments:
        raise PointNameError(
            f"invalid point name '{printable(name)}': expected '<ioserver>.<point id>'"
        )
    return name


def check_pattern(pattern: str) -> str:
    """Return `pattern` if it is a valid glob pattern over point names, else raise PointNameError.

    Patterns use fnmatch syntax: `*` matches any run of characters (dots included), `?` one
    character, `[...]` a set. `remote.*` matches every point of the I/O server `remote`.
    """
    if not isinstance(pattern, str):
        raise PointNameError(f"a pattern must be a string, not {type(pattern).__name__}")
    if not PATTERN_RE.fullmatch(pattern) or _UNSAFE.search(pattern):
        why = name_problem(pattern, "pattern") or "is malformed"
        raise PointNameError(f"invalid pattern '{printable(pattern)}': it {why}")
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


def describe_value(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of a value for an error message: long strings are cut and a
    huge integer is described by its size (``repr`` refuses ints past 4,300 digits)."""
    if value.__class__ is int and not INT_MIN <= value <= INT_MAX:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str):
        return repr(printable(value, limit))
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def check_value(
    name: str,
    value: Any,
    type_: type | None,
    *,
    max_string: int = DEFAULT_MAX_STRING,
    nonfinite: bool = False,
) -> Value:
    """Return `value` converted for a point of type `type_`, or raise PointTypeError.

    This is the value contract (docs/architecture.md, "Values"): None, a bool, an int within
    signed 64 bits, a finite float (NaN and infinities only where `nonfinite`), or valid
    Unicode text of at most `max_string` characters. An int is accepted for a float point
    (and converted); a bool is never taken for a number. `None` always means "no value".
    """
    if value is None:
        return None
    vt = value.__class__
    if vt is not str and vt is not int and vt is not float and vt is not bool:
        raise PointTypeError(
            f"{printable(name)}: value {describe_value(value)} has type {vt.__name__}; points "
            "hold str, int, float, bool or None"
        )
    if vt is int and not INT_MIN <= value <= INT_MAX:
        raise PointTypeError(
            f"{printable(name)}: {describe_value(value)} is outside the signed 64-bit range "
            "that points hold"
        )
    if type_ is not None and vt is not type_:
        if type_ is float and vt is int:
            value, vt = float(value), float
        else:
            raise PointTypeError(
                f"{printable(name)}: expected {type_.__name__}, got {vt.__name__} "
                f"{describe_value(value)}"
            )
    if vt is float and value - value != 0.0 and not nonfinite:  # NaN and ±inf, not 0.0
        raise PointTypeError(
            f"{printable(name)}: {value!r} is not a finite number (declare the point with "
            "nonfinite=True to hold NaN and infinities)"
        )
    if vt is str:
        if len(value) > max_string:
            raise PointTypeError(
                f"{printable(name)}: a string of {len(value)} characters is longer than the "
                f"host's limit of {max_string} ([host] max_string)"
            )
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise PointTypeError(
                    f"{printable(name)}: the string holds U+{ord(value[exc.start]):04X} at "
                    f"position {exc.start}, a lone surrogate that is not valid Unicode"
                ) from None
    return value


class Point:
    """A named value with its quality and timestamps.

    Timestamps are seconds since the epoch (float), from the host's clock. `last_updated` moves
    on every update, `last_changed` only when the value or quality changes.
    """

    __slots__ = (
        "_gen",
        "_subs",
        "follows_connection",
        "last_changed",
        "last_updated",
        "meta",
        "name",
        "nonfinite",
        "owner",
        "quality",
        "sensitive",
        "type",
        "value",
        "writable",
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
        nonfinite: bool = False,
        sensitive: bool = False,
        follows_connection: bool = True,
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
        self.nonfinite = nonfinite
        """Whether the point may hold NaN and infinities (see `check_value`)."""
        self.sensitive = sensitive
        """Whether a write can do harm on the host or its peers (run a command, copy a
        file): remote writers reach it only through a pattern that names it exactly
        (`ioplex.serving.RemoteWrites`)."""
        self.follows_connection = follows_connection
        """Whether the point's quality goes ``bad`` when its I/O server goes offline.
        False for results of commands (an exit status, a transfer's byte count): they change
        only when a command ends, never because a link dropped or came back."""
        self._subs: tuple = ()
        self._gen = -1

    @property
    def id(self) -> str:
        """The name without the owning instance's prefix (``light.1`` of ``dummy.light.1``);
        the whole name for a host-local UI variable."""
        return self.name[len(self.owner.name) + 1 :] if self.owner is not None else self.name

    @property
    def unit(self) -> str | None:
        """``meta["unit"]``, by the metadata conventions (docs/architecture.md)."""
        return self.meta.get("unit") if self.meta else None

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
    ) -> Self:
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
