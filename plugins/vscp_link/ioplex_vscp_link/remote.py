"""Send-to-remote: vscpd's decision-matrix action 0x43 ("send event to remote host").

Each ``[[plugins.vscp_link.send_to_remote]]`` row has a filter and mask, a remote server and
its login, and the event to send, where ``%event`` stands for the triggering event. A bus
event that passes the row's filter is queued (the bus never waits: `offer` only appends to a
bounded queue), and a task of the row's own sends it with a short connection:
connect, USER, PASS, SEND, QUIT. A failed try is repeated a bounded number of times with
backoff; what still fails is logged and counted. At most `concurrency` sends of one row are
under way at once.

Escapes in `event` (a subset of vscpd's): ``%event`` (the whole line), ``%event.head``,
``%event.class``, ``%event.type``, ``%event.obid``, ``%event.timestamp``, ``%event.guid``,
``%event.sizedata``, ``%event.data`` (all data bytes), ``%event.data[n]`` and ``%%``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
from ioplex import ConfigError, Problem
from ioplex.queues import DropOldestQueue

from .client import CommandError, LinkClient, LinkError
from .event import Event, parse_line
from .filter import Filter, parse_fields
from .guid import format_guid

log = logging.getLogger("ioplex.plugin.vscp_link.remote")

_ESCAPE = re.compile(
    r"%(%|event(?:\.(head|class|type|obid|timestamp|guid|sizedata|data)(?:\[(\d+)\])?)?)"
)
_SAMPLE = Event(10, 6, bytes([0x88, 0x81, 0x00, 0xEB, 1, 2, 3, 4]), bytes(range(16)), 0x60, 1, 2)


def render(template: str, event: Event) -> str:
    """The template with its escapes replaced from `event`; IndexError for a data byte the
    event does not have."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) == "%":
            return "%"
        field, index = match.group(2), match.group(3)
        if field is None:
            return event.line()
        if index is not None:
            if field != "data":
                raise ValueError(f"{match.group(0)!r}: only %event.data takes an index")
            return f"0x{event.data[int(index)]:02X}"
        if field == "data":
            return ",".join(f"0x{b:02X}" for b in event.data)
        if field == "guid":
            return format_guid(event.guid)
        if field == "sizedata":
            return str(len(event.data))
        return str(
            {
                "head": event.head,
                "class": event.vscp_class,
                "type": event.vscp_type,
                "obid": event.obid,
                "timestamp": event.timestamp,
            }[field]
        )

    return _ESCAPE.sub(one, template)


class RemoteRow:
    """One send-to-remote row."""

    def __init__(self, index: int, settings: dict[str, Any]) -> None:
        self.where = f"plugins.vscp_link.send_to_remote[{index}]"
        self.host: str = settings["host"]
        self.port: int = settings["port"]
        self.user: str = settings["user"]
        self._password: str = settings["password"]
        self.template: str = settings["event"]
        self.retries: int = settings["retries"]
        self.timeout: float = settings["timeout"]
        self.concurrency: int = settings["concurrency"]
        fields = []
        for key in ("filter", "mask"):
            try:
                fields.append(parse_fields(settings[key]))
            except ValueError as exc:
                raise ConfigError([Problem(f"{self.where}.{key}", str(exc))]) from None
        self.filter = Filter(*fields)
        try:
            parse_line(render(self.template, _SAMPLE))
        except (ValueError, IndexError) as exc:
            raise ConfigError([Problem(
                f"{self.where}.event", f"{self.template!r} does not make an event line: {exc}"
            )]) from None
        self.queue: DropOldestQueue[Event] = DropOldestQueue(settings["queue_size"])
        self.sent = 0
        self.failed = 0
        self.matched = 0

    @property
    def dropped(self) -> int:
        """Matching events lost because the row's queue was full."""
        return self.queue.dropped

    def describe(self) -> str:
        return f"send-to-remote {self.where} ({self.host}:{self.port})"

    def offer(self, event: Event) -> None:
        """Queue `event` if the row's filter takes it. Never waits."""
        if self.filter.accepts_all or self.filter.accepts(event):
            self.matched += 1
            self.queue.put(event)

    async def run(self) -> None:
        """Take queued events and send each on its own task, `concurrency` at a time."""
        slots = anyio.Semaphore(self.concurrency)
        async with anyio.create_task_group() as tg:
            while True:
                event = await self.queue.get()
                await slots.acquire()
                tg.start_soon(self._send_then_release, event, slots)

    async def _send_then_release(self, event: Event, slots: anyio.Semaphore) -> None:
        try:
            await self.send(event)
        finally:
            slots.release()

    async def send(self, event: Event) -> bool:
        """Send one triggering event's line, retrying; return whether it got through."""
        try:
            line = parse_line(render(self.template, event)).line()
        except (ValueError, IndexError) as exc:
            self.failed += 1
            log.error(
                "%s: the event %r cannot be made from %s: %s",
                self.describe(),
                self.template,
                event.line(),
                exc,
            )
            return False
        for attempt in range(1, self.retries + 1):
            try:
                await self._send_once(line)
            except (OSError, TimeoutError, LinkError, anyio.BrokenResourceError) as exc:
                reason = (
                    "no answer in time"
                    if isinstance(exc, TimeoutError)
                    else str(exc) or type(exc).__name__
                )
                if attempt < self.retries:
                    delay = min(0.25 * 2 ** (attempt - 1), 5.0)
                    log.warning(
                        "%s: try %d of %d failed (%s); again in %.2f s",
                        self.describe(),
                        attempt,
                        self.retries,
                        reason,
                        delay,
                    )
                    await anyio.sleep(delay)
                    continue
                self.failed += 1
                log.error(
                    "%s: giving up on %s after %d tries: %s",
                    self.describe(),
                    line,
                    self.retries,
                    reason,
                )
                return False
            self.sent += 1
            return True
        return False

    async def _send_once(self, line: str) -> None:
        with anyio.fail_after(self.timeout * 4):  # the whole exchange, at most
            client = await LinkClient.open(
                self.host, self.port, timeout=self.timeout, connect_timeout=self.timeout
            )
            async with client:
                if self.user:
                    await client.login(self.user, self._password)
                try:
                    await client.command(f"SEND {line}")
                except CommandError as exc:
                    raise LinkError(f"SEND refused: {exc.reply}") from None
                try:
                    await client.command("QUIT")
                except (LinkError, OSError, TimeoutError, anyio.BrokenResourceError):
                    pass  # the event is delivered; a sloppy goodbye changes nothing
