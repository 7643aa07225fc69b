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
behaviour is kept. aiomqtt is pinned below 3 in pyproject.toml.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import anyio

READ_BURST = 1000
"""Packets read per readiness event at most, so one busy link cannot starve the loop."""


def read_in_bursts(client: aiomqtt.Client) -> bool:
    """Make `client` read up to `READ_BURST` packets per readiness event; whether it could."""
    paho = client._client
    if not all(hasattr(paho, name) for name in ("_packet_read", "_loop_rc_handle", "_sock")):
        return False
    from paho.mqtt.client import MQTTErrorCode

    def loop_read(max_packets: int = 1) -> Any:
        for _ in range(READ_BURST):
            if paho._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = paho._packet_read()
            if rc > 0:
                return paho._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho.loop_read = loop_read
    return True


async def messages(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    """``client.messages``, taking what is already queued without a task per message;
    raises aiomqtt.MqttError when the link drops, as the stock iterator does."""
    queue = getattr(client, "_queue", None)
    stock = client.messages
    while True:
        yield await stock.__anext__()
        if queue is None:
            continue
        while True:
            try:
                message = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            yield message


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
