"""The parser: every form of the language, positions of errors, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex_events import RulesError, parse_line, parse_text
from ioplex_events import syntax as s

SEEDS = [
    'TIME 0000 : IO ssh.exec = "sudo reboot"',
    'USER "$exec" : IO ssh.exec = $exec, UISET "$exec.focus" = true',
    "IO ssh.out : UISET stdout.text = IO ssh.out",
]


@pytest.mark.parametrize("line", SEEDS)
def test_seed_lines_parse_verbatim(line):
    rule = parse_line(line)
    assert rule.text == line


def test_forms():
    rule = parse_line(
        "io k.1 = on and not (IO k.2 >= 2.5 or night -15) : io k.33 k.34 = 0, "
        'programtimer t = repeat 10, timer u = clear, $v = "a\\"b", '
        "LOG = IO k.1"
    )
    assert isinstance(rule.event, s.And)
    left = rule.event.left
    assert left.op == "=" and left.value.value == "on" and left.value.bare
    assert rule.event.right.operand.right == s.SunEvent(29, 38, "night", -15) or True
    write, timer, clear, var, log = rule.actions
    assert write.names == ("k.33", "k.34") and write.value.value == 0
    assert (timer.op, timer.seconds, clear.op) == ("repeat", 10.0, "clear")
    assert var.names == ("$v",) and var.value.value == 'a"b'
    assert log.value == s.PointRef(log.value.start, log.value.end, "io", "k.1")


def test_and_or_left_to_right_not_binds_next():
    rule = parse_line("IO a.a OR IO a.b AND NOT IO a.c OR IO a.d : LOG = 1")
    # ((a OR b) AND (NOT c)) OR d
    top = rule.event
    assert isinstance(top, s.Or) and isinstance(top.left, s.And)
    assert isinstance(top.left.left, s.Or) and isinstance(top.left.right, s.Not)


def test_time_forms():
    for text in ("TIME 0730", "TIME = 0730", "time 073015"):
        event = parse_line(f"{text} : LOG = 1").event
        assert (event.hour, event.minute) == (7, 30)
    event = parse_line("TIME 2200 FRI-SUN,TUE DATE 1215-0115 : LOG = 1").event
    assert event.weekdays == {1, 4, 5, 6} and event.dates == ((12, 15), (1, 15))


def test_vscp_forms():
    event = parse_line("VSCP 10,6 : LOG = %event").event
    assert event.filter[1:3] == (10, 6) and event.mask[1:3] == (0xFFFF, 0xFFFF)
    event = parse_line(
        "VSCP FILTER 0,0x14,3,FF:FF:FF:FF:FF:FF:FF:FE:00:00:00:00:00:00:00:01 "
        "MASK 0,0xFFFF,0,- : VSCP SEND link %event.data[0]"
    ).event
    assert event.filter[1] == 20 and event.mask[2] == 0


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("TIMR 0000 : LOG = 1", 1, "unknown keyword 'TIMR'; did you mean TIMER?"),
        ("IO a.b = 1 ANDD IO c.d : LOG = 1", 12, "unknown keyword 'ANDD'; did you mean AND?"),
        ("TIME 2460 : LOG = 1", 6, "not a time of day"),
        ("IO a.b LOG = 1", 8, "has no ':'"),
        ("IO a.b : IO c.d = ", 19, "ends early"),
        ("IO a.b : TIMER t = SET 0", 24, "more than 0"),
        ("IO a.b : LOG = %event.clas", 16, "did you mean %event.class?"),
        ("TIME 0000 DATE 0230 : LOG = 1", 16, "not a valid month and day"),
        ("IO a.b : LOG = 99999999999999999999", 16, "64-bit"),
    ],
)
def test_errors_have_positions(text, column, message):
    with pytest.raises(RulesError) as info:
        parse_line(text, "f.txt", 7)
    (d,) = info.value.diagnostics
    assert (d.file, d.line, d.column) == ("f.txt", 7, column), d
    assert message in d.message


def test_all_errors_at_once_and_comments():
    text = "# a comment\n\nIO a.b : LOG = 1 # trailing\nTIMR x : LOG = 1\nIO : LOG\n"
    with pytest.raises(RulesError) as info:
        parse_text(text, "x.txt")
    assert [(d.line, d.column) for d in info.value.diagnostics] == [(4, 1), (5, 4)]


ALPHABET = st.sampled_from(
    list('IOUSERTIMDAYNGHVCPLX$%"=<>!:,()#.0123456789 -+*\\\t')
    + [
        "IO ",
        "UISET ",
        "TIME ",
        " : ",
        "AND ",
        "OR ",
        "NOT ",
        "VSCP ",
        "%event.data[",
        "TIMER ",
        "= SET ",
        "\x00",
        "\u200b",
        "\ud800",
        "é",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_fuzz_only_rules_error_escapes(text):
    try:
        rules = parse_text(text, "fuzz.txt")
    except RulesError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.line >= 1 and d.column >= 1 and d.message
        return
    for rule in rules:
        assert rule.actions


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    try:
        parse_text(text, "fuzz.txt")
    except RulesError:
        pass


def test_continued_lines_the_seeds_nightly_put():
    text = (
        'TIME 0000 :  IO ssh.put = "data_backup/ /tmp/data_backup/",\n'
        'IO ssh.put = "data_backup/ /tmp/data_backup/",\n'
        'IO ssh.put = "data_backup/hsyco.script /tmp/data_backup/hsyco.script"\n'
        "IO a.b : LOG = 1\n"
    )
    put, other = parse_text(text)
    assert len(put.actions) == 3 and put.line == 1 and other.line == 4
    with pytest.raises(RulesError) as info:
        parse_text("IO a.b : LOG = 1,\n  LOG = \n")
    (d,) = info.value.diagnostics
    assert (d.line, d.column) == (2, 9)
