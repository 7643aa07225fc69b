"""The point registry: named values, change detection, pattern subscriptions, writes.

A host has two registries built from this one class: `host.points` (I/O data points) and
`host.ui` (UI variables). Drivers update points through their `IOServer` handle; everything
else reads, subscribes and writes here.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import PointNameError, PointTypeError, ReadOnlyPointError, UnknownPointError
from .queues import DropOldestQueue
from .points import (
    VALUE_TYPES,
    Point,
    PointEvent,
    Quality,
    Value,
    check_name,
    check_pattern,
    check_value,
)

if TYPE_CHECKING:
    from .ioserver import IOServer

log = logging.getLogger("ioplex.registry")

DEFAULT_QUEUE_SIZE = 10_000
"""How many undelivered events a subscription holds before it drops the oldest."""


def _compile(patterns: tuple[str, ...]) -> Callable[[str], Any]:
    for p in patterns:
        check_pattern(p)
    if any(p == "*" for p in patterns):
        return lambda name: True
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)).match


class _Receiver:
    """What the registry delivers events to: matches names, takes events."""

    def __init__(self, registry: Registry, patterns: tuple[str, ...]) -> None:
        if not patterns:
            raise PointNameError("subscribe needs at least one pattern, e.g. '*'")
        self.patterns = patterns
        self._matches = _compile(patterns)
        self._registry = registry
        self.closed = False
        registry._attach(self)

    def _deliver(self, event: PointEvent) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Stop receiving events. Idempotent."""
        if not self.closed:
            self.closed = True
            self._registry._detach(self)


class Subscription(_Receiver):
    """Change events of the points whose names match any of `patterns`, as an async iterator.

    Overflow policy: at most `maxsize` events wait in the queue. When an event arrives at a
    full queue the *oldest* waiting event is dropped and `dropped` counts it, so the producer
    never waits and memory stays bounded; a consumer that fell behind still gets the most
    recent changes and can read `registry[name]` for current values.
    """

    def __init__(self, registry: Registry, patterns: tuple[str, ...], maxsize: int) -> None:
        self._queue: DropOldestQueue[PointEvent] = DropOldestQueue(maxsize)
        self._deliver = self._queue.put  # type: ignore[method-assign]  # the hot path
        super().__init__(registry, patterns)

    @property
    def dropped(self) -> int:
        """How many events were dropped because the queue was full."""
        return self._queue.dropped

    @property
    def maxsize(self) -> int:
        return self._queue.maxsize

    def close(self) -> None:
        super().close()
        self._queue.close()

    def pending(self) -> int:
        """How many events are queued and not yet taken."""
        return len(self._queue)

    def get_nowait(self) -> PointEvent | None:
        """The next queued event, or None when the queue is empty."""
        return self._queue.get_nowait()

    def drain(self) -> list[PointEvent]:
        """Take every queued event at once (cheaper than iterating one by one)."""
        return self._queue.drain()

    async def wait(self) -> None:
        """Wait until at least one event is queued (or the subscription is closed)."""
        await self._queue.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> PointEvent:
        try:
            return await self._queue.get()
        except EOFError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Listener(_Receiver):
    """A synchronous callback for matching changes, for in-process consumers on the hot path
    (data loggers, replication servers). The callback must be quick and must not block; an
    exception from it is logged and does not reach the driver that made the change."""

    def __init__(
        self, registry: Registry, patterns: tuple[str, ...], callback: Callable[[PointEvent], Any]
    ) -> None:
        self._callback = callback
        self.errors = 0
        super().__init__(registry, patterns)

    def _deliver(self, event: PointEvent) -> None:
        try:
            self._callback(event)
        except Exception:
            self.errors += 1
            log.exception("listener %r failed on %s", self._callback, event.name)


