"""A fake HSYCO server, written from HSYCO's documentation of its public API only.

What it does is what the notes (§1.1) say HSYCO does, nothing of ioplex's own server:

- HTTPS; ``GET /x/rioget?1*<timestamp>*<password>``, positional fields, the password last
  and compared as it arrives (raw);
- the answer ``{"hsycostate":{"timestamp":<µs, 16 digits>,"system":"system",
  "topotime":<ms>[,"io":{...}]}}``, every value a string (UTF-8 JSON, so ``*`` and any
  character appear as they are);
- timestamp 1: the full state; the timestamp of an answer: the points changed since, the
  request held up to `long_poll` seconds (10) when nothing did, then answered without ``io``;
  ``timestamp`` is the time of the last change;
- a wrong password or an address not allowed: no reply; the connection is dropped after
  `drop_after` seconds (10 in HSYCO, configurable so tests do not wait);
- any other path: 404 (HSYCO has no ``/api/v1``).

Test hooks beyond HSYCO: `throttle` makes the next answers HTTP 429 with Retry-After (as an
ioplex server in front would), and counters of what was asked.
"""

from __future__ import annotations

import json
import ssl
import time
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSListener

MAX_HEAD = 16 * 1024


class FakeHsyco:
    def __init__(
        self,
        points: dict[str, str],
        password: str,
        ssl_context: ssl.SSLContext,
        *,
        port: int = 0,
        allowed: bool = True,
        drop_after: float = 10.0,
        long_poll: float = 10.0,
    ) -> None:
        self.password = password
        self.ssl_context = ssl_context
        self.port = port
        self.allowed = allowed
        self.drop_after = drop_after
        self.long_poll = long_poll
        self.values: dict[str, str] = {}
        self.changed_at: dict[str, int] = {}
        self.last_change = 0
        self.topotime = int(time.time() * 1000)
        self._changed = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()
        self.throttled = 0
        self.retry_after = 1
        self.stats = {
            "full": 0,
            "delta": 0,
            "idle": 0,
            "dropped": 0,
            "not_found": 0,
            "throttled": 0,
            "connections": 0,
        }
        for name, value in points.items():
            self.set(name, value)

    # -- the device side ------------------------------------------------------------------------
    def _now_us(self) -> int:
        self.last_change = max(self.last_change + 1, time.time_ns() // 1000)
        return self.last_change

    def set(self, name: str, value: str) -> None:
        assert isinstance(value, str), "HSYCO values are strings"
        self.values[name] = value
        self.changed_at[name] = self._now_us()
        self._changed.set()
        self._changed = anyio.Event()

    def remove(self, name: str) -> None:
        del self.values[name]
        del self.changed_at[name]
        self.topotime = int(time.time() * 1000)

    def throttle(self, answers: int, retry_after: int = 1) -> None:
        self.throttled, self.retry_after = answers, retry_after

    # -- the server ------------------------------------------------------------------------------
    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        listener = await anyio.create_tcp_listener(
            local_host="127.0.0.1", local_port=self.port, reuse_port=False
        )
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tls = TLSListener(listener, self.ssl_context, standard_compatible=False)
        try:
            with anyio.CancelScope() as self._scope:
                task_status.started()
                await tls.serve(self._connection)
        finally:
            with anyio.CancelScope(shield=True):
                await tls.aclose()
            self._stopped.set()

    async def start(self, tg: anyio.abc.TaskGroup) -> FakeHsyco:
        await tg.start(self.run)
        return self

    async def stop(self) -> None:
        """Stop listening and cut every connection (a restart is a new FakeHsyco)."""
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()

    async def _connection(self, stream: anyio.abc.ByteStream) -> None:
        self.stats["connections"] += 1
        buffer = b""
        try:
            async with stream:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        if len(buffer) > MAX_HEAD:
                            return
                        buffer += await stream.receive()
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                    method, _, rest = request_line.partition(" ")
                    target = rest.rsplit(" ", 1)[0]
                    if not await self._answer(stream, method, target):
                        return
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            ssl.SSLError,
            OSError,
        ):
            return

    async def _answer(self, stream: anyio.abc.ByteStream, method: str, target: str) -> bool:
        """Answer one request; False to close the connection."""
        path, _, query = target.partition("?")
        if method != "GET" or path != "/x/rioget":
            self.stats["not_found"] += 1
            await self._send(stream, 404, b"Not Found", "text/plain")
            return True
        version, _, rest = query.partition("*")
        stamp, _, password = rest.partition("*")
        if not self.allowed or password != self.password:
            self.stats["dropped"] += 1
            await anyio.sleep(self.drop_after)  # "drop the connection with no reply"
            return False
        if self.throttled:
            self.throttled -= 1
            self.stats["throttled"] += 1
            await self._send(stream, 429, b"", "text/plain", {"Retry-After": str(self.retry_after)})
            return True
        if version != "1" or not stamp.isdigit() or int(stamp) <= 0:
            await self._send(stream, 400, b"Bad Request", "text/plain")
            return True
        since = int(stamp)
        if since == 1:
            self.stats["full"] += 1
            io = dict(self.values)
        else:
            io = self._since(since)
            if not io:
                with anyio.move_on_after(self.long_poll):
                    await self._changed.wait()
                io = self._since(since)
            self.stats["delta" if io else "idle"] += 1
        state: dict[str, Any] = {
            "timestamp": max(self.last_change, 1),
            "system": "system",
            "topotime": self.topotime,
        }
        if io:
            state["io"] = io
        body = json.dumps({"hsycostate": state}, ensure_ascii=False).encode("utf-8")
        await self._send(stream, 200, body, "application/json")
        return True

    def _since(self, stamp: int) -> dict[str, str]:
        return {n: self.values[n] for n, t in self.changed_at.items() if t > stamp}

    @staticmethod
    async def _send(
        stream: anyio.abc.ByteStream,
        status: int,
        body: bytes,
        media: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}[status]
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {media}",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
