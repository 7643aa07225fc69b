"""The client side of the link protocol, for the link driver and send-to-remote.

Every read has a timeout (`timeout`, the response timeout) and every line a length bound;
a ``-OK`` reply raises `CommandError`, a refused login `LoginError`. Messages name the
command but never its argument, so a password cannot end up in a log.
"""

from __future__ import annotations

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from . import wire
from .event import Event

MAX_LINE = 65536
"""Longest reply line read; a 512-byte event line is about 2,700 bytes."""


class LinkError(Exception):
    """The remote broke the protocol or refused a command."""


class CommandError(LinkError):
    def __init__(self, command: str, reply: str) -> None:
        super().__init__(f"{command} refused: {reply}")
        self.command = command
        self.reply = reply


class LoginError(CommandError):
    """USER/PASS refused: retrying with the same credentials cannot help."""


class LinkClient:
    """One connection to a VSCP link server (`open` connects and reads the banner)."""

    def __init__(self, stream: anyio.abc.ByteStream, timeout: float, where: str) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)
        self.timeout = timeout
        self.where = where
        self.banner: list[str] = []

    @classmethod
    async def open(
        cls, host: str, port: int, *, timeout: float, connect_timeout: float
    ) -> LinkClient:
        where = f"{host}:{port}"
        with anyio.fail_after(connect_timeout):
            stream = await anyio.connect_tcp(host, port)
        client = cls(stream, timeout, where)
        try:
            client.banner = await client.reply("connect")
        except BaseException:
            await client.aclose()
            raise
        return client

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await self.stream.aclose()

    async def __aenter__(self) -> LinkClient:
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
                raise LinkError(f"{self.where} closed the connection") from None
        return raw.decode("latin-1").rstrip("\r")

    async def send(self, data: bytes) -> None:
        with anyio.fail_after(self.timeout):
            await self.stream.send(data)

    async def reply(self, command: str) -> list[str]:
        """Read one reply: its data lines, up to ``+OK``; ``-OK`` raises CommandError."""
        lines: list[str] = []
        while True:
            line = await self.readline()
            if line.startswith("+OK"):
                return lines
            if line.startswith("-OK"):
                raise CommandError(command, line)
            lines.append(line)
            if len(lines) > 100_000:
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
            await self.command(f"PASS {password}")
        except CommandError as exc:
            raise LoginError(exc.command, exc.reply) from None
        except LinkError as exc:
            # vscpd closes the connection right after refusing a password.
            raise LoginError("PASS", str(exc)) from None

    async def channel_id(self) -> int:
        lines = await self.command("CHID")
        try:
            return int(lines[-1].strip())
        except (IndexError, ValueError):
            raise LinkError(f"{self.where}: CHID answered {lines!r}, not a number") from None

    async def send_events(self, events: list[Event], obid: int | None = None) -> list[str]:
        """SEND every event, pipelined; return the replies of the refused ones (empty if all
        were taken). With `obid`, each line carries it instead of the event's own."""
        if obid is None:
            lines = [f"SEND {e.line()}\r\n" for e in events]
        else:
            lines = [f"SEND {with_obid(e, obid)}\r\n" for e in events]
        await self.send("".join(lines).encode("latin-1"))
        refused = []
        for _ in events:
            while True:
                line = await self.readline()
                if line.startswith("+OK"):
                    break
                if line.startswith("-OK"):
                    refused.append(line)
                    break
                # Anything else is not an answer to SEND (nothing should come): skip it.
        return refused


def with_obid(event: Event, obid: int) -> str:
    """The event's line with another obid (the 4th field), reusing the cached line."""
    head, cls, typ, _, rest = event.line().split(",", 4)
    return f"{head},{cls},{typ},{obid},{rest}"