class Registry:
    """Points by name, with change detection and subscriptions.

    `kind` is "io" for data points and "ui" for UI variables; it is passed to drivers' write
    hooks as `namespace`. Reading behaves like a read-only mapping of name to `Point`.
    """

    def __init__(
        self,
        kind: str = "io",
        *,
        clock: Callable[[], float] = time.time,
        min_segments: int = 2,
    ) -> None:
        self.kind = kind
        self._points: dict[str, Point] = {}
        self._receivers: list[_Receiver] = []
        self._gen = 0
        self._clock = clock
        self._min_segments = min_segments
        self.declare_on_write: Callable[[str], Point | None] = lambda name: None
        """Asked for a point when a write names an undeclared one (see
        `IOServer.declare_family`); returns the newly declared point or None."""

    # -- reading -----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Point:
        try:
            return self._points[name]
        except KeyError:
            raise UnknownPointError(self._unknown(name)) from None

    def _unknown(self, name: str) -> str:
        what = "UI variable" if self.kind == "ui" else "point"
        msg = f"unknown {what} {name!r}"
        if len(self._points) <= 5000:  # difflib is O(n); skip the hint on huge registries
            close = difflib.get_close_matches(name, self._points, n=1)
            if close:
                msg += f"; did you mean {close[0]!r}?"
        return msg

    def __contains__(self, name: object) -> bool:
        return name in self._points

    def __iter__(self) -> Iterator[str]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def get(self, name: str) -> Point | None:
        return self._points.get(name)

    def values(self) -> Iterator[Point]:
        return iter(self._points.values())

    def match(self, *patterns: str) -> list[Point]:
        """Every point whose name matches one of the glob patterns."""
        matches = _compile(patterns)
        return [p for n, p in self._points.items() if matches(n)]

    # -- declaring ---------------------------------------------------------------------------
    def declare(
        self,
        name: str,
        value: Value = None,
        *,
        owner: IOServer | None = None,
        writable: bool = False,
        type: type | str | None = None,
        quality: Quality = Quality.GOOD,
        meta: dict[str, Any] | None = None,
        quiet: bool = False,
    ) -> Point:
        """Create a point. Its type is `type`, else that of `value`; None means any scalar.

        Subscribers see the new point as an event with `old_value` None, unless `quiet`.
        """
        check_name(name, min_segments=self._min_segments)
        if name in self._points:
            other = self._points[name].ioserver
            raise PointNameError(
                f"{name!r} is already declared" + (f" by I/O server {other!r}" if other else "")
            )
        if isinstance(type, str):
            if type not in VALUE_TYPES:
                raise PointTypeError(
                    f"{name}: unknown point type {type!r}; expected one of {sorted(VALUE_TYPES)}"
                )
            type = VALUE_TYPES[type]
        if type is None and value is not None:
            type = value.__class__
        value = check_value(name, value, type)
        point = Point(
            name,
            value,
            owner=owner,
            writable=writable,
            type=type,
            quality=quality,
            now=self._clock(),
            meta=meta,
        )
        self._points[name] = point
        if not quiet:
            self._notify(point, None)
        return point

    def remove(self, name: str) -> Point:
        """Forget a point (e.g. it vanished from a remote on rediscovery)."""
        return self._points.pop(name)

    # -- updating (the hot path) ------------------------------------------------------------
    def update(
        self,
        point: Point,
        value: Value,
        quality: Quality = Quality.GOOD,
        force: bool = False,
        quiet: bool = False,
    ) -> bool:
        """Set a point's value and quality; return whether it changed.

        The same value and quality only refresh `last_updated` unless `force` is set, for
        points whose every update is meaningful (a command's exit status). `quiet` changes the
        value without telling subscribers (an initial alignment that must not raise events).
        """
        now = self._clock()
        point.last_updated = now
        old = point.value
        if value.__class__ is not point.type and value is not None:
            value = check_value(point.name, value, point.type)
        if (
            not force
            and point.quality is quality
            and old == value
            and old.__class__ is value.__class__
        ):
            return False
        point.value = value
        point.quality = quality
        point.last_changed = now
        if quiet:
            return True
        if point._gen != self._gen:
            self._refresh(point)
        receivers = point._subs
        if receivers:
            event = PointEvent(point.name, value, old, now, quality)
            for receiver in receivers:
                receiver._deliver(event)
        return True

    def set_quality(self, points: Iterator[Point] | list[Point], quality: Quality) -> None:
        """Change the quality of many points at once, keeping their values."""
        for point in points:
            if point.quality is not quality:
                self.update(point, point.value, quality)

    # -- writing -----------------------------------------------------------------------------
    async def write(self, name: str, value: Any) -> None:
        """Ask the owning I/O server to write `value` to the point `name`.

        Raises UnknownPointError, ReadOnlyPointError or PointTypeError before anything is
        sent; whatever the driver raises (WriteError, FatalError, ...) reaches the caller.
        A UI variable with no owner is simply set.
        """
        point = self._points.get(name) or self.declare_on_write(name) or self[name]
        if not point.writable:
            raise ReadOnlyPointError(f"{name} is read-only")
        value = check_value(name, value, point.type)
        if point.owner is None:
            self.update(point, value)
        else:
            await point.owner.write(point, value, self.kind)

    # -- subscribing ---------------------------------------------------------------------------
    def subscribe(self, *patterns: str, maxsize: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        """Subscribe to changes of the points matching any of the glob `patterns`.

        Use as `async with registry.subscribe("remote.*") as events: async for e in events:`.
        Events queue from this call on; closing (leaving the `with`) stops them.
        """
        return Subscription(self, patterns, maxsize)

    def listen(self, callback: Callable[[PointEvent], Any], *patterns: str) -> Listener:
        """Call `callback(event)` synchronously for every matching change (see Listener)."""
        return Listener(self, patterns, callback)

    def _attach(self, receiver: _Receiver) -> None:
        self._receivers.append(receiver)
        self._gen += 1

    def _detach(self, receiver: _Receiver) -> None:
        self._receivers.remove(receiver)
        self._gen += 1

    def _refresh(self, point: Point) -> None:
        name = point.name
        point._subs = tuple(r for r in self._receivers if r._matches(name))
        point._gen = self._gen

    def _notify(self, point: Point, old: Value) -> None:
        self._refresh(point)
        if point._subs:
            event = PointEvent(point.name, point.value, old, point.last_changed, point.quality)
            for receiver in point._subs:
                receiver._deliver(event)

