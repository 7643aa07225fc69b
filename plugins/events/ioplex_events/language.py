"""The events language: one rule per line, ``event : actions``, parsed with lark into the
syntax tree of `syntax`, every node with its column.

Lines are parsed one at a time, so a syntax error in one rule never hides the errors of
the others: `parse_text` reports all of them at once, as `Diagnostic` objects (file, line,
column, message), raising `RulesError` only when it found any. Nothing else escapes it: an
unknown keyword gets a did-you-mean, and a line no terminal matches says which character.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import lark
from ioplex.points import printable
from lark import Token
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from . import syntax as s
from .fastparse import parse_fast

KEYWORDS = (
    "AND",
    "OR",
    "NOT",
    "IO",
    "UI",
    "USER",
    "UISET",
    "TIME",
    "DATE",
    "DAY",
    "NIGHT",
    "START",
    "HSYCOSTART",
    "INIT",
    "TIMER",
    "PROGRAMTIMER",
    "VSCP",
    "FILTER",
    "MASK",
    "SEND",
    "LOG",
    "SET",
    "RESET",
    "REPEAT",
    "CLEAR",
    "TRUE",
    "FALSE",
    "NULL",
)
"""Every keyword of the language (case-insensitive), for did-you-mean hints."""

MAX_TIMER_SECONDS = 10 * 365 * 86400
"""The longest program timer: ten years, so deadlines stay well inside float precision."""
MAX_LINE = 10_000
"""The longest rule line, in characters (a longer one is an error, not a slow parse)."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in an events file, at file:line:column (both 1-based)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RulesError(ValueError):
    """Problems found in events files; `diagnostics` lists every one, in file order."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class _LineError(Exception):
    """A semantic error inside one line (a bad hour, an unknown weekday), at a column."""

    def __init__(self, column: int, message: str) -> None:
        self.column = column
        self.message = message


def _span(*items: Any) -> tuple[int, int]:
    start, end = 1 << 30, 0
    for item in items:
        if isinstance(item, Token):
            a, b = item.start_pos, item.end_pos
        elif isinstance(item, s.Node):
            a, b = item.start, item.end
        elif isinstance(item, list):
            if not item:
                continue
            a, b = _span(*item)
        else:
            continue
        start, end = min(start, a), max(end, b)
    return start, end


def _unquote(token: Token) -> str:
    text = str(token)
    if not text.startswith('"'):
        return text
    out, i, body = [], 0, text[1:-1]
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in escapes:
                raise _LineError(token.start_pos + i + 2, f"unknown escape \\{nxt} in a string")
            out.append(escapes[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _number(token: Token) -> int | float:
    text = str(token)
    try:
        value: int | float = int(text)
    except ValueError:
        value = float(text)
        if not math.isfinite(value):
            raise _LineError(token.start_pos + 1, f"{text} is not a finite number") from None
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        raise _LineError(token.start_pos + 1, f"{text} is outside the signed 64-bit range")
    return value


def _month_day(text: str, column: int) -> tuple[int, int]:
    month, day = int(text[:2]), int(text[2:])
    try:
        date(2024, month, day)  # a leap year: 0229 is a valid day
    except ValueError:
        raise _LineError(column, f"{text} is not a valid month and day (MMDD)") from None
    return month, day


class _Build(lark.Transformer):
    """Builds `syntax` nodes while lark reduces (no intermediate tree)."""

    # -- names and values --------------------------------------------------------------------
    def name(self, items: list[Token]) -> Token:
        token = items[0]
        if token.type == "STRING":
            text = _unquote(token)
            if not text:
                raise _LineError(token.start_pos + 1, "a name cannot be empty")
            return token.update(value=text)
        return token

    uiname = name

    def number(self, items: list[Token]) -> s.Literal:
        return s.Literal(*_span(*items), _number(items[0]))

    def string(self, items: list[Token]) -> s.Literal:
        return s.Literal(*_span(*items), _unquote(items[0]))

    def word(self, items: list[Token]) -> s.Literal:
        return s.Literal(*_span(*items), str(items[0]), bare=True)

    def true(self, items: list[Token]) -> s.Literal:
        return s.Literal(*_span(*items), True)

    def false(self, items: list[Token]) -> s.Literal:
        return s.Literal(*_span(*items), False)

    def null(self, items: list[Token]) -> s.Literal:
        return s.Literal(*_span(*items), None)

    def var_ref(self, items: list[Token]) -> s.PointRef:
        return s.PointRef(*_span(*items), "ui", str(items[0]))

    def io_ref(self, items: list[Token]) -> s.PointRef:
        return s.PointRef(*_span(*items), "io", str(items[1]))

    def ui_ref(self, items: list[Token]) -> s.PointRef:
        return s.PointRef(*_span(*items), "ui", str(items[1]))

    def event_ref(self, items: list[Token]) -> s.EventRef:
        text = str(items[0])
        match = re.fullmatch(r"%event(?:\.([A-Za-z]+)(?:\[(\d+)\])?)?", text)
        assert match is not None  # the terminal's own pattern
        part = (match.group(1) or "").lower()
        if part and part not in s.EVENT_PARTS:
            close = difflib.get_close_matches(part, s.EVENT_PARTS, n=1)
            hint = f"; did you mean %event.{close[0]}?" if close else ""
            raise _LineError(items[0].start_pos + 1, f"unknown event part %event.{part}{hint}")
        index = int(match.group(2)) if match.group(2) is not None else None
        if index is not None and (part != "data" or index > 511):
            raise _LineError(items[0].start_pos + 1, "only %event.data[n] takes an index 0-511")
        return s.EventRef(*_span(*items), part, index)

    # -- events ------------------------------------------------------------------------------
    def _compare(self, items: list[Any]) -> tuple[str | None, s.Value | None]:
        if len(items) > 2:
            return str(items[2]), items[3]
        return None, None

    def io_event(self, items: list[Any]) -> s.PointEvent:
        op, value = self._compare(items)
        return s.PointEvent(*_span(*items), "io", str(items[1]), op, value)

    def ui_event(self, items: list[Any]) -> s.PointEvent:
        op, value = self._compare(items)
        return s.PointEvent(*_span(*items), "ui", str(items[1]), op, value)

    def user_event(self, items: list[Any]) -> s.PointEvent:
        value = items[3] if len(items) > 2 else None
        return s.PointEvent(*_span(*items), "ui", str(items[1]), None, value, user=True)

    def time_event(self, items: list[Token]) -> s.TimeEvent:
        hhmm = weekdays = dates = None
        for token in items:
            if token.type == "TIMEVAL":
                hhmm = token
            elif token.type == "WEEKDAYS":
                weekdays = token
            elif token.type == "DATES":
                dates = token
        assert hhmm is not None
        text = str(hhmm)
        hour, minute = int(text[:2]), int(text[2:4])
        second = int(text[4:6]) if len(text) == 6 else 0
        if hour > 23 or minute > 59 or second > 59:
            raise _LineError(hhmm.start_pos + 1, f"{text} is not a time of day (hhmm or hhmmss)")
        days = s.weekdays(str(weekdays)) if weekdays is not None else None
        span = None
        if dates is not None:
            first, _, last = str(dates).partition("-")
            col = dates.start_pos + 1
            span = (_month_day(first, col), _month_day(last or first, col))
        return s.TimeEvent(*_span(*items), hour, minute, second, days, span)

    def _sun(self, items: list[Token], kind: str) -> s.SunEvent:
        offset = int(str(items[1])) if len(items) > 1 else 0
        if abs(offset) > 720:
            raise _LineError(items[1].start_pos + 1, "a sun offset is at most ±720 minutes")
        return s.SunEvent(*_span(*items), kind, offset)

    def day_event(self, items: list[Token]) -> s.SunEvent:
        return self._sun(items, "day")

    def night_event(self, items: list[Token]) -> s.SunEvent:
        return self._sun(items, "night")

    def start_event(self, items: list[Token]) -> s.SystemEvent:
        return s.SystemEvent(*_span(*items), "start")

    def init_event(self, items: list[Token]) -> s.SystemEvent:
        return s.SystemEvent(*_span(*items), "init")

    def timer_event(self, items: list[Token]) -> s.TimerEvent:
        return s.TimerEvent(*_span(*items), str(items[1]))

    def vnum(self, items: list[Token]) -> Token:
        return items[0]

    def vfields(self, items: list[Token]) -> list[Token]:
        return items

    def _vscp_number(self, token: Token, limit: int, what: str) -> int | None:
        if token.type == "STAR":
            return None
        value = int(str(token), 0)
        if value > limit:
            raise _LineError(token.start_pos + 1, f"a VSCP {what} is at most {limit:#x}")
        return value

    def _guid(self, token: Token | None) -> bytes | None:
        if token is None or str(token) == "-":
            return None
        return bytes(int(part, 16) for part in str(token).split(":"))

    def vscp_event(self, items: list[Token]) -> s.VscpEvent:
        cls = self._vscp_number(items[1], 0xFFFF, "class")
        typ = self._vscp_number(items[2], 0xFFFF, "type")
        guid = self._guid(items[3] if len(items) > 3 else None)
        filt = (0, cls or 0, typ or 0, guid or bytes(16))
        mask = (
            0,
            0xFFFF if cls is not None else 0,
            0xFFFF if typ is not None else 0,
            bytes([0xFF] * 16) if guid is not None else bytes(16),
        )
        return s.VscpEvent(*_span(*items), filt, mask)

    def _fields(self, tokens: list[Token]) -> tuple[int, int, int, bytes]:
        values = [
            self._vscp_number(t, lim, what) or 0
            for t, lim, what in zip(
                tokens[:3], (7, 0xFFFF, 0xFFFF), ("priority", "class", "type"), strict=True
            )
        ]
        guid = self._guid(tokens[3] if len(tokens) > 3 else None) or bytes(16)
        return values[0], values[1], values[2], guid

    def vscp_filter_event(self, items: list[Any]) -> s.VscpEvent:
        return s.VscpEvent(*_span(*items), self._fields(items[2]), self._fields(items[4]))

    def not_(self, items: list[Any]) -> s.Not:
        return s.Not(*_span(*items), items[1])

    def and_(self, items: list[Any]) -> s.And:
        return s.And(*_span(*items), items[0], items[2])

    def or_(self, items: list[Any]) -> s.Or:
        return s.Or(*_span(*items), items[0], items[2])

    # -- actions -----------------------------------------------------------------------------
    def io_action(self, items: list[Any]) -> s.WriteAction:
        names = tuple(str(t) for t in items[1:-2])
        return s.WriteAction(*_span(*items), "io", names, items[-1])

    def ui_action(self, items: list[Any]) -> s.WriteAction:
        names = tuple(str(t) for t in items[1:-2])
        return s.WriteAction(*_span(*items), "ui", names, items[-1])

    def var_action(self, items: list[Any]) -> s.WriteAction:
        return s.WriteAction(*_span(*items), "ui", (str(items[0]),), items[-1])

    def timer_action(self, items: list[Token]) -> s.TimerAction:
        seconds = _number(items[4])
        if not 0 < seconds <= MAX_TIMER_SECONDS:
            raise _LineError(
                items[4].start_pos + 1,
                f"a timer runs for more than 0 and at most {MAX_TIMER_SECONDS} s",
            )
        return s.TimerAction(*_span(*items), str(items[1]), str(items[3]).lower(), float(seconds))

    def timer_clear(self, items: list[Token]) -> s.TimerAction:
        return s.TimerAction(*_span(*items), str(items[1]), "clear", 0.0)

    def log_action(self, items: list[Any]) -> s.LogAction:
        return s.LogAction(*_span(*items), items[-1])

    def vscp_action(self, items: list[Any]) -> s.VscpAction:
        return s.VscpAction(*_span(*items), str(items[2]), items[3])

    def actions(self, items: list[Any]) -> list[Any]:
        return items

    def start(self, items: list[Any]) -> tuple[Any, list[Any]]:
        return items[0], items[-1]


_BUILD = _Build()
_PARSER = lark.Lark.open(
    str(Path(__file__).with_name("grammar.lark")),
    parser="lalr",
    transformer=_BUILD,
    propagate_positions=False,
    cache=False,
)


_PUNCTUATION = {"EQ": "=", "COLON": ":", "LPAR": "(", "RPAR": ")", "COMMA": ",", "OP": "<, >, !="}


def _describe_expected(expected: set[str]) -> str:
    names = sorted(e for e in expected if e not in _PUNCTUATION and not e.startswith("__"))
    extra = [f"'{c}'" for e, c in _PUNCTUATION.items() if e in expected]
    names = extra + names
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


def _syntax_message(exc: LarkError, text: str) -> tuple[int, str]:
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        column = token.column if isinstance(token.column, int) else len(text) + 1
        if token.type == "$END":
            return len(
                text
            ) + 1, f"the rule ends early; expected {_describe_expected(exc.expected)}"
        word = str(token)
        if re.fullmatch(r"[A-Za-z]+", word) and word.upper() not in KEYWORDS:
            close = difflib.get_close_matches(word.upper(), KEYWORDS, n=1, cutoff=0.6)
            if close:
                return column, f"unknown keyword {word!r}; did you mean {close[0]}?"
        if ":" not in text and "COLON" in exc.expected:
            return column, "a rule is `event : actions`; this line has no ':'"
        return column, (
            f"unexpected {printable(word)!r}; expected {_describe_expected(exc.expected)}"
        )
    if isinstance(exc, UnexpectedCharacters):
        column = exc.column if isinstance(exc.column, int) else 1
        char = text[exc.pos_in_stream] if 0 <= exc.pos_in_stream < len(text) else "?"
        rest = re.match(r"[A-Za-z]+", text[exc.pos_in_stream :])
        if rest and rest.group().upper() not in KEYWORDS:
            close = difflib.get_close_matches(rest.group().upper(), KEYWORDS, n=1, cutoff=0.6)
            if close:
                return column, f"unknown keyword {rest.group()!r}; did you mean {close[0]}?"
            return column, f"unexpected {rest.group()!r}"
        return column, f"unexpected character {printable(char)!r}"
    if isinstance(exc, UnexpectedEOF):
        return len(text) + 1, "the rule ends early"
    return 1, f"cannot parse this rule ({type(exc).__name__})"


def parse_line(text: str, file: str = "<rules>", line: int = 1, *, fast: bool = True) -> s.Rule:
    """Parse one rule line (without its newline); raise `RulesError` with one diagnostic.

    The common shapes go through `fastparse` (10x quicker), the rest and every error through
    lark; ``fast=False`` uses lark alone (to compare them)."""
    try:
        if len(text) > MAX_LINE:
            raise _LineError(MAX_LINE, f"a rule is at most {MAX_LINE} characters long")
        if "\n" in text or "\r" in text:
            raise _LineError(1, "a rule is one line")
        parsed = parse_fast(text) if fast else None
        event, actions = parsed if parsed is not None else _PARSER.parse(text)
    except _LineError as exc:
        raise RulesError([Diagnostic(file, line, exc.column, exc.message)]) from None
    except lark.exceptions.VisitError as exc:  # a _LineError raised inside a callback
        inner = exc.orig_exc
        if isinstance(inner, _LineError):
            raise RulesError([Diagnostic(file, line, inner.column, inner.message)]) from None
        raise RulesError([Diagnostic(file, line, 1, f"cannot parse this rule: {inner}")]) from None
    except LarkError as exc:
        column, message = _syntax_message(exc, text)
        raise RulesError([Diagnostic(file, line, column, message)]) from None
    return s.Rule(file, line, text.strip(), event, tuple(actions), id=f"{file}:{line}")


_BLANK = re.compile(r"\s*(#.*)?")


def parse_text(text: str, file: str = "<rules>") -> list[s.Rule]:
    """Every rule of an events file's text; raise `RulesError` listing every problem."""
    rules, problems = parse_lines(text, file)
    if problems:
        raise RulesError(problems)
    return rules


