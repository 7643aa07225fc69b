"""Hostile servers against the link driver's client side: property-based fuzzing of what
`LinkClient` reads (the banner, replies to USER/PASS, VERS, CHID, SFLT/SMSK, ``+OK``/``-OK``
lines, SEND answers) and of what the receive loop takes (`Link._take`: any line, event lines
of measurement classes with any data), plus a real link against a hostile server on loopback.

Whatever the remote sends, only `LinkError` (and its `CommandError`) escapes the client, the
remote's words reach the log escaped, every value the link stores passes the kernel's value
contract, and the link reconnects with backoff and heals once the server behaves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.from_thread
import ioplex
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex import State
from ioplex.points import check_value
from ioplex_vscp_link.client import MAX_LINE, CommandError, LinkClient, LinkError
from ioplex_vscp_link.measurement import MEASUREMENT_CLASSES

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- what a remote may send ---------------------------------------------------------------------
STATUS = st.sampled_from(
    [
        b"+OK - Success.\r\n",
        b"+OK\r\n",
        b"-OK - Error\r\n",
        b"-OK - Invalid username or password.\r\n",
        b"+OK - Receive loop entered. QUITLOOP to terminate.\r\n",
        b"+O",
        b"-OK \x1b[31m\x00\r\r\n",
    ]
)
LINE = st.one_of(
    STATUS,
    st.binary(max_size=60).map(lambda b: b + b"\r\n"),
    st.binary(max_size=60).map(lambda b: b + b"\n"),
    st.sampled_from(
        [
            b"42\r\n",
            b"-7\r\n",
            b"abc\r\n",
            b"9" * 5000 + b"\r\n",
            b"\xff\xfe\xfd\r\n",
            b"0,10,6,0,,,-,0x88,0x81,0x00,0xEB\r\n",
            b"15.1.1\r\n",
            b"\r\n",
            b"x" * (MAX_LINE + 10) + b"\r\n",  # overlong
        ]
    ),
)
CHUNKS = (
    st.lists(LINE, max_size=12)
    .flatmap(
        lambda lines: st.tuples(st.just(b"".join(lines)), st.lists(st.integers(1, 200), max_size=6))
    )
    .map(lambda t: _split(*t))
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` in chunks as TCP may deliver it (interleavings of lines and reads)."""
    chunks, at = [], 0
    for cut in cuts:
        if at + cut >= len(data):
            break
        chunks.append(data[at : at + cut])
        at += cut
    return [*chunks, data[at:]] if data[at:] else chunks


class _Sink:
    """The sending half: records what the client wrote."""

    def __init__(self) -> None:
        self.sent = b""

    async def send(self, data: bytes) -> None:
        self.sent += data

    async def aclose(self) -> None:
        pass


async def _client(chunks: list[bytes]) -> LinkClient:
    tx, rx = anyio.create_memory_object_stream[bytes](len(chunks) + 1)
    for chunk in chunks:
        tx.send_nowait(chunk)
    tx.close()  # then the remote closes the connection
    return LinkClient(_Sink(), 5.0, "127.0.0.1:1", BufferedByteReceiveStream(rx))


def _escaped(text: str) -> None:
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text), repr(text)


async def _exercise(client: LinkClient, operation: str) -> None:
    try:
        if operation == "banner":
            client.banner = await client.reply("connect")
        elif operation == "login":
            await client.login("admin", "s3cret-pw")
        elif operation == "chid":
            assert isinstance(await client.channel_id(), int)
        elif operation in ("vers", "sflt", "rcvloop", "noop"):
            await client.command(operation.upper())
        else:
            window = 1 if operation == "send1" else 4
            answers: list[str | None] = []
            lines = ["0,20,3,0,,,-,1"] * 3
            await client.send_events(lines, lambda i, r: answers.append(r), window)
            assert len(answers) == 3
            for refusal in answers:
                if refusal is not None:
                    _escaped(refusal)
    except CommandError as exc:
        _escaped(str(exc))
        assert "s3cret-pw" not in str(exc)
    except LinkError as exc:
        assert "s3cret-pw" not in str(exc)
        assert len(str(exc)) < 1000


