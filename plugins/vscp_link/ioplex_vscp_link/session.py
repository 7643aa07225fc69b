"""One client of the server interface: its login, filter, queue and command loop.

Input is read in chunks and split into lines here, not line by line: a client that pipelines
a thousand SENDs gets its thousand replies in one write (written whenever `FLUSH_AT` bytes of
replies are waiting, so a chunk of HELPs never piles up megabytes). Lines are bounded
(`MAX_LINE`); a longer one is answered with the parameter error and skipped up to its end.

Before login every reply counts against the connection's output budget (`Ticket.budget`):
past it the connection is closed and nothing more is queued. Every command answers exactly
one reply: a parse error is the parameter error for that command, and an unexpected error in
a command is ``-OK - Error`` for it (logged, rate-limited), never a dropped session.

In the receive loop a second task (the writer) pushes queued events and ``+OK`` keep-alives;
the reader then answers only QUITLOOP, QUIT, NOOP and SEND, and writes nothing that does not
start with ``+OK`` (vscpd's C client takes every other line in the loop for an event). Both
write under one lock, and the writer drains the queue only while holding it, so no event
line ever follows the reply to QUITLOOP.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketStream
from ioplex.queues import DropOldestQueue
from ioplex.serving import OutputBudgetExceeded, Ticket

from . import measurement_command, wire
from .event import Event, format_datetime, make_timestamp, parse_line, utc_now
from .filter import ACCEPT_ALL, Filter, parse_fields
from .guid import NULL_GUID, format_guid, parse_guid
from .number import read_value

if TYPE_CHECKING:
    from .server import Server, User

log = logging.getLogger("ioplex.plugin.vscp_link.server")

MAX_LINE = 8192
"""Longest command line taken, in bytes (a SEND with 512 data bytes needs about 2,700)."""
CHUNK = 65536
FLUSH_AT = 65536
"""Replies waiting to be written, in bytes, at which they are written before the next line
is handled."""
HISTORY = 10
"""Command lines remembered for ``+`` / ``+n``."""
DISCONNECTED = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
    TimeoutError,
)
"""What ends a session because the connection is gone or stuck (TimeoutError: a write that
waited `send_timeout` for a client that does not read)."""


class Close(Exception):
    """End the session after writing `reply`."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply


