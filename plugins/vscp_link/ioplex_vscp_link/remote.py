"""Send-to-remote: vscpd's decision-matrix action 0x43 ("send event to remote host").

Each ``[[plugins.vscp_link.send_to_remote]]`` row has a filter and mask, a remote server and
its login, and the event to send, where ``%event`` stands for the triggering event. A bus
event that passes the row's filter is queued (the bus never waits: `offer` only appends to a
bounded queue that counts what it drops).

Rows with the same remote (host, port and user) share one `Courier`: events for one remote
leave in the order they arrived, over one short connection at a time (connect, USER, PASS,
SEND..., QUIT), one SEND in flight (vscpd handles one command per TCP read). What is queued
while a connection is being made goes out over the same connection, up to `MAX_BATCH`.
A broken connection is retried with backoff for the events not yet answered, `retries`
times; what still fails, and what the remote refuses (``-OK``), is logged and counted in the
row's `failed`.

Escapes in `event` (vscpd's decision-matrix escapes, notes §8): ``%event`` (the whole line,
with obid 0: the remote assigns its own), ``%event.head``, ``.priority``, ``.class``,
``.type``, ``.obid``, ``.timestamp``, ``.guid``, ``.nickname``, ``.sizedata``, ``.data``
(all data bytes), ``.data[n]``, ``.year``, ``.month``, ``.day``, ``.hour``, ``.minute``,
``.second`` (the event's UTC datetime); ``%measurement.value``/``.float``, ``.string``,
``.index``, ``.unit``, ``.coding``, ``.zone``, ``.subzone``, ``.quantity`` (a measurement
event's decoded value, `measurement.decode`); the host's local date and time now:
``%isoboth``, ``%isobothms``, ``%isodate``, ``%isotime``, ``%mstime``, ``%unixtime``,
``%year``, ``%month``, ``%day``, ``%hour``, ``%minute``, ``%second``, ``%weekday`` (0 is
Sunday), ``%weekdaytxt``, ``%weekdaytxtfull``, ``%monthtxt``, ``%monthtxtfull``,
``%quarter``, ``%dayofyear``, ``%week``; and ``%%``, ``%;``.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
from ioplex import ConfigError, Problem
from ioplex.queues import DropOldestQueue
from ioplex.serving import RateLimitedLog

from .client import LinkClient, LinkError, with_obid
from .event import Event, parse_line, utc_now
from .filter import Filter, parse_fields
from .guid import format_guid
from .measurement import CODINGS, Measurement, decode

log = logging.getLogger("ioplex.plugin.vscp_link.remote")

MAX_BATCH = 1000
"""Most events sent over one connection; the next connection takes the rest."""

_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_CODING_BITS = {name: bits for bits, name in CODINGS.items()}


def _event_when(event: Event) -> datetime:
    return event.datetime if event.datetime is not None else utc_now()


def _measurement(event: Event) -> Measurement:
    try:
        found = decode(event)
    except ValueError as exc:
        raise ValueError(f"%measurement: {exc}") from None
    if found is None:
        raise ValueError(f"%measurement: class {event.vscp_class} carries no measurement")
    return found


_EVENT_FIELDS: dict[str, Callable[[Event], object]] = {
    "head": lambda e: e.head,
    "priority": lambda e: e.priority,
    "class": lambda e: e.vscp_class,
    "type": lambda e: e.vscp_type,
    "obid": lambda e: e.obid,
    "timestamp": lambda e: e.timestamp,
    "guid": lambda e: format_guid(e.guid),
    "nickname": lambda e: e.guid[15],
    "sizedata": lambda e: len(e.data),
    "data": lambda e: ",".join(f"0x{b:02X}" for b in e.data),
    "year": lambda e: _event_when(e).year,
    "month": lambda e: _event_when(e).month,
    "day": lambda e: _event_when(e).day,
    "hour": lambda e: _event_when(e).hour,
    "minute": lambda e: _event_when(e).minute,
    "second": lambda e: _event_when(e).second,
}
_MEASUREMENT_FIELDS: dict[str, Callable[[Measurement], object]] = {
    "value": lambda m: repr(m.value),
    "float": lambda m: repr(m.value),
    "string": lambda m: f"{m.value:g}",
    "index": lambda m: m.sensor,
    "unit": lambda m: m.unit,
    "coding": lambda m: _CODING_BITS[m.coding],
    "zone": lambda m: m.zone or 0,
    "subzone": lambda m: m.subzone or 0,
    "quantity": lambda m: m.quantity,
}
_NOW_FIELDS: dict[str, Callable[[datetime], object]] = {
    "isobothms": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}",
    "isoboth": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S"),
    "isodate": lambda t: t.strftime("%Y-%m-%d"),
    "isotime": lambda t: t.strftime("%H:%M:%S"),
    "mstime": lambda t: int(t.timestamp() * 1000),
    "unixtime": lambda t: int(t.timestamp()),
    "year": lambda t: t.year,
    "month": lambda t: t.month,
    "day": lambda t: t.day,
    "hour": lambda t: t.hour,
    "minute": lambda t: t.minute,
    "second": lambda t: t.second,
    "weekdaytxtfull": lambda t: _WEEKDAYS[t.isoweekday() % 7],
    "weekdaytxt": lambda t: _WEEKDAYS[t.isoweekday() % 7][:3],
    "weekday": lambda t: t.isoweekday() % 7,
    "monthtxtfull": lambda t: _MONTHS[t.month - 1],
    "monthtxt": lambda t: _MONTHS[t.month - 1][:3],
    "quarter": lambda t: (t.month - 1) // 3 + 1,
    "dayofyear": lambda t: t.timetuple().tm_yday,
    "week": lambda t: t.isocalendar().week,
}


def _alternatives(names: Any) -> str:
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


_ESCAPE = re.compile(
    r"%(?:(?P<percent>%)|(?P<semicolon>;)"
    rf"|event\.(?P<event>{_alternatives(_EVENT_FIELDS)})(?:\[(?P<index>\d+)\])?"
    r"|(?P<whole>event)"
    rf"|measurement\.(?P<measurement>{_alternatives(_MEASUREMENT_FIELDS)})"
    rf"|(?P<now>{_alternatives(_NOW_FIELDS)}))"
)
_SAMPLE = Event(10, 6, bytes([0x88, 0x81, 0x00, 0xEB]), bytes(range(16)), 0x60, 1, 2)


def render(template: str, event: Event, now: datetime | None = None) -> str:
    """The template with its escapes replaced from `event` (and the local time `now`);
    ValueError or IndexError, saying why, when the event lacks what an escape needs."""
    cache: dict[str, Any] = {}

    def one(match: re.Match[str]) -> str:
        if match.group("percent"):
            return "%"
        if match.group("semicolon"):
            return ";"
        if match.group("whole"):
            return with_obid(event, 0)
        field = match.group("event")
        if field is not None:
            index = match.group("index")
            if index is not None:
                if field != "data":
                    raise ValueError(f"{match.group(0)!r}: only %event.data takes an index")
                return f"0x{event.data[int(index)]:02X}"
            return str(_EVENT_FIELDS[field](event))
        field = match.group("measurement")
        if field is not None:
            if "m" not in cache:
                cache["m"] = _measurement(event)
            return str(_MEASUREMENT_FIELDS[field](cache["m"]))
        if "now" not in cache:
            cache["now"] = now or datetime.now().astimezone()
        return str(_NOW_FIELDS[match.group("now")](cache["now"]))

    return _ESCAPE.sub(one, template)


_sequence = itertools.count()
"""Arrival order across the rows of one courier."""


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
            raise ConfigError(
                [
                    Problem(
                        f"{self.where}.event",
                        f"{self.template!r} does not make an event line: {exc}",
                    )
                ]
            ) from None
        self.queue: DropOldestQueue[tuple[int, Event]] = DropOldestQueue(settings["queue_size"])
        self.courier: Courier | None = None
        self.sent = 0
        self.failed = 0
        self.matched = 0

    @property
    def destination(self) -> tuple[str, int, str, str]:
        """Rows with the same destination share a courier (and its order)."""
        return (self.host, self.port, self.user, self._password)

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
            self.queue.put((next(_sequence), event))
            if self.courier is not None:
                self.courier.wake()

    def line_for(self, event: Event) -> str | None:
        """The event line to send for `event`, or None (logged and counted) if the template
        cannot be filled from it."""
        try:
            return parse_line(render(self.template, event)).line()
        except (ValueError, IndexError) as exc:
            self.failed += 1
            _errors.error(
                f"render {self.where}",
                "%s: the event %r cannot be made from %s: %s",
                self.describe(),
                self.template,
                event.line(),
                exc,
            )
            return None


_errors = RateLimitedLog(log, 60.0)


class Courier:
    """Sends the events of the rows that share one remote, in arrival order."""

    def __init__(self, rows: list[RemoteRow]) -> None:
        self.rows = rows
        first = rows[0]
        self.host, self.port, self.user = first.host, first.port, first.user
        self._password = first._password
        self.retries = max(r.retries for r in rows)
        self.timeout = max(r.timeout for r in rows)
        self._wakeup = anyio.Event()
        self._heads: dict[RemoteRow, tuple[int, Event]] = {}
        """The oldest event of each row, taken out of its queue to compare arrival order."""
        for row in rows:
            row.courier = self

    def describe(self) -> str:
        return f"send-to-remote {self.host}:{self.port} ({', '.join(r.where for r in self.rows)})"

    def wake(self) -> None:
        self._wakeup.set()

    def _take(self) -> list[tuple[RemoteRow, str]]:
        """Up to MAX_BATCH queued events of all rows, oldest first, as lines to send."""
        batch: list[tuple[RemoteRow, str]] = []
        heads = self._heads
        for row in self.rows:
            if row not in heads and (item := row.queue.get_nowait()) is not None:
                heads[row] = item
        while heads and len(batch) < MAX_BATCH:
            row = min(heads, key=lambda r: heads[r][0])
            _, event = heads.pop(row)
            if (item := row.queue.get_nowait()) is not None:
                heads[row] = item
            line = row.line_for(event)
            if line is not None:
                batch.append((row, line))
        return batch

    async def run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                self._wakeup = anyio.Event()
                if not self._heads and not any(len(row.queue) for row in self.rows):
                    await self._wakeup.wait()
                continue
            await self._deliver(deque(batch))

    async def _deliver(self, batch: deque[tuple[RemoteRow, str]]) -> None:
        """Send a batch, trying again for what is not answered yet."""
        for attempt in range(1, self.retries + 1):
            try:
                await self._send_once(batch)
                return
            except (OSError, TimeoutError, LinkError, anyio.BrokenResourceError) as exc:
                reason = (
                    "no answer in time"
                    if isinstance(exc, TimeoutError)
                    else str(exc) or type(exc).__name__
                )
                if attempt < self.retries:
                    delay = min(0.25 * 2 ** (attempt - 1), 5.0)
                    _errors.warning(
                        f"try {self.describe()}",
                        "%s: try %d of %d failed (%s); again in %.2f s (%d event(s) waiting)",
                        self.describe(),
                        attempt,
                        self.retries,
                        reason,
                        delay,
                        len(batch),
                    )
                    await anyio.sleep(delay)
                    continue
                for row, _ in batch:
                    row.failed += 1
                _errors.error(
                    f"give up {self.describe()}",
                    "%s: giving up on %d event(s) after %d tries (first: %s): %s",
                    self.describe(),
                    len(batch),
                    self.retries,
                    batch[0][1],
                    reason,
                )
                return

    async def _send_once(self, batch: deque[tuple[RemoteRow, str]]) -> None:
        with anyio.fail_after(self.timeout * (4 + len(batch))):  # the whole exchange
            client = await LinkClient.open(
                self.host, self.port, timeout=self.timeout, connect_timeout=self.timeout
            )
            async with client:
                if self.user:
                    await client.login(self.user, self._password)

                def answered(index: int, refusal: str | None) -> None:
                    row, line = batch.popleft()
                    if refusal is None:
                        row.sent += 1
                        return
                    row.failed += 1
                    _errors.error(
                        f"refused {self.describe()}",
                        "%s: SEND refused: %s: %s",
                        self.describe(),
                        refusal,
                        line,
                    )

                await client.send_events([line for _, line in batch], answered)
                try:
                    await client.command("QUIT")
                except (LinkError, OSError, TimeoutError, anyio.BrokenResourceError):
                    pass  # the events are delivered; a sloppy goodbye changes nothing


def couriers(rows: list[RemoteRow]) -> list[Courier]:
    """One courier per distinct remote of `rows`."""
    groups: dict[tuple[str, int, str, str], list[RemoteRow]] = {}
    for row in rows:
        groups.setdefault(row.destination, []).append(row)
    return [Courier(group) for group in groups.values()]


__all__ = ["Courier", "RemoteRow", "couriers", "render"]
