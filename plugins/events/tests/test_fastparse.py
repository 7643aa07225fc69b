"""The fast parser agrees with lark's: the same rules (nodes, offsets, value types) for every
line it accepts, and the same diagnostics for every file, on every rule of the tests, the
examples and the benchmark, on generated rules and on fuzzed text."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex_events.fastparse import parse_fast
from ioplex_events.language import RulesError, parse_line, parse_lines

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def both(text: str) -> tuple[str, str]:
    """repr of what each path gives for a file's text (repr: 1, 1.0 and True differ)."""
    return repr(parse_lines(text, "f.txt", fast=True)), repr(parse_lines(text, "f.txt", fast=False))


def agree_line(line: str) -> bool:
    """Both paths give the same rule or the same error; whether the fast one took it."""
    try:
        fast = repr(parse_line(line, "f.txt", 3))
    except RulesError as exc:
        fast = repr(exc.diagnostics)
    try:
        slow = repr(parse_line(line, "f.txt", 3, fast=False))
    except RulesError as exc:
        slow = repr(exc.diagnostics)
    assert fast == slow, line
    return parse_fast(line) is not None


def corpus() -> list[str]:
    """Every string in the tests, the example rules and the benchmark's files."""
    texts = []
    for path in HERE.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(node.value)
    texts += [p.read_text() for p in (ROOT / "examples" / "events").glob("*.txt")]
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_events import mixed_file, rules_text
    finally:
        sys.path.pop(0)
    texts += [mixed_file(200), rules_text(100, 1000)]
    return texts


def test_agree_on_every_test_file_example_and_benchmark_rule():
    taken = 0
    for text in corpus():
        fast, slow = both(text)
        assert fast == slow, text
        for line in text.splitlines():
            taken += agree_line(line)
    assert taken > 300  # the fast path does take the common rules


def test_fast_path_declines_what_it_leaves_to_lark():
    assert parse_fast("IO a.b : LOG = 1") is not None
    for line in (
        'IO a.b : LOG = "a\\"b"',
        "VSCP 10,6 : LOG = %event",
        "IO a.b : LOG = ",
        "TIME 2460 : LOG = 1",
        "IO.x : LOG = 1",
        "IO a.b = true.x : LOG = 1",
        'UISET "$a$b" = 1',
        "IO a.b : IO c.d = 99999999999999999999",
    ):
        assert parse_fast(line) is None, line
        agree_line(line)


# -- generated rules ----------------------------------------------------------------------------
def cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.lower(), word.capitalize()])


BLANK = st.sampled_from([" ", "  ", "\t", " \t "])
NAMES = st.sampled_from(
    [
        "a.b",
        "k.33",
        "vscp.FF:EE:01.temp.0",
        "d.light",
        "x",
        "ssh.exec",
        "a.b-c_d",
        "io.x",
        "$v",
        "a.b$c",
        "AND.x",
        "é.ü",
        "a.b*",
        "1.2",
    ]
)
QUOTED = st.sampled_from(['"a.b"', '"$exec.focus"', '"x y"', '""', '"a\\"b"', '"#"'])
VALUES = st.one_of(
    st.integers(-(1 << 64), 1 << 64).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1.5", ".5", "1e3", "-2", "+3", "1.", "0x10", "1e999", "1_0", "1#c"]),
    st.sampled_from(
        [
            "true",
            "FALSE",
            "Null",
            "on",
            "off",
            "AND",
            "set",
            "on.x",
            "o-n",
            "_w",
            "true.x",
            "ioo",
            "%event",
            "%event.data[2]",
            '"s"',
            '"a\\nb"',
            "$x",
            "$x$y",
        ]
    ),
    st.tuples(cased("IO"), BLANK, NAMES).map("".join),
    st.tuples(cased("UI"), BLANK, st.one_of(NAMES, QUOTED)).map("".join),
)
OPS = st.sampled_from(["=", "!=", ">", ">=", "<", "<=", "==", "=>"])
TIMES = st.sampled_from(["0000", "0730", "2359", "2400", "073015", "07301", "0760"])
DAYS = st.sampled_from(["", " MON-FRI", " sat,sun", " FRI-MON", " MONDAY", " mon,tue-thu"])
DATES = st.sampled_from(["", " DATE 1201-0228", " date 0229", " DATE 0230", " DATE 1301"])