@FUZZ
@given(
    CHUNKS,
    st.sampled_from(
        ["banner", "login", "chid", "vers", "sflt", "rcvloop", "noop", "send1", "send4"]
    ),
)
def test_replies_raise_only_link_errors(chunks: list[bytes], operation: str) -> None:
    async def main() -> None:
        client = await _client(chunks)
        await _exercise(client, operation)

    anyio.run(main)


def test_an_endless_reply_is_bounded() -> None:
    """A reply that never ends (no +OK, lines forever) stops at MAX_REPLY bytes."""

    async def main() -> None:
        line = b"y" * 1000 + b"\r\n"
        client = await _client([line] * 2000)
        with pytest.raises(LinkError, match="reply without an end"):
            await client.reply("VERS")

    anyio.run(main)


# -- what the receive loop takes ----------------------------------------------------------------
def _config(port: int, **options: Any) -> dict[str, Any]:
    return {
        "ioservers": {
            "vscp": {
                "plugin": "vscp_link",
                "address": "127.0.0.1",
                "port": port,
                "user": "admin",
                "password": "secret",
                "options": {"response_timeout": 2.0, "connect_timeout": 2.0, **options},
            }
        }
    }


@pytest.fixture(scope="module")
def receiving(tmp_path_factory: Any) -> Iterator[tuple[Any, Any]]:
    """A host whose link is never connected (nothing listens on its port), running in a
    portal thread, so each example calls the receive path on its event loop."""
    config = _config(1, max_points=50)
    config["host"] = {"data_dir": str(tmp_path_factory.mktemp("take")), "restart_delay": 1.0}
    plugins = ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "vscp_link"})
    host = ioplex.Host.from_config(config, plugins=plugins)
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(host),
    ):
        yield portal, host


EVENT_LINES = st.tuples(
    st.integers(0, 0xFFFF),
    st.sampled_from(sorted(MEASUREMENT_CLASSES)) | st.integers(0, 0xFFFF),
    st.integers(0, 0xFF),
    st.integers(0, 2**32),
    st.sampled_from(["", "2026-01-01T00:00:00Z", "garbage"]),
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=16),
).map(
    lambda t: (
        f"{t[0]},{t[1]},{t[2]},{t[3]},{t[4]},0,"
        + ":".join(f"{b:02X}" for b in t[5])
        + "".join(f",0x{b:02X}" for b in t[6])
    )
)


@FUZZ
@given(st.lists(EVENT_LINES | st.text(st.characters(max_codepoint=0xFF), max_size=80), max_size=8))
def test_the_receive_path_takes_any_line(receiving: tuple[Any, Any], lines: list[str]) -> None:
    portal, host = receiving
    link = host.ioservers["vscp"].driver
    for line in lines:
        portal.call(link._take, line)  # never raises: malformed lines are counted
    for point in host.points.match("vscp.*"):
        check_value(point.name, point.value, point.type, max_string=host.config.host.max_string)


# -- a real link against a hostile server ---------------------------------------------------------
OK = b"+OK - Success.\r\n"
GOOD_EVENT = b"0,10,6,0,,,FF:FF:FF:FF:FF:FF:FF:FE:00:00:00:00:00:00:00:01,0x88,0x81,0x00,0xEB\r\n"
HOSTILE = [
    b"\xff\xfe garbage banner without an end\r\n",  # then closed
    b"x" * (MAX_LINE + 100),  # an overlong line
    b"Welcome\r\n" + OK + b"\x00\x01\x02 not a status\r\n",  # USER never answered: closed
    None,  # a proper login, then every command refused with terminal escapes
    "loop",  # a proper login, then garbage in the receive loop, then closed
]


