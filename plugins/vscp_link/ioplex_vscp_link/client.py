"""The client side of the link protocol, for the link driver and send-to-remote.

Every read has a timeout (`timeout`, the response timeout) and every line a length bound;
a ``-OK`` reply raises `CommandError`, a refused login `LoginError`. Messages name the
command but never its argument, so a password cannot end up in a log.

On the asyncio event loop (the host's) the connection is an asyncio stream pair under anyio's
cancel scopes: a one-in-flight link does a write and a read per event, and anyio's socket
stream adds an event-loop round trip to each write and re-arms the socket in epoll on each
read, which costs a third of the throughput against vscpd. Elsewhere it is anyio's stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Self

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from ioplex.points import printable

from . import wire
from .event import Event

MAX_LINE = 65536
"""Longest reply line read; a 512-byte event line is about 2,700 bytes."""
MAX_REPLY = 1 << 20
"""Most bytes of one reply's data lines (a banner, VERS, CHID: a few lines); past it the
remote is talking nonsense, and memory stays bounded whatever it sends."""


class LinkError(Exception):
    """The remote broke the protocol or refused a command."""


class ConnectionClosed(LinkError):
    """The remote closed the connection."""


class CommandError(LinkError):
    def __init__(self, command: str, reply: str) -> None:
        reply = printable(reply, 200)  # the remote's words go to the log: escaped, bounded
        super().__init__(f"{command} refused: {reply}")
        self.command = command
        self.reply = reply


class LoginError(CommandError):
    """USER/PASS refused: retrying soon with the same credentials cannot help (the link
    retries slowly: the remote may be fixed meanwhile)."""


class _AsyncioLines:
    """An asyncio stream pair with the two calls LinkClient uses of anyio's streams (`send`,
    `receive_until`, `aclose`), their errors mapped to anyio's. The reader's buffer is
    bounded (it stops reading from the socket past twice its limit)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, data: bytes) -> None:
        writer = self._writer
        if writer.is_closing():
            raise anyio.BrokenResourceError
        writer.write(data)
        if writer.transport.get_write_buffer_size() > 65536:  # only then wait for the peer
            try:
                await writer.drain()
            except ConnectionError as exc:
                raise anyio.BrokenResourceError from exc

    async def receive_until(self, delimiter: bytes, max_bytes: int) -> bytes:
        try:
            line = await self._reader.readuntil(delimiter)
        except asyncio.IncompleteReadError:
            raise anyio.IncompleteRead from None
        except asyncio.LimitOverrunError:
            raise anyio.DelimiterNotFound(max_bytes) from None
        except ConnectionError as exc:
            raise anyio.BrokenResourceError from exc
        if len(line) > max_bytes + len(delimiter):
            raise anyio.DelimiterNotFound(max_bytes)
        return line[: -len(delimiter)]

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def _connect(host: str, port: int) -> tuple[Any, Any]:
    """(stream, line reader) of a new connection: see the module's docstring."""
    try:
        asyncio.get_running_loop()
        on_asyncio = True
    except RuntimeError:  # another event loop (trio)
        on_asyncio = False
    if on_asyncio:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE + 2)
        lines = _AsyncioLines(reader, writer)
        return lines, lines
    stream = await anyio.connect_tcp(host, port)
    return stream, BufferedByteReceiveStream(stream)


