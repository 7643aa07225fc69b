"""Running one remote command in its own session, as HSYCO's exec point does.

The result is what the exec, out and err points read: the exit status (a number, ``error``
when the command could not be sent or timed out, ``null`` when the server sent no status),
and stdout and stderr with their lines joined by ``<br>``. In line mode each complete line is
handed to a callback as it arrives instead. Output is taken as asyncssh delivers it, in a
session callback (no reader tasks: a command costs little more than the round trip), and
capped, so a chatty command cannot exhaust memory; the timeout bounds the whole session.
"""

from __future__ import annotations

import codecs
import signal
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import asyncssh

LINE_BREAK = "<br>"

Status = int | str
"""An exit status number, or ``error`` / ``null``."""


def join_lines(text: str) -> str:
    """Lines joined by ``<br>``: ``"a\\nb\\n"`` gives ``"a<br>b"``; CR before LF is dropped."""
    text = text.removesuffix("\n")
    if not text:
        return ""
    return LINE_BREAK.join(line.removesuffix("\r") for line in text.split("\n"))


class Output:
    """One output stream of a command: collected up to a cap, or split into lines."""

    def __init__(self, limit: int, on_line: Callable[[str], None] | None = None) -> None:
        self.limit = limit
        self.on_line = on_line
        self.dropped = 0
        """Bytes received past `limit` and thrown away."""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._parts: list[str] = []
        self._kept = 0
        self._partial = ""
        self._finished = False

    def feed(self, data: bytes, final: bool = False) -> None:
        if self.on_line is None:
            room = self.limit - self._kept
            if len(data) > room:
                self.dropped += len(data) - room
                data = data[:room]
            self._kept += len(data)
            self._parts.append(self._decoder.decode(data, final))
            return
        text = self._partial + self._decoder.decode(data, final)
        *lines, self._partial = text.split("\n")
        for line in lines:
            self.on_line(line.removesuffix("\r"))
        if len(self._partial) > self.limit or (final and self._partial):
            line, self._partial = self._partial, ""
            self.on_line(line.removesuffix("\r"))

    def finish(self) -> None:
        """Flush what is pending (a last line without a newline); later calls do nothing."""
        if not self._finished:
            self._finished = True
            self.feed(b"", final=True)

    @property
    def raw(self) -> str:
        """Everything collected, as received (decoded as UTF-8)."""
        return "".join(self._parts)

    @property
    def text(self) -> str:
        """Everything collected, lines joined by ``<br>``."""
        return join_lines(self.raw)


class _Session(asyncssh.SSHClientSession[bytes]):
    """asyncssh's callbacks for one command's channel: output in, end noted."""

    def __init__(self, out: Output, err: Output) -> None:
        self.out = out
        self.err = err
        self.closed = anyio.Event()
        self.error: str | None = None

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        (self.err if datatype == asyncssh.EXTENDED_DATA_STDERR else self.out).feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.error = str(getattr(exc, "reason", None) or exc)
        self.closed.set()


@dataclass
class Result:
    status: Status
    out: str
    err: str
    problem: str | None = None
    """Why the status is ``error`` (or how the output was cut), for the log."""
    raw_out: str = ""
    raw_err: str = ""
    link_dead: bool = False
    """No session could be opened within the timeout: the peer does not answer, so the
    connection is to be dropped rather than reused (a frozen or vanished server)."""


def exit_status(channel: asyncssh.SSHClientChannel[bytes]) -> Status:
    """The command's exit status; a signal gives 128 + its number, as in a shell."""
    exit_signal = channel.get_exit_signal()
    if exit_signal:
        number = getattr(signal, f"SIG{exit_signal[0]}", None)
        return 128 + int(number) if number is not None else 255
    status = channel.get_exit_status()
    return "null" if status is None else status


async def run_command(
    conn: asyncssh.SSHClientConnection,
    command: str,
    *,
    timeout: float,
    limit: int,
    on_out: Callable[[str], None] | None = None,
    on_err: Callable[[str], None] | None = None,
) -> Result:
    """Run `command` in a new session of `conn`; never raises for remote failures."""
    out, err = Output(limit, on_out), Output(limit, on_err)
    session = _Session(out, err)
    channel: asyncssh.SSHClientChannel[bytes] | None = None
    problem: str | None = None
    opened = False
    try:
        with anyio.move_on_after(timeout) as scope:
            try:
                channel, _ = await conn.create_session(lambda: session, command, encoding=None)
                opened = True
                channel.write_eof()
                await session.closed.wait()
            except (asyncssh.Error, OSError) as exc:
                problem = f"could not run: {getattr(exc, 'reason', None) or exc}"
    except BaseException:  # the host is stopping: the remote command must not live on
        if channel is not None:
            await _abandon(channel, session)
        raise
    if scope.cancelled_caught:
        problem = f"timed out after {timeout:g} s"
        if not opened:
            problem += " (the server did not even open a session: the connection is dropped)"
    elif session.error is not None:
        problem = f"session broke: {session.error}"
    if problem is not None and channel is not None:
        await _abandon(channel, session)
    out.finish()
    err.finish()
    if problem is not None:
        return Result(
            "error",
            out.text,
            err.text,
            problem,
            out.raw,
            err.raw,
            link_dead=scope.cancelled_caught and not opened,
        )
    assert channel is not None
    cut = [
        f"{name} cut at {o.limit} bytes ({o.dropped} dropped)"
        for name, o in (("stdout", out), ("stderr", err))
        if o.dropped
    ]
    return Result(
        exit_status(channel), out.text, err.text, "; ".join(cut) or None, out.raw, err.raw
    )


async def _abandon(channel: asyncssh.SSHClientChannel[bytes], session: _Session) -> None:
    """Stop a command we no longer wait for: ask the server to kill it, close the session."""
    if session.closed.is_set():
        return
    try:
        channel.kill()  # servers that do not support signals ignore the request
    except (asyncssh.Error, OSError):
        pass
    channel.close()
    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
        await session.closed.wait()