class HostileServer:
    """One behaviour per connection from HOSTILE while `hostile`; a proper server after."""

    def __init__(self) -> None:
        self.hostile = True
        self.connections = 0
        self.port = 0

    async def _proper(self, stream: Any, lines: BufferedByteReceiveStream, refuse: bool) -> None:
        await stream.send(b"Welcome to the VSCP daemon.\r\n" + OK)
        while True:
            command = (await lines.receive_until(b"\n", 4096)).strip().upper()
            if refuse and not command.startswith((b"USER", b"PASS")):
                await stream.send(b"-OK - \x1b[2J\x00nope\r\n")
            elif command.startswith(b"RCVLOOP"):
                await stream.send(b"+OK - Receive loop entered. QUITLOOP to terminate.\r\n")
                return
            else:
                await stream.send(OK)

    async def _connection(self, stream: Any) -> None:
        n = self.connections
        self.connections += 1
        kind = HOSTILE[n % len(HOSTILE)] if self.hostile else "proper"
        lines = BufferedByteReceiveStream(stream)
        async with stream:
            with anyio.move_on_after(10), _quiet():
                if isinstance(kind, bytes):
                    await stream.send(kind)
                    await anyio.sleep(0.05)
                    return
                await self._proper(stream, lines, refuse=kind is None)
                if kind is None:
                    return
                if kind == "loop":
                    await stream.send(
                        b"+OK\r\n\xff\xfe\r\n0,10,6\r\n-OK - huh\r\n"
                        b"0,99999999999999999999,1,0,,,-,1\r\n" + GOOD_EVENT + b"\x00" * 50
                    )
                    return
                while True:  # proper: an event, then keep-alives
                    await stream.send(GOOD_EVENT)
                    await anyio.sleep(0.3)
                    await stream.send(b"+OK\r\n")

    async def serve(self, tg: Any) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(listener.serve, self._connection)


class _quiet:
    """The link may close first: the server's broken pipes are no failure of the test."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        return isinstance(
            exc, anyio.BrokenResourceError | anyio.EndOfStream | anyio.IncompleteRead | OSError
        )


@pytest.mark.anyio
async def test_a_link_survives_a_hostile_server_and_heals(
    tmp_path: Any, tools: Any, caplog
) -> None:
    caplog.set_level(logging.INFO)
    server = HostileServer()
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        host = tools.make_host(tmp_path, _config(server.port, direction="in", dead_after=5.0))
        async with host:
            io = host.ioservers["vscp"]
            link = io.driver
            with anyio.fail_after(30):
                while server.connections < 2 * len(HOSTILE):
                    await anyio.sleep(0.05)
            assert io.state is not State.FAILED
            assert link.stats["malformed"] >= 2  # the garbage event lines were counted
            text = caplog.text
            assert "Traceback" not in text
            for name in (
                "TypeError",
                "KeyError",
                "IndexError",
                "AttributeError",
                "UnicodeDecodeError",
            ):
                assert name not in text, text
            assert "\x1b" not in text and "\x00" not in text  # the remote's bytes escaped
            assert "sent a line longer than" in text and "closed the connection" in text
            assert "refused SFLT (-OK - \\u001b[2J\\u0000nope)" in text
            # rate-limited: each kind of failure is logged once, however often it repeats
            retries = [r for r in caplog.records if " retry " in r.getMessage()]
            assert len(retries) <= len(HOSTILE) + 3, [r.getMessage() for r in retries]
            # the server behaves again: the link heals by itself
            server.hostile = False
            await host.wait_online("vscp", timeout=15)
            name = "vscp.FF:FF:FF:FF:FF:FF:FF:FE:00:00:00:00:00:00:00:01.temperature.0"
            with anyio.fail_after(10):
                while name not in host.points or host.points[name].value != 23.5:
                    await anyio.sleep(0.05)
            for point in host.points.match("vscp.*"):
                check_value(point.name, point.value, point.type)
        tg.cancel_scope.cancel()
