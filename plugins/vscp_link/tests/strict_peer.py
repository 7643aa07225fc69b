"""A strict VSCP link server for the tests, written from how real peers behave on the wire
(notes/vscp-link.md §1, §3 and §12), not from our own server:

- **One command per read**, as vscpd's server: each TCP read appends to the connection's
  buffer and then at most ONE complete command is handled; the rest waits until more bytes
  arrive. A client that pipelines gets one answer and then silence.
- **Client ids from 1, the lowest free one reused**; an event SENT with obid 0 gets the
  sender's id; every event goes to every client in the receive loop whose id is not the
  event's obid (vscpd's "not back to the originator" rule: a foreign obid that collides
  with a client id loses the event for that client).
- `chid_zero`: like uvscpd, CHID answers 0 and events keep obid 0 (so nobody is skipped,
  the sender included).
- `refuse_wide_masks`: like uvscpd, SMSK with a class mask of 512 or more is answered
  ``-OK - format error in mask frame``.
- `break_at`: SEND numbers (counted over all connections, from 1) at which the connection
  is closed without handling the command: the answer is lost, the event not taken.
- `freeze_at`: SEND numbers at which the connection freezes, as a peer stopped with
  SIGSTOP: that command and everything after it on the connection is never answered.

`received` holds every event line taken, in order, as the peer stored it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

OK = b"+OK - Success.\r\n"
BANNER = (
    b"Welcome to the VSCP daemon.\r\n"
    b"Version: 15.1.1-0 Phosphorus\r\n"
    b"Copyright (C) 2000-2026 Ake Hedman, the VSCP project, https://www.vscp.org\r\n" + OK
)


def _number(text: str) -> int:
    text = text.strip().lower()
    if not text:
        return 0
    if text.startswith("0x"):
        return int(text, 0)
    return int(text)


@dataclass
class _Client:
    id: int
    stream: SocketStream
    user: str | None = None
    logged_in: bool = False
    in_loop: bool = False
    filter: tuple[int, int, int] = (0, 0, 0)
    mask: tuple[int, int, int] = (0, 0, 0)
    outbox: list[bytes] = field(default_factory=list)
    wakeup: anyio.Event = field(default_factory=anyio.Event)

    def accepts(self, cls: int, typ: int, priority: int) -> bool:
        (fp, fc, ft), (mp, mc, mt) = self.filter, self.mask
        return not ((priority ^ fp) & mp or (cls ^ fc) & mc or (typ ^ ft) & mt)


class StrictPeer:
    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        chid_zero: bool = False,
        refuse_wide_masks: bool = False,
        break_at: set[int] | None = None,
        freeze_at: set[int] | None = None,
        keepalive: float = 1.0,
        banner: bytes = BANNER,
    ) -> None:
        self.users = {"admin": "secret"} if users is None else users
        self.chid_zero = chid_zero
        self.refuse_wide_masks = refuse_wide_masks
        self.break_at = set(break_at or ())
        self.freeze_at = set(freeze_at or ())
        self.frozen = 0
        """Connections frozen so far."""
        self.keepalive = keepalive
        self.banner = banner
        self.clients: dict[int, _Client] = {}
        self.received: list[str] = []
        self.sends = 0
        self.reads_with_more = 0
        """Reads after which complete commands were left waiting (a pipelining client)."""
        self.address: tuple[str, int] = ("", 0)
        self.masks: list[str] = []

    # -- running -------------------------------------------------------------------------
    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            self.address = listener.extra(SocketAttribute.local_address)[:2]
            task_status.started()
            await listener.serve(self._handle)

    def _new_id(self) -> int:
        n = 1
        while n in self.clients:
            n += 1
        return n

    async def _handle(self, stream: SocketStream) -> None:
        client = _Client(self._new_id(), stream)
        self.clients[client.id] = client
        try:
            async with stream, anyio.create_task_group() as tg:
                tg.start_soon(self._writer, client)
                await stream.send(self.banner)
                buffer = b""
                frozen = False
                while True:
                    try:
                        chunk = await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                        break
                    buffer += chunk
                    if frozen or b"\n" not in buffer:
                        continue
                    if buffer[:5].upper() == b"SEND " and self.sends + 1 in self.freeze_at:
                        self.sends += 1
                        self.frozen += 1
                        frozen = True
                        continue
                    line, buffer = buffer.split(b"\n", 1)  # ONE command per read
                    if b"\n" in buffer:
                        self.reads_with_more += 1
                    if not await self._command(client, line.decode("latin-1").strip()):
                        break
                tg.cancel_scope.cancel()
        finally:
            del self.clients[client.id]

    async def _writer(self, client: _Client) -> None:
        while True:
            with anyio.move_on_after(self.keepalive):
                await client.wakeup.wait()
            client.wakeup = anyio.Event()
            if not client.in_loop:
                continue
            data = b"".join(client.outbox) or b"+OK\r\n"
            client.outbox.clear()
            try:
                await client.stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    async def _command(self, client: _Client, line: str) -> bool:
        """Handle one command line; False closes the connection."""
        word, _, arg = line.partition(" ")
        word = word.upper()
        arg = arg.strip()
        reply = OK
        if word == "SEND" and self.sends + 1 in self.break_at:
            self.sends += 1
            return False
        if word in ("QUIT", "EXIT"):
            await client.stream.send(b"+OK - Connection closed by client.\r\n")
            return False
        if word == "NOOP":
            pass
        elif word == "USER":
            client.user = arg
            reply = b"+OK - User name accepted, password please\r\n"
        elif word == "PASS":
            if client.user is None or self.users.get(client.user) != arg:
                await client.stream.send(b"-OK - Invalid username or password.\r\n")
                return False
            client.logged_in = True
        elif word in ("VERS", "VERSION"):
            reply = b"15,1,1,0\r\n" + OK
        elif not client.logged_in:
            reply = b"-OK - Need to log in to perform this command.\r\n"
        elif word in ("CHID", "GETCHID"):
            reply = f"{0 if self.chid_zero else client.id}\r\n".encode() + OK
        elif word == "SEND":
            self.sends += 1
            reply = self._send(client, arg)
        elif word in ("SFLT", "SETFILTER", "SMSK", "SETMASK"):
            reply = self._filter(client, word, arg)
        elif word in ("RCVLOOP", "RECEIVELOOP"):
            client.in_loop = True
            reply = b"+OK - Receive loop entered. QUITLOOP to terminate.\r\n"
        elif word == "QUITLOOP":
            client.in_loop = False
            reply = b"+OK - Quit receive loop.\r\n"
        else:
            reply = b"-OK - Unknown command\r\n"
        if client.in_loop and word != "RCVLOOP":
            if reply.startswith(b"+OK"):
                client.outbox.append(reply)
                client.wakeup.set()
            return True
        await client.stream.send(reply)
        return True

    def _send(self, client: _Client, arg: str) -> bytes:
        fields = arg.split(",")
        if len(fields) < 7:
            return b"-OK - Invalid parameter or format\r\n"
        try:
            head, cls, typ, obid = (_number(f) for f in fields[:4])
        except ValueError:
            return b"-OK - Invalid parameter or format\r\n"
        if obid == 0 and not self.chid_zero:
            obid = client.id
        fields[3] = str(obid)
        line = ",".join(fields)
        self.received.append(line)
        self.deliver(line, head, cls, typ, obid)
        return OK

    def _filter(self, client: _Client, word: str, arg: str) -> bytes:
        parts = arg.split(",")
        if len(parts) < 4:
            return b"-OK - Invalid parameter or format\r\n"
        try:
            values = (_number(parts[0]), _number(parts[1]), _number(parts[2]))
        except ValueError:
            return b"-OK - Invalid parameter or format\r\n"
        if word.startswith("SF") or word == "SETFILTER":
            client.filter = values
        else:
            self.masks.append(arg)
            if self.refuse_wide_masks and values[1] >= 512:
                return b"-OK - format error in mask frame\r\n"
            client.mask = values
        return OK

    # -- events --------------------------------------------------------------------------
    def deliver(self, line: str, head: int, cls: int, typ: int, obid: int) -> None:
        """Queue an event line for every client in the loop except the one whose id is
        the obid, through each client's filter."""
        data = line.encode("latin-1") + b"\r\n"
        for other in list(self.clients.values()):
            if not other.in_loop or (obid and other.id == obid):
                continue
            if other.accepts(cls, typ, (head >> 5) & 7):
                other.outbox.append(data)
                other.wakeup.set()

    def emit(self, line: str) -> None:
        """An event from the peer's own bus (a CAN node, another client): `line` as is."""
        fields = line.split(",")
        head, cls, typ, obid = (_number(f) for f in fields[:4])
        self.deliver(line, head, cls, typ, obid)


async def start(tg: Any, **options: Any) -> StrictPeer:
    peer = StrictPeer(**options)
    await tg.start(peer.serve)
    return peer
