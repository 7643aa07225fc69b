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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

import anyio

from .errors import PointNameError, PointTypeError, ReadOnlyPointError, UnknownPointError
from .points import (
    DEFAULT_MAX_STRING,
    INT_MAX,
    INT_MIN,
    VALUE_TYPES,
    Point,
    PointEvent,
    Quality,
    Value,
    check_name,
    check_pattern,
    check_value,
    make_event,
    printable,
)

if TYPE_CHECKING:
    from .ioserver import IOServer

log = logging.getLogger("ioplex.registry")

DEFAULT_QUEUE_SIZE = 10_000
"""How many undelivered events a subscription holds before it drops the oldest."""


_GLOB = re.compile(r"[*?\[]")


def _compile(patterns: tuple[str, ...]) -> Callable[[str], Any]:
    """A matcher for names: exact names by a set lookup, globs by one regular expression.

    A subscriber naming ten thousand points (a rules engine) then costs one set lookup per
    point when subscriptions change, not a ten-thousand-branch regex.
    """
    for p in patterns:
        check_pattern(p)
    if any(p == "*" for p in patterns):
        return lambda name: True
    exact = frozenset(p for p in patterns if not _GLOB.search(p))
    globs = [p for p in patterns if p not in exact]
    if not globs:
        return exact.__contains__
    regex = re.compile("|".join(fnmatch.translate(p) for p in globs)).match
    if not exact:
        return regex
    return lambda name: name in exact or regex(name) is not None


class _Receiver:
    """What the registry delivers events to. Its `_sink` is where events go: a deque for a
    subscription, a deque-shaped callback for a listener (see `Registry.update`)."""

    _sink: deque

    def __init__(self, registry: Registry, patterns: tuple[str, ...]) -> None:
        if not patterns:
            raise PointNameError("subscribe needs at least one pattern, e.g. '*'")
        self.patterns = patterns
        self._matches = _compile(patterns)
        self._registry = registry
        self.closed = False
        registry._attach(self)

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
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._sink = deque(maxlen=maxsize)
        self.dropped = 0
        """How many events were dropped because the queue was full."""
        self._wakeup: anyio.Event | None = None
        super().__init__(registry, patterns)

    @property
    def maxsize(self) -> int:
        return self._sink.maxlen  # type: ignore[return-value]

    def close(self) -> None:
        super().close()
        self._registry._sleepers.pop(self, None)
        if self._wakeup is not None:
            self._wakeup.set()

    def pending(self) -> int:
        """How many events are queued and not yet taken."""
        return len(self._sink)

    def get_nowait(self) -> PointEvent | None:
        """The next queued event, or None when the queue is empty."""
        return make_event(PointEvent, self._sink.popleft()) if self._sink else None

    def drain(self) -> list[tuple[str, Value, Value, float, Quality]]:
        """Take every queued event at once, as plain ``(name, value, old_value, time,
        quality)`` tuples: the fields of `PointEvent`, in its order, without building an
        object per event. For consumers that handle thousands of changes a second."""
        items = list(self._sink)
        self._sink.clear()
        return items

    async def wait(self) -> None:
        """Wait until at least one event is queued (or the subscription is closed)."""
        while not self._sink and not self.closed:
            self._wakeup = anyio.Event()
            self._registry._sleepers[self] = self._wakeup
            await self._wakeup.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> PointEvent:
        if not self._sink:
            await self.wait()
            if not self._sink:
                raise StopAsyncIteration
        return make_event(PointEvent, self._sink.popleft())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CallbackSink(deque):
    """A deque that is never full and whose `append` is a callback: lets the registry's hot
    loop treat listeners and subscriptions alike, without a type check per delivery."""

    def __init__(self, append: Callable[[PointEvent], Any]) -> None:
        super().__init__(maxlen=None)
        self.append = append  # type: ignore[method-assign]


