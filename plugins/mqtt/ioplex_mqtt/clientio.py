"""Adjustments to aiomqtt's use of paho-mqtt: speed for many messages, safety on failures.

- paho's ``loop_read`` handles about one packet per call, and aiomqtt calls it once per
  readiness event of the socket: every message costs a trip through the event loop. The
  replacement reads packets until the socket has no more (at most `READ_BURST`), which made
  aligning from retained messages 2-3 times faster in bench/bench_mqtt.py.
- aiomqtt's message iterator starts a task per message; `messages` takes what is already
  queued without one.

- `publish_many` waits once per batch of publications; `abandon` and `guard_loop` keep a
  failed link from leaving callbacks on closed file descriptors in the event loop.

They use paho/aiomqtt internals (``_packet_read``, ``_loop_rc_handle``, ``_sock``,
``_queue``, ``_pending_publishes``, ``_loop``); when a version lacks them, the stock
behaviour is kept. aiomqtt and paho-mqtt are pinned below 3 in pyproject.toml, and the
suite runs on the pinned versions: a new major version is adopted deliberately.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import anyio

from .wire import PUBACK, PUBLISH, WireError, decode_publish, encode_pubacks, encode_publish, frame

READ_BURST = 1000
"""Packets read per readiness event at most, so one busy link cannot starve the loop."""
CHUNK = 256 * 1024
"""Bytes asked of the socket per read."""
_FAST_PROTOCOLS = (3, 4)  # MQTT 3.1 and 3.1.1: PUBLISH and PUBACK have no properties


class Lane:
    """The fast lane of one client: PUBLISH and PUBACK packets read and written here
    (`wire`), every other packet left to paho.

    The socket is read in chunks into a buffer; paho's own reads (``_sock_recv``) take from
    that buffer first, so a packet the lane does not handle reaches paho intact. A received
    PUBLISH goes to aiomqtt's bounded queue as ``(topic, payload, retain)`` and the PUBACKs
    of a burst leave in one write; a PUBACK for a publication of `publish` releases it without
    paho's per-acknowledgement objects.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        from paho.mqtt.client import MQTTErrorCode, time_func

        self.client = client
        self.paho = paho = client._client
        self._codes = MQTTErrorCode
        self._clock = time_func
        self._queue: asyncio.Queue[Any] = client._queue
        self.pending: dict[int, _Acks] = {}
        """Publications of `publish` waiting for their PUBACK, by packet id."""
        self.fast = paho._protocol in _FAST_PROTOCOLS
        self._buffer = bytearray()
        self._pos = 0
        self._stock_recv = paho._sock_recv
        self._resuming = False
        paho._sock_recv = self._recv
        paho.loop_read = self.loop_read

    def _recv(self, size: int) -> bytes:
        """paho's socket read, served from the buffer while it holds anything."""
        buffer, pos = self._buffer, self._pos
        if pos < len(buffer):
            chunk = bytes(buffer[pos : pos + size])
            self._pos = pos + len(chunk)
            return chunk
        return self._stock_recv(size)

    def _fill(self) -> Any:
        """Append what the socket holds to the buffer: SUCCESS, AGAIN or CONN_LOST."""
        codes = self._codes
        try:
            data = self._stock_recv(CHUNK)
        except BlockingIOError:
            return codes.MQTT_ERR_AGAIN
        except OSError:
            return codes.MQTT_ERR_CONN_LOST
        if not data:
            return codes.MQTT_ERR_CONN_LOST
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data
        return codes.MQTT_ERR_SUCCESS

    def loop_read(self, max_packets: int = 1) -> Any:
        """Handle up to `READ_BURST` packets: ours here, the others by paho."""
        paho, codes = self.paho, self._codes
        acks: list[int] = []
        received = False
        rc = codes.MQTT_ERR_SUCCESS
        try:
            for _ in range(READ_BURST):
                if paho._sock is None:
                    return codes.MQTT_ERR_NO_CONN
                if paho._in_packet["command"] == 0:  # between packets: is the next ours?
                    framed = frame(self._buffer, self._pos)
                    if framed is None:
                        rc = self._fill()
                        if rc != codes.MQTT_ERR_SUCCESS:
                            break
                        received = True
                        framed = frame(self._buffer, self._pos)
                        if framed is None:
                            continue
                    if self._handled(framed, acks):
                        self._pos = framed[2]
                        continue
                rc = paho._packet_read()  # paho's packet, from the buffer then the socket
                if rc != codes.MQTT_ERR_SUCCESS:
                    break
            else:
                if self._pos < len(self._buffer):  # more than a burst: the rest next turn
                    self._resume_soon()
        except WireError:
            rc = codes.MQTT_ERR_PROTOCOL
        finally:
            if acks and paho._sock is not None:
                paho._packet_queue(PUBACK, encode_pubacks(acks), 0, 0)
            if received:
                with paho._msgtime_mutex:
                    paho._last_bytes_received = self._clock()
        if rc == codes.MQTT_ERR_AGAIN:
            return codes.MQTT_ERR_SUCCESS
        if rc > 0:
            return paho._loop_rc_handle(rc)
        return rc

    def _handled(self, framed: tuple[int, int, int], acks: list[int]) -> bool:
        """Handle one complete packet if it is ours; False leaves it to paho."""
        first, start, end = framed
        kind = first & 0xF0
        if kind == PUBLISH and self.fast and first & 0x06 != 0x04:  # QoS 0 or 1
            topic, payload, qos, retain, mid = decode_publish(first, self._buffer, start, end)
            try:
                name = topic.decode("utf-8")
            except UnicodeDecodeError:
                name = None  # not one of ours; acknowledged all the same
            if name is not None:
                try:
                    self._queue.put_nowait((name, payload, retain))
                except asyncio.QueueFull:
                    pass  # counted by the queue
            if qos:
                acks.append(mid)
            return True
        if kind == PUBACK and end - start == 2:
            waiter = self.pending.pop((self._buffer[start] << 8) | self._buffer[start + 1], None)
            if waiter is not None:
                waiter.set()
                return True
        return False

    def _resume_soon(self) -> None:
        if self._resuming:
            return
        self._resuming = True
        asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        self._resuming = False
        if self.paho._sock is None:
            return
        try:
            self.loop_read()
        except Exception as exc:  # noqa: BLE001 - as aiomqtt's own reader: the link broke
            disconnected = self.client._disconnected
            if not disconnected.done():
                disconnected.set_exception(exc)

    async def publish(
        self, messages: list[tuple[str, bytes]], qos: int, retain: bool, timeout: float
    ) -> None:
        """`publish_many` for QoS 0 and 1: one write for the batch, one wait."""
        paho = self.paho
        if not paho.is_connected():
            raise aiomqtt.MqttCodeError(self._codes.MQTT_ERR_NO_CONN, "Could not publish message")
        acks = _Acks()
        mids: list[int] = []
        parts = []
        for topic, payload in messages:
            mid = paho._mid_generate() if qos else 0
            parts.append(encode_publish(topic.encode("utf-8"), payload, qos, retain, mid))
            mids.append(mid)
        data = b"".join(parts)
        if qos:
            for mid in mids:
                self.pending[mid] = acks
            acks.waiting = len(mids)
            paho._packet_queue(0, data, 0, qos)  # not PUBLISH: paho tracks nothing of it
        else:  # done once written: paho calls on_publish(mid) for a written QoS 0 PUBLISH
            mids = [paho._mid_generate()]
            self.client._pending_publishes[mids[0]] = acks  # type: ignore[assignment]
            acks.waiting = 1
            paho._packet_queue(PUBLISH, data, mids[0], 0, _Written())  # type: ignore[arg-type]
        try:
            with anyio.fail_after(timeout):
                await acks.done.wait()
        finally:
            if acks.waiting > 0:
                for mid in mids:
                    self.pending.pop(mid, None)
                    self.client._pending_publishes.pop(mid, None)


