"""One client of the server interface: its login, filter, queue and command loop.

Input is read in chunks and split into lines here, not line by line: a client that pipelines
a thousand SENDs gets its thousand replies in one write. Lines are bounded (`MAX_LINE`); a
longer one is answered with the parameter error and skipped up to its end.

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
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketStream
from ioplex.queues import DropOldestQueue

from . import wire
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

    def __init__(self, server: Server, stream: SocketStream, channel: int, peer: str) -> None:
        self.server = server
        self.stream = stream
        self.channel = channel
        self.peer = peer
        self.peer_ip = peer.rpartition(":")[0].strip("[]")
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
    async def run(self) -> None:
        """Serve the client until it quits, fails or times out."""
        server = self.server
        pending = b""
        discarding = False
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                await self.write(server.banner)
                while True:
                    if self.user is None:
                        timeout: float | None = server.login_timeout
                    else:
                        timeout = None if self.in_loop else server.idle_timeout
                    try:
                        with anyio.fail_after(timeout):
                            chunk = await self.stream.receive(CHUNK)
                    except TimeoutError:
                        what = "log in" if self.user is None else "send a command"
                        log.info(
                            "vscp_link server: %s did not %s for %.0f s; closing",
                            self.describe(),
                            what,
                            timeout,
                        )
                        return
                    except DISCONNECTED:
                        return
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    out: list[bytes] = []
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
                                out.append(self._overlong())
                                continue
                            reply = self.handle(raw.decode("latin-1").strip())
                            if reply.__class__ is not bytes:
                                await self.write(b"".join(out))
                                out.clear()
                                reply = await reply  # type: ignore[misc]
                            if reply:
                                out.append(reply)  # type: ignore[arg-type]
                    except Close as close:
                        out.append(close.reply)
                        await self.write(b"".join(out))
                        return
                    if overlong:  # after the complete lines before it
                        out.append(self._overlong())
                    await self.write(b"".join(out))
            except DISCONNECTED:
                return  # the client went away, or stopped reading for send_timeout
            finally:
                self.in_loop = False
                tg.cancel_scope.cancel()

    def _overlong(self) -> bytes:
        self._error(f"line longer than {MAX_LINE} bytes")
        return b"" if self.in_loop else wire.PARAMETER_ERROR  # only +OK lines in the loop

    def _error(self, message: str) -> None:
        self.last_error = message
        log.debug("vscp_link server: %s: %s", self.describe(), message)

    def handle(self, line: str) -> bytes | Awaitable[bytes]:
        """The reply to one command line (a coroutine for the few that must wait)."""
        if not line:
            return b""  # vscpd ignores blank lines
        if line[:5].upper() == "SEND ":  # the hot path, ahead of the table
            command, arg = "SEND", line[5:].strip()
        else:
            command, arg = wire.split_command(line)
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
        return handler(self, arg)

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

    def _pass(self, arg: str) -> bytes | Awaitable[bytes]:
        if self.user is not None:
            return wire.OK
        if self.username is None:
            return wire.NEED_USERNAME
        if not arg:
            self.username = None
            raise Close(wire.PARAMETER_ERROR)
        return self._check_password(self.username, arg)

    async def _check_password(self, name: str, password: str) -> bytes:
        server = self.server
        user = server.users.get(name)
        expected = user.password if user is not None else secrets.token_hex(16)
        good = hmac.compare_digest(password.encode("utf-8"), expected.encode("utf-8"))
        if user is None or not good:
            delay = await server.throttle.failed(self.peer_ip)
            failures = server.throttle.failures_of(self.peer_ip)
            # A guesser must not flood the log either: the first failures, then every
            # hundredth.
            level = logging.WARNING if failures <= 3 or failures % 100 == 0 else logging.DEBUG
            log.log(
                level,
                "vscp_link server: failed login as %r from %s (%d in a row from "
                "this address; answered after %.2f s)",
                name,
                self.peer,
                failures,
                delay,
            )
            raise Close(wire.PASSWORD_ERROR)
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
        # The event is new and not yet shared: fill in what the sender left to the server.
        # obid is always the sending channel, so that a link's CHID check recognises it.
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
}