@st.composite
def atoms(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["io", "ui", "user", "time", "sun", "sys", "timer"]))
    b = draw(BLANK)
    if kind in ("io", "ui"):
        name = draw(st.one_of(NAMES, QUOTED))
        text = f"{draw(cased(kind.upper()))}{b}{name}"
        if draw(st.booleans()):
            text += f"{draw(BLANK)}{draw(OPS)}{draw(BLANK)}{draw(VALUES)}"
        return text
    if kind == "user":
        text = f"{draw(cased('USER'))}{b}{draw(st.one_of(NAMES, QUOTED))}"
        if draw(st.booleans()):
            text += f" = {draw(VALUES)}"
        return text
    if kind == "time":
        eq = draw(st.sampled_from(["", "= ", "="]))
        return f"{draw(cased('TIME'))}{b}{eq}{draw(TIMES)}{draw(DAYS)}{draw(DATES)}"
    if kind == "sun":
        offset = draw(st.sampled_from(["", " +30", " -15", " +721", " -720", " 5"]))
        return f"{draw(st.sampled_from(['DAY', 'night']))}{offset}"
    if kind == "sys":
        return draw(st.sampled_from(["START", "hsycostart", "INIT", "STARTX"]))
    return f"{draw(st.sampled_from(['TIMER', 'programtimer']))}{b}{draw(NAMES)}"


def exprs(depth: int = 2) -> st.SearchStrategy[str]:
    if depth == 0:
        return atoms()
    inner = exprs(depth - 1)
    return st.one_of(
        atoms(),
        st.tuples(inner, st.sampled_from([" AND ", " or ", " And "]), inner).map("".join),
        inner.map(lambda e: f"NOT {e}"),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"( {e} )"),
    )


@st.composite
def actions(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["io", "uiset", "var", "timer", "log"]))
    value = draw(VALUES)
    if kind in ("io", "uiset"):
        names = draw(st.lists(st.one_of(NAMES, QUOTED), min_size=1, max_size=3))
        return f"{draw(cased(kind.upper()))} {' '.join(names)} = {value}"
    if kind == "var":
        return f"{draw(st.sampled_from(['$v', '$exec', '$a$b']))} = {value}"
    if kind == "timer":
        op = draw(st.sampled_from(["SET", "reset", "REPEAT", "CLEAR", "set"]))
        seconds = draw(st.sampled_from(["", " 10", " 0", " 2.5", " -1", " 1e12", " x"]))
        return f"TIMER {draw(NAMES)} = {op}{seconds if op.upper() != 'CLEAR' else ''}"
    return f"LOG = {value}"


RULES = st.tuples(
    exprs(),
    st.sampled_from([" : ", ":", " :", ": "]),
    st.lists(actions(), min_size=1, max_size=3).map(", ".join),
    st.sampled_from(["", " # note", "  ", "#x"]),
).map("".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RULES)
def test_agree_on_generated_rules(line):
    agree_line(line)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            list('IOUSERTIMDAYNGHLX$"=<>!:,()#.0123456789 -+\\\t')
            + [
                "IO ",
                "UISET ",
                "TIME ",
                " : ",
                "AND ",
                "OR ",
                "NOT ",
                "TIMER ",
                "= SET ",
                "LOG = ",
                "true",
                "MON",
                "DATE ",
                "é",
                "\x0b",
                "\u00a0",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_agree_on_fuzzed_text(text):
    fast, slow = both(text)
    assert fast == slow
