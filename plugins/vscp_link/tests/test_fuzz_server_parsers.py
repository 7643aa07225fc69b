"""Property-based fuzzing of every parser the server interface feeds with client input.

Only the documented error type (ValueError) may escape a parser, and the command dispatcher
answers every non-blank line with one status reply, whatever the bytes: no exception, no
``-OK - Error`` from the last-resort guard (which would mean a parser raised something else).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import ioplex_vscp_link as vscp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex.serving import OutputBudget
from ioplex_vscp_link import measurement_command, wire
from ioplex_vscp_link.event import Event, format_line, parse_datetime, parse_line
from ioplex_vscp_link.filter import parse_fields
from ioplex_vscp_link.guid import format_guid, parse_guid
from ioplex_vscp_link.number import read_bounded, read_value
from ioplex_vscp_link.server import Server
from ioplex_vscp_link.session import Close, Session

SCHEMA = Path(vscp.__file__).parent / "settings.schema.json"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as the server sees it: a line of bytes decoded as Latin-1.
latin1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=120)
tokens = st.sampled_from(
    [
        "",
        "-",
        "0",
        "08",
        "0x",
        "0x1F",
        "0X1f",
        "0b101",
        "0o17",
        "-1",
        "+5",
        "1e3",
        "1_0",
        "99999999999999999999999",
        "²",
        "٣",
        " 7 ",
        "0xFFFFFFFFFFFFFFFFFF",
        "nan",
        "inf",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-01-10T12:00:01Z",
        "2026-13-40T25:61:61",
        "FF:FF:FF:FF:FF:FF:FF:FE:00:11:22:33:00:03:00:00",
        "{-}",
        "FFFFFFFF-FFFF-FFFF-0102-03AABB440130",
        "::1",
        "0:" * 16,
        "float",
        "string",
        "level1",
        "level2",
        "23.5",
        "-1e308",
        "1e-400",
        ".5",
        "5.",
    ]
)
fields = st.lists(st.one_of(tokens, latin1), max_size=20).map(",".join)


def _only_value_error(parse: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return parse(*args, **kwargs)
    except ValueError:
        return None


@FUZZ
@given(st.one_of(fields, latin1))
def test_event_lines(text: str) -> None:
    event = _only_value_error(parse_line, text)
    if event is not None:  # whatever was read writes out and reads back the same
        again = parse_line(format_line(event))
        assert (again.vscp_class, again.vscp_type, again.data, again.guid, again.obid) == (
            event.vscp_class,
            event.vscp_type,
            event.data,
            event.guid,
            event.obid,
        )
        assert again.datetime == event.datetime


events = st.builds(
    Event,
    vscp_class=st.integers(0, 0xFFFF),
    vscp_type=st.integers(0, 0xFFFF),
    data=st.binary(max_size=512),
    guid=st.binary(min_size=16, max_size=16),
    head=st.integers(0, 0xFFFF).map(lambda h: h & ~0x0300),
    obid=st.integers(0, 0xFFFF_FFFF),
    timestamp=st.integers(0, 0xFFFF_FFFF),
    datetime=st.none()
    | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
)


@FUZZ
@given(events)
def test_every_event_round_trips(event: Event) -> None:
    assert parse_line(event.line()) == event


@FUZZ
@given(
    st.one_of(
        tokens,
        latin1,
        st.lists(st.sampled_from(["ff", "0", "A", "1ff", ""]), max_size=18).map(":".join),
    )
)
def test_guids(text: str) -> None:
    guid = _only_value_error(parse_guid, text)
    if guid is not None:
        assert len(guid) == 16 and parse_guid(format_guid(guid)) == guid


@FUZZ
@given(fields, st.booleans())
def test_filters_and_masks(text: str, complete: bool) -> None:
    got = _only_value_error(parse_fields, text, complete=complete)
    if got is not None:
        assert parse_fields(got.text(), complete=True) == got


@FUZZ
@given(st.one_of(tokens, latin1), st.integers(0, 2**64))
def test_numbers(text: str, maximum: int) -> None:
    _only_value_error(read_value, text)
    value = _only_value_error(read_bounded, text, "x", maximum)
    if value is not None:
        assert 0 <= value <= maximum


@FUZZ
@given(st.integers(-(2**70), 2**70))
def test_numbers_read_back_as_written(value: int) -> None:
    assert read_value(str(value)) == value
    if value >= 0:
        assert read_value(f"0x{value:x}") == read_value(f"0b{value:b}") == value


@FUZZ
@given(
    st.one_of(
        tokens,
        latin1,
        st.datetimes(
            timezones=st.none()
            | st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
        ).map(datetime.isoformat),
    )
)
def test_datetimes(text: str) -> None:
    when = _only_value_error(parse_datetime, text)
    if when is not None:
        assert when.tzinfo is UTC and 1 <= when.year <= 9999


@FUZZ
@given(fields, st.binary(min_size=16, max_size=16))
def test_measurement_commands(text: str, own: bytes) -> None:
    event = _only_value_error(measurement_command.build, text, own)
    if event is not None:
        assert event.vscp_class in (10, 522, 1040, 1060)
        assert len(event.data) <= (8 if event.vscp_class == 10 else 512)


# --- the dispatcher --------------------------------------------------------------------------


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: spec.get("default") for key, spec in schema["properties"].items()}


class _Ticket:
    """An admission ticket without an event loop (what the dispatcher uses of one)."""

    budget = OutputBudget(1 << 40)

    def authenticated(self) -> None:
        pass


class _Tasks:
    """Stands in for the session's task group: the receive loop's writer is not run here."""

    def start_soon(self, *args: Any, **kwargs: Any) -> None:
        pass


def _session() -> Session:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))["properties"]["server"]
    settings_ = _defaults(schema)
    settings_.update(
        users=[
            {
                "name": "admin",
                "password": "secret",
                "send": True,
                "receive": True,
                "set_filter": True,
                "set_guid": True,
                "filter": "",
                "mask": "",
            }
        ],
        listen="127.0.0.1:0",
    )
    server = Server(settings_, publish=lambda event: None, channels=iter(range(1, 10**9)).__next__)
    session = Session(server, None, 1, "127.0.0.1:1", _Ticket(), "127.0.0.1")  # type: ignore[arg-type]
    session._tg = _Tasks()
    return session


WORDS = [word for word, _ in wire.COMMAND_ORDER] + ["+", "++", "+3", "X", "send", "Measurement"]
command_lines = st.one_of(
    latin1,
    st.tuples(
        st.sampled_from(WORDS),
        st.sampled_from(["", " ", "\t", "x", "  "]),
        st.one_of(fields, latin1),
    ).map("".join),
)


def _answer(session: Session, line: str) -> bytes:
    try:
        reply = session.handle(line.strip())
    except Close as close:
        reply = close.reply
        session.username = None
    assert isinstance(reply, bytes)
    return reply


@FUZZ
@given(st.lists(command_lines, min_size=1, max_size=8), st.booleans())
def test_the_dispatcher_answers_every_line(lines: list[str], logged_in: bool) -> None:
    session = _session()
    if logged_in:
        assert _answer(session, "USER admin") == wire.USERNAME_OK
        assert _answer(session, "PASS secret") == wire.OK
    for line in lines:
        reply = _answer(session, line)
        assert reply != wire.ERROR, line  # the guard caught something that was not ValueError
        if session.in_loop:  # in the receive loop only +OK lines, or nothing
            assert reply == b"" or all(x.startswith(b"+OK") for x in reply.split(b"\r\n")[:-1]), (
                line,
                reply,
            )
        elif line.strip():
            assert reply.endswith(b"\r\n"), (line, reply)
            status = reply.split(b"\r\n")[-2]
            assert status[:3] in (b"+OK", b"-OK"), (line, reply)


@FUZZ
@given(st.binary(max_size=300))
def test_the_dispatcher_takes_any_bytes(data: bytes) -> None:
    session = _session()
    assert _answer(session, "USER admin") == wire.USERNAME_OK
    assert _answer(session, "PASS secret") == wire.OK
    for raw in data.split(b"\n"):
        line = raw.decode("latin-1").strip()
        reply = _answer(session, line)
        assert reply != wire.ERROR
        if line and not session.in_loop:
            assert reply.split(b"\r\n")[-2][:3] in (b"+OK", b"-OK")