class _Written:
    """Stands for paho's MQTTMessageInfo of a QoS 0 batch (paho marks it published)."""

    __slots__ = ()

    def _set_as_published(self) -> None:
        pass


def install_lane(client: aiomqtt.Client) -> Lane | None:
    """Give `client` the fast lane (before it connects); None when this paho or aiomqtt
    lacks an internal the lane needs (the stock behaviour stays)."""
    paho = client._client
    needed = (
        "_packet_read",
        "_loop_rc_handle",
        "_sock",
        "_sock_recv",
        "_in_packet",
        "_packet_queue",
        "_mid_generate",
        "_msgtime_mutex",
        "_protocol",
    )
    if not all(hasattr(paho, name) for name in needed) or not all(
        hasattr(client, name) for name in ("_queue", "_pending_publishes", "_disconnected")
    ):
        return None
    lane = Lane(client)
    client._ioplex_lane = lane  # type: ignore[attr-defined]
    return lane


async def messages(client: aiomqtt.Client) -> AsyncIterator[list[tuple[str, bytes, bool]]]:
    """Batches of ``(topic, payload, retain)``: everything queued when the driver looks, so
    it can store a burst in one registry update; raises aiomqtt.MqttError when the link
    drops, as the stock iterator does."""
    queue = getattr(client, "_queue", None)
    stock = client.messages
    while True:
        batch = [_plain(await stock.__anext__())]
        if queue is not None:
            while True:
                try:
                    batch.append(_plain(queue.get_nowait()))
                except asyncio.QueueEmpty:
                    break
        yield batch


