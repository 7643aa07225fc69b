"""The syntax tree of a rule: what `language` builds and `engine` compiles.

Every node keeps its place in the line (`start`, `end`: 0-based character offsets), so an
error found later (a reference to an unknown point, an action that failed at run time) still
names file:line:column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVENT_PARTS = ("class", "type", "guid", "data", "priority", "head", "obid", "timestamp", "line")
"""What ``%event.<part>`` may name."""


@dataclass(frozen=True, slots=True)
class Node:
    start: int
    end: int

    @property
    def column(self) -> int:
        return self.start + 1


# -- values -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: object
    bare: bool = False
    """A bare word (``on``): a string, as HSYCO writes values."""


@dataclass(frozen=True, slots=True)
class PointRef(Node):
    namespace: str
    """``io`` for a data point, ``ui`` for a UI variable (``$var`` is the UI variable $var)."""
    name: str


@dataclass(frozen=True, slots=True)
class EventRef(Node):
    part: str
    """Empty for the whole event line, else one of `EVENT_PARTS`."""
    index: int | None = None


Value = Literal | PointRef | EventRef


# -- events -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PointEvent(Node):
    """``IO name`` / ``UI name`` (transient: every change), ``IO name <op> value`` (a
    condition), ``USER name [= value]`` (transient, on the UI variable)."""

    namespace: str
    name: str
    op: str | None
    value: Value | None
    user: bool = False

    @property
    def transient(self) -> bool:
        return self.op is None


@dataclass(frozen=True, slots=True)
class TimeEvent(Node):
    hour: int
    minute: int
    second: int
    weekdays: frozenset[int] | None
    """0 = Monday; None for every day."""
    dates: tuple[tuple[int, int], tuple[int, int]] | None
    """First and last (month, day), inclusive; wraps across the new year when first > last."""

    @property
    def key(self) -> str:
        """What identifies the schedule (in the timer store, across reloads)."""
        text = f"{self.hour:02d}{self.minute:02d}{self.second:02d}"
        if self.weekdays is not None:
            text += " " + "".join(str(d) for d in sorted(self.weekdays))
        if self.dates is not None:
            (m1, d1), (m2, d2) = self.dates
            text += f" {m1:02d}{d1:02d}-{m2:02d}{d2:02d}"
        return text


@dataclass(frozen=True, slots=True)
class SunEvent(Node):
    kind: str
    """``day`` or ``night``."""
    offset: int
    """Minutes added to sunrise (for day) or sunset (for night)."""


@dataclass(frozen=True, slots=True)
class SystemEvent(Node):
    kind: str
    """``start`` (host start) or ``init`` (the rule's file was loaded)."""


@dataclass(frozen=True, slots=True)
class TimerEvent(Node):
    name: str


@dataclass(frozen=True, slots=True)
class VscpEvent(Node):
    filter: tuple[int, int, int, bytes]
    """priority, class, type, GUID."""
    mask: tuple[int, int, int, bytes]


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Expr


@dataclass(frozen=True, slots=True)
class And(Node):
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or(Node):
    left: Expr
    right: Expr


Atom = PointEvent | TimeEvent | SunEvent | SystemEvent | TimerEvent | VscpEvent
Expr = Atom | Not | And | Or


# -- actions ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WriteAction(Node):
    """``IO a b = v``, ``UISET a = v``, ``$var = v``."""

    namespace: str
    names: tuple[str, ...]
    value: Value


@dataclass(frozen=True, slots=True)
class TimerAction(Node):
    name: str
    op: str
    """``set`` (ignored while running), ``reset``, ``repeat`` or ``clear``."""
    seconds: float


@dataclass(frozen=True, slots=True)
class LogAction(Node):
    value: Value


@dataclass(frozen=True, slots=True)
class VscpAction(Node):
    instance: str
    """The vscp_link instance whose ``<instance>.event`` point takes the line."""
    value: Value


Action = WriteAction | TimerAction | LogAction | VscpAction


@dataclass(frozen=True, slots=True)
class Rule:
    file: str
    line: int
    text: str
    event: Expr
    actions: tuple[Action, ...]
    id: str = field(default="", compare=False)

    def where(self, node: Node | None = None) -> str:
        """``file:line:column`` of `node` (or of the rule)."""
        column = node.column if node is not None else 1
        return f"{self.file}:{self.line}:{column}"


def atoms(expr: Expr) -> list[Atom]:
    """Every event atom of an expression, left to right."""
    if isinstance(expr, Not):
        return atoms(expr.operand)
    if isinstance(expr, And | Or):
        return atoms(expr.left) + atoms(expr.right)
    return [expr]


def values(action: Action) -> list[Value]:
    return [action.value] if hasattr(action, "value") else []


WEEKDAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def weekdays(text: str) -> frozenset[int]:
    """``MON-FRI``, ``SAT,SUN``, ``FRI-MON`` (ranges wrap) → weekday numbers, Monday 0."""
    days: set[int] = set()
    for part in text.upper().split(","):
        first, _, last = part.partition("-")
        a = WEEKDAY_NAMES.index(first)
        b = WEEKDAY_NAMES.index(last) if last else a
        i = a
        while True:
            days.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    return frozenset(days)