class Session:
    """A connected client. `channel` is its id: CHID's answer and the obid of its events."""

    def __init__(
        self,
        server: Server,
        stream: SocketStream,
        channel: int,
        peer: str,
        ticket: Ticket,
        ip: str = "?",
    ) -> None:
        self.server = server
        self.stream = stream
        self.channel = channel
        self.peer = peer
        self.peer_ip = ip
        self.ticket = ticket
        self.started = utc_now()
        self.guid = server.interface_guid(channel)
        self.filter: Filter = ACCEPT_ALL
        self.queue: DropOldestQueue[Event] = DropOldestQueue(server.queue_size)
        self.username: str | None = None
        self.user: User | None = None
        self.in_loop = False
        self.received_frames = 0
        self.received_data = 0
        self.sent_frames = 0
        self.sent_data = 0
        self.last_error = ""
        self._send_lock = anyio.Lock()
        self._wait_scope: anyio.CancelScope | None = None
        self._tg: Any = None
        self._history: deque[str] = deque(maxlen=HISTORY)

    def __repr__(self) -> str:
        return f"<client {self.channel} {self.peer} user={self.username!r}>"

    @property
    def overruns(self) -> int:
        """Events dropped because this client's queue was full."""
        return self.queue.dropped

    def describe(self) -> str:
        user = f", user {self.user.name!r}" if self.user else ""
        return f"client {self.channel} ({self.peer}{user})"

    # -- output ------------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        if not data:
            return
        async with self._send_lock:
            with anyio.fail_after(self.server.send_timeout):
                await self.stream.send(data)

    # -- the command loop --------------------------------------------------------------------
    def _charge(self, reply: bytes) -> None:
        """Count a reply against the pre-login output budget (OutputBudgetExceeded past it)."""
        if self.user is None:
            self.ticket.budget.spend(len(reply))

    async def run(self) -> None:
        """Serve the client until it quits, fails or times out.

        The login deadline is not kept here: the server runs the session inside its
        admission ticket's scope, whose deadline is absolute (bytes do not extend it).
        """
        server = self.server
        pending = b""
        discarding = False
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                self._charge(server.banner)
                await self.write(server.banner)
                while True:
                    timeout = None if self.user is None or self.in_loop else server.idle_timeout
                    try:
                        with anyio.fail_after(timeout):
                            chunk = await self.stream.receive(CHUNK)
                    except TimeoutError:
                        server.ratelog.info(
                            "idle",
                            "vscp_link server: %s sent no command for %.0f s (%s.idle_timeout); "
                            "closing",
                            self.describe(),
                            timeout,
                            server.where,
                        )
                        return
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    out: list[bytes] = []
                    size = 0
                    if discarding and lines:  # the end of an overlong line
                        lines.pop(0)
                        discarding = False
                    overlong = len(pending) > MAX_LINE and not discarding
                    if len(pending) > MAX_LINE:  # drop it as it comes; answer it once
                        discarding = True
                        pending = b""
                    try:
                        for raw in lines:
                            if len(raw) > MAX_LINE:
                                reply = self._overlong()
                            else:
                                reply = self.handle(raw.decode("latin-1").strip())
                            if reply:
                                self._charge(reply)
                                out.append(reply)
                                size += len(reply)
                                if size >= FLUSH_AT:
                                    await self.write(b"".join(out))
                                    out.clear()
                                    size = 0
                    except Close as close:
                        self._charge(close.reply)
                        out.append(close.reply)
                        await self.write(b"".join(out))
                        return
                    if overlong:  # after the complete lines before it
                        reply = self._overlong()
                        self._charge(reply)
                        out.append(reply)
                    await self.write(b"".join(out))
            except OutputBudgetExceeded as exc:
                server.over_budget += 1
                server.ratelog.info(
                    "budget",
                    "vscp_link server: closed %s: %s (%s.pre_login_output)",
                    self.describe(),
                    exc,
                    server.where,
                )
                return
            except DISCONNECTED as exc:
                # The client went away (mid-command, too), or stopped reading for send_timeout.
                log.debug("vscp_link server: %s gone: %r", self.describe(), exc)
                return
            finally:
                self.in_loop = False
                tg.cancel_scope.cancel()

    def _overlong(self) -> bytes:
        self._error(f"line longer than {MAX_LINE} bytes")
        return b"" if self.in_loop else wire.PARAMETER_ERROR  # only +OK lines in the loop

    def _error(self, message: str) -> None:
        self.last_error = message
        log.debug("vscp_link server: %s: %s", self.describe(), message)

    def handle(self, line: str) -> bytes:
        """The reply to one command line (empty for a blank line or inside the receive
        loop, where only ``+OK`` lines may be written)."""
        if not line:
            return b""  # vscpd ignores blank lines
        if line[:5].upper() == "SEND ":  # the hot path, ahead of the table
            command, arg = "SEND", line[5:].strip()
        elif line[0] == "+":
            recalled = self._recall(line)
            if recalled is None:
                self._error(f"nothing to repeat for {line[:12]!r}")
                return b"" if self.in_loop else wire.PARAMETER_ERROR
            return self.handle(recalled)
        else:
            command, arg = wire.split_command(line)
        self._history.append(line)
        if self.in_loop:
            return self._in_loop(command, arg)
        if self.user is None and command not in wire.NO_LOGIN_NEEDED:
            if command not in wire.KNOWN:
                return wire.UNKNOWN_COMMAND
            return wire.NOT_ACCREDITED
        handler = _HANDLERS.get(command)
        if handler is None:
            self._error(f"unknown command {line[:40]!r}")
            return wire.UNKNOWN_COMMAND
        try:
            return handler(self, arg)
        except Close:
            raise
        except ValueError as exc:  # the parsers' documented error: this command's fault
            self._error(f"{command}: {exc}")
            return wire.PARAMETER_ERROR
        except Exception as exc:  # a bug must cost one command, not the session
            self.server.ratelog.error(
                "command-failed",
                "vscp_link server: %s: %s failed: %r",
                self.describe(),
                command,
                exc,
            )
            log.debug("vscp_link server: %s failed", command, exc_info=True)
            self._error(f"{command}: internal error")
            return wire.ERROR

    def _recall(self, line: str) -> str | None:
        """The line ``+`` (the last command) or ``+n`` (the n-th last) stands for."""
        rest = line[1:].strip()
        if not rest:
            n = 1
        elif rest.isdigit() and rest.isascii() and len(rest) < 4:
            n = int(rest)
        else:
            return None
        if not 1 <= n <= len(self._history):
            return None
        return self._history[-n]

    def _in_loop(self, command: str, arg: str) -> bytes:
        if command == "QUITLOOP":
            self.in_loop = False
            if self._wait_scope is not None:
                self._wait_scope.cancel()
            return wire.QUIT_LOOP
        if command == "QUIT":
            raise Close(wire.GOODBYE)
        if command == "NOOP":
            return wire.OK
        if command == "SEND":
            reply = self._send(arg)
            return reply if reply[:3] == b"+OK" else b""  # only +OK lines inside the loop
        self._error(f"{command} ignored in the receive loop")
        return b""

    # -- commands ----------------------------------------------------------------------------
    def _noop(self, arg: str) -> bytes:
        return wire.OK

    def _quit(self, arg: str) -> bytes:
        raise Close(wire.GOODBYE)

    def _user(self, arg: str) -> bytes:
        if self.user is not None:
            return wire.OK
        if not arg:
            return wire.PARAMETER_ERROR
        self.username = arg
        return wire.USERNAME_OK

    def _pass(self, arg: str) -> bytes:
        if self.user is not None:
            return wire.OK
        if self.username is None:
            return wire.NEED_USERNAME
        if not arg:
            self.username = None
            raise Close(wire.PARAMETER_ERROR)
        server = self.server
        throttle = server.throttle
        locked = throttle.locked_for(self.peer_ip)
        if locked:  # refused unchecked: a locked-out guesser learns nothing
            server.ratelog.warning(
                "locked",
                "vscp_link server: refused a login from %s unchecked: its network is "
                "locked out for %.0f s after wrong passwords",
                self.peer,
                locked,
            )
            raise Close(wire.PASSWORD_ERROR)
        user = server.users.get(self.username)
        expected = user.password if user is not None else secrets.token_hex(16)
        good = hmac.compare_digest(arg.encode("utf-8"), expected.encode("utf-8"))
        if user is None or not good:
            throttle.failed(self.peer_ip)  # counted and logged (a summary per interval)
            raise Close(wire.PASSWORD_ERROR)  # answered at once; the slot is freed at once
        throttle.succeeded(self.peer_ip)
        self.ticket.authenticated()
        self.user = user
        self.filter = user.filter
        server.logged_in(self)
        log.info("vscp_link server: %s logged in", self.describe())
        return wire.OK

    def _challenge(self, arg: str) -> bytes:
        return b"+OK - " + secrets.token_hex(16).upper().encode("ascii") + wire.CRLF

    def _send(self, arg: str) -> bytes:
        if not self.user.send:  # type: ignore[union-attr]
            return wire.NO_RIGHTS
        try:
            event = parse_line(arg)
        except ValueError as exc:
            self._error(f"SEND: {exc}")
            return wire.PARAMETER_ERROR
        return self._dispatch(event)

    def _measurement(self, arg: str) -> bytes:
        if not self.user.send:  # type: ignore[union-attr]
            return wire.NO_RIGHTS
        try:
            event = measurement_command.build(arg, self.guid)
        except ValueError as exc:
            self._error(f"MEASUREMENT: {exc}")
            return wire.PARAMETER_ERROR
        return self._dispatch(event)

    def _dispatch(self, event: Event) -> bytes:
        # The event is new and not yet shared: fill in what the sender left to the server.
        # obid is always the sending channel on this server (the id CHID reports), so that
        # a link's CHID check recognises its own events; ids are local to this server.
        event.obid = self.channel
        if event.datetime is None:
            event.datetime = utc_now()
        if not event.timestamp:
            event.timestamp = make_timestamp()
        if event.guid == NULL_GUID:
            event.guid = self.guid
        self.sent_frames += 1
        self.sent_data += len(event.data)
        self.server.dispatch(event, self)
        return wire.OK

    def _not_here(self, arg: str) -> bytes:
        return wire.NOT_SUPPORTED_HERE

    def _retr(self, arg: str) -> bytes:
        if not self.user.receive:  # type: ignore[union-attr]
            return wire.NO_RIGHTS
        try:
            count = read_value(arg, "count") if arg else 1
        except ValueError as exc:
            self._error(f"RETR: {exc}")
            return wire.PARAMETER_ERROR
        if count == 0:
            count = 1
        elif count < 0:  # node-vscp-tcp asks for -1: everything
            count = len(self.queue) or 1
        queue = self.queue
        out = []
        for _ in range(min(count, len(queue))):
            out.append(queue.get_nowait().line())  # type: ignore[union-attr]
        text = "\r\n".join(out).encode("latin-1") + wire.CRLF if out else b""
        return text + (wire.OK if len(out) == count else wire.NO_MSG)

    def _rcvloop(self, arg: str) -> bytes:
        if not self.user.receive:  # type: ignore[union-attr]
            return wire.NO_RIGHTS
        self.in_loop = True
        self._tg.start_soon(self._loop_writer, name=f"vscp_link client {self.channel} writer")
        return wire.RECEIVE_LOOP

    def _quitloop(self, arg: str) -> bytes:
        return wire.QUIT_LOOP

    def _cdta(self, arg: str) -> bytes:
        return f"{len(self.queue)}\r\n".encode("ascii") + wire.OK

    def _clra(self, arg: str) -> bytes:
        self.queue.drain()
        return wire.QUEUE_CLEARED

    def _stat(self, arg: str) -> bytes:
        line = (
            f"0,0,{self.overruns},{self.received_data},{self.received_frames},"
            f"{self.sent_data},{self.sent_frames}\r\n"
        )
        return line.encode("ascii") + wire.OK

    def _info(self, arg: str) -> bytes:
        error = self.last_error.replace('"', "'")
        code = 1 if error else 0
        return f'0,{code},0,"{error}"\r\n'.encode("ascii", "replace") + wire.OK

    def _chid(self, arg: str) -> bytes:
        return f"{self.channel}\r\n".encode("ascii") + wire.OK

    def _sgid(self, arg: str) -> bytes:
        if not self.user.set_guid:  # type: ignore[union-attr]
            return wire.NO_RIGHTS
        try:
            self.guid = parse_guid(arg)
        except ValueError as exc:
            self._error(f"SETGUID: {exc}")
            return wire.PARAMETER_ERROR
        return wire.OK

    def _ggid(self, arg: str) -> bytes:
        return format_guid(self.guid).encode("ascii") + wire.CRLF + wire.OK

    def _vers(self, arg: str) -> bytes:
        return ",".join(map(str, wire.PROTOCOL_VERSION)).encode("ascii") + wire.CRLF + wire.OK

    def _set_filter_or_mask(self, arg: str, mask: bool) -> bytes:
        if not self.user.set_filter:  # type: ignore[union-attr]
            return wire.NO_RIGHTS
        try:
            fields = parse_fields(arg, complete=True)
        except ValueError as exc:
            self._error(f"{'SETMASK' if mask else 'SETFILTER'}: {exc}")
            return wire.PARAMETER_ERROR
        self.filter = self.filter.with_mask(fields) if mask else self.filter.with_filter(fields)
        return wire.OK

    def _sflt(self, arg: str) -> bytes:
        return self._set_filter_or_mask(arg, mask=False)

    def _smsk(self, arg: str) -> bytes:
        return self._set_filter_or_mask(arg, mask=True)

    def _wcyd(self, arg: str) -> bytes:
        return wire.capabilities_line(self.server.capabilities) + wire.OK

    def _interface(self, arg: str) -> bytes:
        sub = arg.split(None, 1)[0].upper() if arg else "LIST"
        if sub in ("UNIQUE", "NORMAL", "CLOSE"):
            return wire.INTERFACE_NOT_FOUND
        lines = [
            f"{channel},{kind},{format_guid(guid)},{name} | "
            f"Started at {format_datetime(started)}\r\n"
            for channel, kind, guid, name, started in self.server.interfaces()
        ]
        return "".join(lines).encode("utf-8") + wire.OK

    def _help(self, arg: str) -> bytes:
        return wire.HELP + wire.OK

    def _test(self, arg: str) -> bytes:
        return wire.OK

    def _binary(self, arg: str) -> bytes:
        return wire.BINARY_NOT_SUPPORTED

    # -- the receive loop's writer -----------------------------------------------------------
    async def _loop_writer(self) -> None:
        try:
            await self._push_events()
        except (TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            # A client that stops reading fills its socket; its queue then drops the oldest
            # events (counted in STAT) until the send times out and the client is let go.
            log.info(
                "vscp_link server: %s stopped taking events (%s); closing",
                self.describe(),
                type(exc).__name__,
            )
            self._tg.cancel_scope.cancel()

    async def _push_events(self) -> None:
        keepalive = self.server.keepalive
        queue = self.queue
        while self.in_loop:
            with anyio.move_on_after(keepalive) as scope:
                self._wait_scope = scope
                await queue.wait()
            self._wait_scope = None
            async with self._send_lock:
                if not self.in_loop:
                    return
                events = queue.drain()
                if events:
                    data = ("\r\n".join([e.line() for e in events]) + "\r\n").encode("latin-1")
                else:
                    data = wire.KEEPALIVE
                with anyio.fail_after(self.server.send_timeout):
                    await self.stream.send(data)


_HANDLERS = {
    "NOOP": Session._noop,
    "QUIT": Session._quit,
    "USER": Session._user,
    "PASS": Session._pass,
    "CHALLENGE": Session._challenge,
    "SEND": Session._send,
    "RETR": Session._retr,
    "RCVLOOP": Session._rcvloop,
    "QUITLOOP": Session._quitloop,
    "CDTA": Session._cdta,
    "CLRA": Session._clra,
    "STAT": Session._stat,
    "INFO": Session._info,
    "CHID": Session._chid,
    "SGID": Session._sgid,
    "GGID": Session._ggid,
    "VERS": Session._vers,
    "SFLT": Session._sflt,
    "SMSK": Session._smsk,
    "WCYD": Session._wcyd,
    "INTERFACE": Session._interface,
    "HELP": Session._help,
    "TEST": Session._test,
    "BINARY": Session._binary,
    "MEASUREMENT": Session._measurement,
    "RESTART": Session._not_here,
    "SHUTDOWN": Session._not_here,
}