class Listener(_Receiver):
    """A synchronous callback for matching changes, for in-process consumers on the hot path
    (data loggers, replication servers). The callback must be quick and must not block; an
    exception from it is logged and does not reach the driver that made the change."""

    def __init__(
        self, registry: Registry, patterns: tuple[str, ...], callback: Callable[[PointEvent], Any]
    ) -> None:
        self._callback = callback
        self.errors = 0
        self._sink = _CallbackSink(self._deliver)
        super().__init__(registry, patterns)

    def _deliver(self, raw: tuple) -> None:
        event = make_event(PointEvent, raw)
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
        self._by_sink: dict[int, _Receiver] = {}
        self._sleepers: dict[Subscription, anyio.Event] = {}
        self._gen = 0
        self.declared = 0
        """How many points were ever declared here (the host's garbage-collector policy)."""
        self.generation = 0
        """Changes whenever a point is declared or removed: a consumer that keeps `Point`
        objects it looked up (the events engine's rule plans) compares it to know they are
        still this registry's."""
        self._clock = clock
        self._min_segments = min_segments
        self.max_string = DEFAULT_MAX_STRING
        """The longest string value (``[host] max_string``); see `check_value`."""
        self.refused = 0
        """Values refused by the value contract since the start (see `update_many`)."""
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
        msg = f"unknown {what} '{printable(str(name))}'"
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
        nonfinite: bool = False,
        sensitive: bool = False,
        follows_connection: bool = True,
    ) -> Point:
        """Create a point. Its type is `type`, else that of `value`; None means any scalar.

        Subscribers see the new point as an event with `old_value` None, unless `quiet`.
        `nonfinite`, `sensitive` and `follows_connection` are described on `Point`.
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
        value = check_value(name, value, type, max_string=self.max_string, nonfinite=nonfinite)
        point = Point(
            name,
            None if not quiet else value,
            owner=owner,
            writable=writable,
            type=type,
            quality=quality,
            now=self._clock(),
            meta=meta,
            nonfinite=nonfinite,
            sensitive=sensitive,
            follows_connection=follows_connection,
        )
        self._points[name] = point
        self.declared += 1
        self.generation += 1
        if not quiet:  # subscribers see a new point as a change from None
            self.update(point, value, quality, force=True)
        return point

    def remove(self, name: str) -> Point:
        """Forget a point (e.g. it vanished from a remote on rediscovery)."""
        point = self._points.pop(name)
        self.generation += 1
        return point

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
        return self.update_many(((point, value),), quality, force, quiet) == 1

    def update_many(
        self,
        changes: Iterable[tuple[Point, Value]],
        quality: Quality = Quality.GOOD,
        force: bool = False,
        quiet: bool = False,
    ) -> int:
        """`update` for a batch of ``(point, value)`` pairs that arrived together (one poll
        of a device, one message from a remote); they share one timestamp. Returns how many
        changed. About twice as fast per change as `update` for drivers that push many.

        Every value meets the value contract (`check_value`). A value that does not is not
        stored, the rest of the batch is, and then PointTypeError names the first refused
        value and how many there were: one bad value never stops the others.
        """
        # The host's hottest loop: everything is inlined, no call per change or subscriber.
        # The value contract costs one class test per change and a comparison for numbers;
        # check_value runs only for a value that needs converting or looks wrong.
        now = self._clock()
        gen = self._gen
        changed = 0
        refused: list[PointTypeError] = []
        max_string = self.max_string
        for point, value in changes:
            cls = value.__class__
            if (
                (cls is not point.type and value is not None)
                or (cls is int and not INT_MIN <= value <= INT_MAX)
                or (cls is float and value - value != 0.0 and not point.nonfinite)
                or (cls is str and (len(value) > max_string or not value.isascii()))
            ):
                try:
                    value = check_value(
                        point.name,
                        value,
                        point.type,
                        max_string=max_string,
                        nonfinite=point.nonfinite,
                    )
                except PointTypeError as exc:
                    refused.append(exc)
                    continue
            point.last_updated = now
            old = point.value
            if (
                not force
                and point.quality is quality
                and old == value
                and old.__class__ is value.__class__
            ):
                continue
            point.value = value
            point.quality = quality
            point.last_changed = now
            changed += 1
            if quiet:
                continue
            if point._gen != gen:
                self._refresh(point)
            sinks = point._subs
            if sinks:
                # Sinks hold plain tuples: a PointEvent is made only when a reader takes one.
                event = (point.name, value, old, now, quality)
                for sink in sinks:
                    queued = len(sink)
                    if queued == sink.maxlen:
                        self._overflow(sink)
                    sink.append(event)
                    if not queued and self._sleepers:  # empty until now: its reader may sleep
                        self._wake(sink)
        if refused:
            self.refused += len(refused)
            more = (
                f" (and {len(refused) - 1} more values of this batch)" if len(refused) > 1 else ""
            )
            raise PointTypeError(f"{refused[0]}{more}")
        return changed

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
        if not isinstance(name, str):
            raise PointNameError(f"a point name must be a string, not {type(name).__name__}")
        point = self._points.get(name) or self.declare_on_write(name) or self[name]
        if not point.writable:
            raise ReadOnlyPointError(f"{printable(name)} is read-only")
        value = check_value(
            name, value, point.type, max_string=self.max_string, nonfinite=point.nonfinite
        )
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
        self._by_sink[id(receiver._sink)] = receiver
        self._gen += 1

    def _detach(self, receiver: _Receiver) -> None:
        self._receivers.remove(receiver)
        del self._by_sink[id(receiver._sink)]
        self._gen += 1

    def _overflow(self, sink: deque) -> None:
        receiver = self._by_sink.get(id(sink))
        if receiver is not None:
            receiver.dropped += 1  # type: ignore[attr-defined]

    def _wake(self, sink: deque) -> None:
        """Wake the reader of `sink` if it is waiting for events."""
        wakeup = self._sleepers.pop(self._by_sink.get(id(sink)), None)  # type: ignore[arg-type]
        if wakeup is not None:
            wakeup.set()

    def _refresh(self, point: Point) -> None:
        name = point.name
        point._subs = tuple(r._sink for r in self._receivers if r._matches(name))
        point._gen = self._gen