class LinkClient:
    """One connection to a VSCP link server (`open` connects and reads the banner)."""

    def __init__(self, stream: Any, timeout: float, where: str, reader: Any = None) -> None:
        self.stream = stream
        self.reader = reader if reader is not None else BufferedByteReceiveStream(stream)
        self.timeout = timeout
        self.where = where
        self.banner: list[str] = []

    @classmethod
    async def open(
        cls, host: str, port: int, *, timeout: float, connect_timeout: float
    ) -> LinkClient:
        where = f"{host}:{port}"
        with anyio.fail_after(connect_timeout):
            stream, reader = await _connect(host, port)
        client = cls(stream, timeout, where, reader)
        try:
            client.banner = await client.reply("connect")
        except BaseException:
            await client.aclose()
            raise
        return client

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await self.stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- lines ----------------------------------------------------------------------------------
    async def readline(self, timeout: float | None = None) -> str:
        """The next line without its ending; TimeoutError after `timeout` (default: the
        response timeout) without one."""
        with anyio.fail_after(self.timeout if timeout is None else timeout):
            try:
                raw = await self.reader.receive_until(b"\n", MAX_LINE)
            except anyio.DelimiterNotFound:
                raise LinkError(f"{self.where} sent a line longer than {MAX_LINE} bytes") from None
            except anyio.IncompleteRead:
                raise ConnectionClosed(f"{self.where} closed the connection") from None
        return raw.decode("latin-1").rstrip("\r")

    async def send(self, data: bytes) -> None:
        with anyio.fail_after(self.timeout):
            await self.stream.send(data)

    async def reply(self, command: str) -> list[str]:
        """Read one reply: its data lines, up to ``+OK``; ``-OK`` raises CommandError."""
        lines: list[str] = []
        size = 0
        while True:
            line = await self.readline()
            if line.startswith("+OK"):
                return lines
            if line.startswith("-OK"):
                raise CommandError(command, line)
            lines.append(line)
            size += len(line) + 2
            if len(lines) > 100_000 or size > MAX_REPLY:
                raise LinkError(f"{self.where}: {command}: reply without an end")

    async def command(self, text: str) -> list[str]:
        """Send one command line and return its reply's data lines."""
        name = text.split(" ", 1)[0].upper()
        await self.send(text.encode("latin-1") + wire.CRLF)
        return await self.reply(name)

    # -- the link set ---------------------------------------------------------------------------
    async def login(self, user: str, password: str) -> None:
        try:
            await self.command(f"USER {user}")
        except CommandError as exc:
            raise LoginError(exc.command, exc.reply) from None
        try:
            await self.command(f"PASS {password}")
        except CommandError as exc:
            raise LoginError(exc.command, exc.reply) from None
        except ConnectionClosed as exc:
            # vscpd closes the connection right after refusing a password. Only there: a
            # remote that breaks before (or sends nonsense) is retried, not taken for a
            # refusal that stops the link for good.
            raise LoginError("PASS", str(exc)) from None

    async def channel_id(self) -> int:
        lines = await self.command("CHID")
        try:
            return int(lines[-1].strip())  # 0: a server that does not say (uvscpd)
        except (IndexError, ValueError):
            raise LinkError(
                f"{self.where}: CHID answered {printable(lines[-1] if lines else '', 80)!r}, "
                "not a number"
            ) from None

    @property
    def is_ioplex(self) -> bool:
        """Whether the remote said in its banner that it is an ioplex server (which reads
        a whole buffer of pipelined commands at once)."""
        return any("ioplex" in line.lower() for line in self.banner)

    async def send_events(
        self, lines: list[str], on_reply: Callable[[int, str | None], None], window: int = 1
    ) -> None:
        """SEND event lines, at most `window` unanswered at once, in order.

        With `window` 1 (any server: vscpd handles one command per TCP read and leaves the
        rest of the buffer until more bytes arrive) each SEND waits for its status line.
        `on_reply(i, refusal)` is called as the answer to ``lines[i]`` arrives, with None
        for ``+OK`` or the ``-OK`` line, so the caller knows exactly which were answered
        when the connection breaks midway.
        """
        if window <= 1:
            await self._send_one_at_a_time(lines, on_reply)
            return
        sent = answered = 0
        total = len(lines)
        while answered < total:
            if sent < total and sent - answered <= window // 2:  # refill in big writes
                upto = min(total, answered + window)
                chunk = "".join([f"SEND {line}\r\n" for line in lines[sent:upto]])
                await self.send(chunk.encode("latin-1"))
                sent = upto
            on_reply(answered, await self._status())
            answered += 1

    async def _send_one_at_a_time(
        self, lines: list[str], on_reply: Callable[[int, str | None], None]
    ) -> None:
        """The hot loop of a one-in-flight link: one cancel scope whose deadline moves
        with each SEND (cheaper than a scope per read and write)."""
        send, receive_until, timeout = self.stream.send, self.reader.receive_until, self.timeout
        now = anyio.current_time
        with anyio.CancelScope() as scope:
            try:
                for i, line in enumerate(lines):
                    scope.deadline = now() + timeout
                    await send(b"SEND " + line.encode("latin-1") + wire.CRLF)
                    while True:
                        raw = await receive_until(b"\n", MAX_LINE)
                        status = raw[:3]
                        if status == b"+OK":
                            on_reply(i, None)
                            break
                        if status == b"-OK":
                            on_reply(i, printable(raw.decode("latin-1").rstrip("\r"), 200))
                            break
            except anyio.DelimiterNotFound:
                raise LinkError(f"{self.where} sent a line longer than {MAX_LINE} bytes") from None
            except anyio.IncompleteRead:
                raise LinkError(f"{self.where} closed the connection") from None
        if scope.cancelled_caught:
            raise TimeoutError(f"{self.where} did not answer a SEND within {timeout} s")

    async def _status(self) -> str | None:
        """The next status line: None for ``+OK``, the line for ``-OK``. Anything else is
        no answer to SEND (nothing should come) and is skipped."""
        while True:
            line = await self.readline()
            if line.startswith("+OK"):
                return None
            if line.startswith("-OK"):
                return printable(line, 200)


def with_obid(event: Event, obid: int) -> str:
    """The event's line with another obid (the 4th field), reusing the cached line.

    Relayed events go out with obid 0: an obid means something only on the server that
    assigned it, and the receiving server puts its own channel id there."""
    head, cls, typ, _, rest = event.line().split(",", 4)
    return f"{head},{cls},{typ},{obid},{rest}"