_CONTINUED = re.compile(r',\s*(#[^"]*)?$')
"""A line whose actions end with a comma goes on in the next line (as HSYCO's manuals
write long rules: ``TIME 0000 : IO ssh.put = "a b",`` then ``IO ssh.put = "c d"``)."""


def _logical_lines(text: str):
    """``(first line number, text, [(offset, line number)...])`` of each rule, joining
    continued lines with a space; the offsets map a column back to its physical line."""
    pending: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not pending and _BLANK.fullmatch(line):
            continue
        pending.append((number, line))
        if _CONTINUED.search(line) and ":" in pending[0][1] and len(pending) < 1000:
            continue
        yield _join(pending)
        pending = []
    if pending:
        yield _join(pending)


def _join(parts: list[tuple[int, str]]) -> tuple[int, str, list[tuple[int, int]]]:
    offsets, texts, at = [], [], 0
    for number, line in parts:
        offsets.append((at, number))
        texts.append(line)
        at += len(line) + 1
    return parts[0][0], " ".join(texts), offsets


def parse_lines(
    text: str, file: str = "<rules>", *, fast: bool = True
) -> tuple[list[s.Rule], list[Diagnostic]]:
    """The rules of the lines that parse, and the problems of those that do not."""
    rules: list[s.Rule] = []
    problems: list[Diagnostic] = []
    for number, line, offsets in _logical_lines(text):
        try:
            rules.append(parse_line(line, file, number, fast=fast))
        except RulesError as exc:
            for d in exc.diagnostics:
                start, physical = max((o for o in offsets if o[0] < d.column), default=(0, number))
                problems.append(Diagnostic(file, physical, d.column - start, d.message))
    return rules, problems