def _plain(message: Any) -> tuple[str, bytes, bool]:
    """A lane's tuple as it is; an aiomqtt.Message (QoS 2, or no lane) as such a tuple."""
    if message.__class__ is tuple:
        return message  # type: ignore[no-any-return]
    payload = message.payload
    if not isinstance(payload, bytes):
        payload = bytes(payload) if payload is not None else b""
    return message.topic.value, payload, bool(message.retain)


def abandon(client: aiomqtt.Client) -> None:
    """Close a link that failed (a broker that did not answer in time) at once, in the event
    loop: its socket leaves the loop's reader and writer sets before it is closed, so no
    callback is left to run on a closed (or reused) file descriptor, as happens when such a
    client is merely dropped."""
    paho = getattr(client, "_client", None)
    sock = getattr(paho, "_sock", None)
    if paho is None or sock is None:
        return
    loop = asyncio.get_running_loop()
    try:
        fd = sock.fileno()
    except OSError:
        fd = -1
    if fd >= 0:
        loop.remove_reader(fd)
        loop.remove_writer(fd)
    try:
        paho._sock_close()
    except (AttributeError, OSError):
        sock.close()
    disconnected = getattr(client, "_disconnected", None)
    if disconnected is not None and not disconnected.done():
        disconnected.set_result(None)


class _Acks:
    """Stands for the confirmation of many QoS 1 publications in aiomqtt's table of pending
    ones (it calls ``.set()`` per PUBACK): done when all arrived."""

    __slots__ = ("done", "waiting")

    def __init__(self) -> None:
        self.waiting = 0
        self.done = asyncio.Event()

    def set(self) -> None:
        self.waiting -= 1
        if self.waiting <= 0:
            self.done.set()


async def publish_many(
    client: aiomqtt.Client,
    messages: list[tuple[str, bytes]],
    qos: int,
    retain: bool,
    timeout: float,
) -> None:
    """Publish `messages` (topic, payload) and return once the broker acknowledged them all
    (QoS 1) or they were written (QoS 0); aiomqtt.MqttError when the link refuses, TimeoutError
    after `timeout`. One wait for the batch instead of one per message (aiomqtt's `publish`
    starts a timer task for each), which is most of the cost of a small message."""
    if not messages:
        return
    lane = getattr(client, "_ioplex_lane", None)
    if lane is not None and lane.fast and qos < 2:
        await lane.publish(messages, qos, retain, timeout)
        return
    paho = client._client
    pending = getattr(client, "_pending_publishes", None)
    if pending is None:  # an aiomqtt without the table: one by one
        for topic, payload in messages:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)
        return
    acks = _Acks()
    for topic, payload in messages:
        info = paho.publish(topic, payload, qos, retain)
        if info.rc != 0:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            pending[info.mid] = acks
            acks.waiting += 1
    if acks.waiting:
        with anyio.fail_after(timeout):
            await acks.done.wait()


class _GuardedLoop:
    """The event loop as aiomqtt sees it, with one difference: a reader or writer that
    paho's connecting thread asked for is added only if its socket is still the client's.
    Otherwise a link refused during the handshake (a TLS alert) leaves a callback that adds
    a closed file descriptor to the loop, an error in the loop instead of in the session."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: aiomqtt.Client) -> None:
        self._loop = loop
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> Any:
        loop = self._loop
        if callback == loop.add_reader or callback == loop.add_writer:
            add = callback

            def guarded(fd: int, handler: Any) -> None:
                sock = getattr(self._client._client, "_sock", None)
                try:
                    live = sock is not None and sock.fileno() == fd
                except OSError:
                    live = False
                if live:
                    add(fd, handler)

            return loop.call_soon_threadsafe(guarded, *args)
        return loop.call_soon_threadsafe(callback, *args)


def guard_loop(client: aiomqtt.Client) -> None:
    """Install `_GuardedLoop` on `client` (before it connects)."""
    loop = getattr(client, "_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        client._loop = _GuardedLoop(loop, client)  # type: ignore[assignment]
