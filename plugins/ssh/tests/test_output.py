"""How command output becomes point values: <br> joining, lines, the cap."""

from __future__ import annotations

from ioplex_ssh.commands import Output, join_lines


def test_join_lines():
    assert join_lines("") == ""
    assert join_lines("\n") == ""
    assert join_lines("one") == "one"
    assert join_lines("one\ntwo\n") == "one<br>two"
    assert join_lines("one\r\ntwo\r\n") == "one<br>two"
    assert join_lines("a\n\nb\n") == "a<br><br>b"


def test_collected_output_is_capped_and_decoded_across_chunks():
    out = Output(limit=8)
    euro = "€".encode()  # three bytes, split across chunks
    out.feed(b"ab" + euro[:1])
    out.feed(euro[1:] + b"\ncdefgh")
    out.finish()
    assert out.text == "ab€<br>cd"
    assert out.dropped == len(b"ab" + euro + b"\ncdefgh") - 8


def test_line_mode_emits_complete_lines_and_flushes_the_last():
    lines: list[str] = []
    out = Output(limit=1000, on_line=lines.append)
    out.feed(b"first\nsec")
    assert lines == ["first"]
    out.feed(b"ond\r\nthird")
    assert lines == ["first", "second"]
    out.finish()
    out.finish()  # idempotent
    assert lines == ["first", "second", "third"]
    assert out.text == ""


def test_line_mode_emits_a_line_without_end_once_past_the_limit():
    lines: list[str] = []
    out = Output(limit=4, on_line=lines.append)
    out.feed(b"ab")
    assert lines == []
    out.feed(b"cdefghij")
    assert lines == ["abcdefghij"]  # memory stays bounded by limit + one chunk
