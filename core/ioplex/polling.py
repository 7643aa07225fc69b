"""The polling-driver helper: one `Poller` per instance does what every polling driver needs.

A device that must be asked for its values (Modbus, a serial thermostat, an HTTP status page)
needs the same machinery in every driver: a schedule per point, one request at a time on the
line, a timeout on every request, a lost connection noticed and reported, writes refused while
offline and confirmed by reading back. Written once here, a driver is left with the protocol::

    class Driver:
        def __init__(self, ioserver):
            self.poller = ioplex.Poller(ioserver, read=self.get, write=self.put, interval=5)
            self.poller.point("temp", type=float)
            self.poller.point("setpoint", type=float, writable=True, every=60)

        @ioplex.hookimpl
        async def connect(self, ioserver):
            async with await anyio.connect_tcp(...) as self.stream:
                await self.poller.run()        # reads everything, goes online, polls

        @ioplex.hookimpl
        async def write(self, ioserver, point, value):
            await self.poller.write(point, value)

        async def get(self, address): ...      # one request: the value of one point
        async def put(self, address, value): ...

What it guarantees:

- Every point is read as soon as `run` starts, before the instance goes online, so values
  carried over a reconnect are confirmed (or marked ``bad``) at once; then each point is read
  every `every` seconds (its own, or the poller's `interval`). A poll that falls behind skips
  the missed turns instead of reading back to back (`late` counts them).
- One request at a time: reads, writes, read-backs and the driver's own requests (`call`) take
  turns on a fair lock, each bounded by `timeout`. A write waits at most `write_timeout` for
  its turn.
- A request that times out or fails (anything but `DeviceError`) means the link is lost:
  `run` raises, the instance goes offline (its points ``bad``) and the supervisor calls
  `connect` again with backoff. A failure seen by a write ends `run` the same way.
- `DeviceError` from the driver's read means "the device answered, but not for this point":
  that point alone gets quality ``bad`` (logged, rate-limited) and the link stays up. A value
  that breaks the value contract is treated the same way.
- Writes are refused with `WriteError` while offline, when too many are waiting
  (`max_pending`, counted in `refused`), or when the device fails them; a write that worked is
  read back (read-after-write) and the point shows what the device reports.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import anyio.lowlevel

from .errors import FatalError, IoplexError, WriteError
from .points import Point, PointTypeError, Quality, Value, check_value, describe_value
from .serving.ratelog import RateLimitedLog
from .supervisor import describe

if TYPE_CHECKING:
    from .ioserver import IOServer

T = TypeVar("T")

ReadFn = Callable[[Any], Awaitable[Value]]
"""``async read(address) -> value``: one request for one point's value."""
ReadManyFn = Callable[[list[Any]], Awaitable[Sequence["Value | DeviceError"]]]
"""``async read_many(addresses) -> values``: one request for several points, in order; an
element may be a `DeviceError` for a point the device refused."""
WriteFn = Callable[[Any, Value], Awaitable[object]]
"""``async write(address, value)``: one request that sets one point on the device."""


class DeviceError(IoplexError):
    """The device answered, but refused or could not serve this one point.

    Raised by a driver's read or write function for a per-point error reply (an unknown
    register, a Modbus exception response): the link stays up and only that point is affected.
    Any other exception from those functions means the link is lost. `Poller.read` raises it
    too when it cannot give a fresh value.
    """


@dataclass(eq=False)
class _Polled:
    point: Point
    address: Any
    every: float
    read_after_write: bool
    due: float = 0.0
    removed: bool = False


class Poller:
    """Polls one instance's points and carries out its writes, one request at a time.

    `read` (or `read_many`, for protocols that read several points in one request) and
    `write` are the driver's protocol functions; they get a point's `address` (by default its
    id) and run under the poller's lock and timeout, so they need neither. `interval` is the
    default poll period in seconds, `timeout` bounds each request, `write_timeout` bounds how
    long a write waits for its turn, `max_pending` how many writes may wait at once, `batch`
    how many points one `read_many` call asks for.
    """

    def __init__(
        self,
        ioserver: IOServer,
        *,
        read: ReadFn | None = None,
        read_many: ReadManyFn | None = None,
        write: WriteFn | None = None,
        interval: float = 5.0,
        timeout: float = 5.0,
        write_timeout: float = 10.0,
        max_pending: int = 64,
        batch: int = 64,
    ) -> None:
        if read is None and read_many is None:
            raise TypeError("Poller needs read or read_many")
        for what, number in (
            ("interval", interval),
            ("timeout", timeout),
            ("write_timeout", write_timeout),
        ):
            if not number > 0:
                raise ValueError(f"Poller {what} must be positive, not {number!r}")
        if max_pending < 1 or batch < 1:
            raise ValueError("Poller max_pending and batch must be at least 1")
        self.io = ioserver
        self._read = read
        self._read_many = read_many
        self._write = write
        self.interval = interval
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.max_pending = max_pending
        self.batch = batch
        self._polled: dict[str, _Polled] = {}
        self._heap: list[tuple[float, int, _Polled]] = []
        self._seq = itertools.count()
        self._lock = anyio.Lock()
        self._wake = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._failure: BaseException | None = None
        self._online = False
        self._pending = 0
        self._complaints = RateLimitedLog(ioserver.log, interval=60.0)
        self.reads = 0
        """Point values read from the device since the start."""
        self.late = 0
        """Poll turns skipped because the poll fell behind its schedule."""
        self.refused = 0
        """Writes refused at once because `max_pending` writes were already waiting."""

    # -- declaring ------------------------------------------------------------------------------
    def point(
        self,
        id: str,
        *,
        type: type,
        every: float | None = None,
        writable: bool = False,
        address: Any = None,
        read_after_write: bool = True,
        **declare: Any,
    ) -> Point:
        """Declare the point ``<instance>.<id>`` and poll it every `every` seconds.

        `every` defaults to the poller's interval; ``math.inf`` reads the point once per
        connection (a serial number) and after each write. `address` is what the read and
        write functions get (default: `id`). With `read_after_write` a write is confirmed by
        reading the point back; without it, the written value is stored once the write
        function returns. Other keywords (`meta`, `nonfinite`, ...) go to `IOServer.declare`;
        a new point is ``bad`` until its first read. Calling it again for a polled id updates
        its settings. Safe while running (from `discover`): a new point is read at once.
        """
        every = self.interval if every is None else every
        if not every > 0:
            raise ValueError(f"{self.io.name}.{id}: poll interval must be positive, not {every!r}")
        if writable and self._write is None:
            raise TypeError(f"{self.io.name}.{id}: writable, but the Poller has no write function")
        declare.setdefault("quality", Quality.BAD)  # no value from the device yet
        point = self.io.declare(id, None, type=type, writable=writable, **declare)
        polled = self._polled.get(id)
        if polled is not None and polled.point is point:
            polled.address = id if address is None else address
            polled.every, polled.read_after_write = every, read_after_write
            return point
        if polled is not None:
            polled.removed = True
        polled = _Polled(point, id if address is None else address, every, read_after_write)
        self._polled[id] = polled
        self._schedule(polled, anyio.current_time() if self._online else 0.0)
        self._wake.set()
        return point

    def forget(self, id: str) -> None:
        """Stop polling `id` (the point itself stays declared)."""
        polled = self._polled.pop(id, None)
        if polled is not None:
            polled.removed = True

    @property
    def online(self) -> bool:
        """Whether `run` is polling: between its first full read and its end."""
        return self._online

    # -- running --------------------------------------------------------------------------------
    async def run(self) -> NoReturn:
        """Read every point, set the instance online, then poll until the link fails.

        Call it inside `connect` once the connection is open; it never returns. It raises
        ConnectionError when a request times out or fails (the kernel then reconnects with
        backoff), FatalError as the driver raised it, and cancellation as usual. Values
        carried over from the last connection stay ``bad`` until this first read confirms
        them; the instance goes online only then.
        """
        if self._scope is not None:
            raise RuntimeError(f"{self.io.name}: Poller.run is already running")
        self._failure = None
        try:
            with anyio.CancelScope() as self._scope:
                self._heap = []
                for polled in self._polled.values():
                    self._schedule(polled, 0.0)
                good, bad = await self._poll_due()  # everything is due: the first full read
                self._online = True
                self.io.set_online(restore_quality=False)
                self._store(good, bad)
                self._restore_unpolled()
                while True:
                    await self._sleep_until_due()
                    self._store(*await self._poll_due())
        finally:
            self._online = False
            self._scope = None
        # Only a failure reported by another task (a write) cancels our scope; a host that is
        # stopping at the same time wins over reporting it.
        await anyio.lowlevel.checkpoint()
        failure = self._failure or ConnectionError("polling stopped")
        if isinstance(failure, ConnectionError | FatalError):
            raise failure
        raise ConnectionError(f"I/O server {self.io.name!r}: {describe(failure)}") from failure

    def _restore_unpolled(self) -> None:
        """Points the driver keeps itself (pushed, not polled) get what the kernel gives them
        after a reconnect: ``stale`` until the driver sets them."""
        polled = {p.point for p in self._polled.values()}
        self.io.host.points.set_quality(
            [
                p
                for p in self.io.points()
                if p.quality is Quality.BAD
                and p.follows_connection
                and p is not self.io.connection
                and p not in polled
            ],
            Quality.STALE,
        )

    async def _sleep_until_due(self) -> None:
        while True:
            self._drop_removed()
            now = anyio.current_time()
            if self._heap and self._heap[0][0] <= now:
                return
            wait = self._heap[0][0] - now if self._heap else math.inf
            if self._wake.is_set():
                self._wake = anyio.Event()
            with anyio.move_on_after(wait):
                await self._wake.wait()

    def _drop_removed(self) -> None:
        heap = self._heap
        while heap and (heap[0][2].removed or not self._declared(heap[0][2].point)):
            heapq.heappop(heap)[2].removed = True

    def _declared(self, point: Point) -> bool:
        return self.io.host.points.get(point.name) is point

    def _schedule(self, polled: _Polled, due: float) -> None:
        polled.due = due
        heapq.heappush(self._heap, (due, next(self._seq), polled))

    async def _poll_due(self) -> tuple[list[tuple[Point, Value]], list[Point]]:
        """Read every point that is due, in `batch`-sized requests, and reschedule it;
        return the values read and the points the device refused."""
        good: list[tuple[Point, Value]] = []
        bad: list[Point] = []
        now = anyio.current_time()
        due: list[_Polled] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            polled = heapq.heappop(heap)[2]
            if not polled.removed and self._declared(polled.point):
                due.append(polled)
        for start in range(0, len(due), self.batch if self._read_many else 1):
            chunk = due[start : start + (self.batch if self._read_many else 1)]
            values = await self._fetch(chunk)
            for polled, value in zip(chunk, values, strict=True):
                self._accept(polled, value, good, bad)
        after = anyio.current_time()
        for polled in due:
            if polled.removed:
                continue
            nxt = polled.due + polled.every
            if nxt <= after:  # fell behind: skip the missed turns, never read back to back
                self.late += 1
                nxt = after + polled.every
            self._schedule(polled, nxt)
        return good, bad

    async def _fetch(self, chunk: list[_Polled]) -> Sequence[Value | DeviceError]:
        """One request for `chunk`; a per-point DeviceError is returned in its place."""
        addresses = [p.address for p in chunk]
        what = f"reading {', '.join(p.point.name for p in chunk[:3])}" + (
            f" and {len(chunk) - 3} more" if len(chunk) > 3 else ""
        )
        try:
            if self._read_many is None:
                assert self._read is not None
                return [await self._request(what, self._read, addresses[0])]
            values = await self._request(what, self._read_many, addresses)
        except DeviceError as exc:
            return [exc] * len(chunk)
        if len(values) != len(chunk):
            raise ConnectionError(
                f"{what}: the device answered {len(values)} values for {len(chunk)} points"
            )
        return values

    def _accept(
        self,
        polled: _Polled,
        value: Value | DeviceError,
        good: list[tuple[Point, Value]],
        bad: list[Point],
    ) -> None:
        point = polled.point
        if isinstance(value, DeviceError):
            self._complain(point, f"the device refused the read: {value}", bad)
            return
        try:
            value = check_value(
                point.name,
                value,
                point.type,
                max_string=self.io.host.points.max_string,
                nonfinite=point.nonfinite,
            )
        except PointTypeError as exc:
            self._complain(point, f"the device sent a value the point cannot hold: {exc}", bad)
            return
        self.reads += 1
        good.append((point, value))

    def _complain(self, point: Point, why: str, bad: list[Point]) -> None:
        bad.append(point)
        self._complaints.warning(point.name, "%s: %s", point.name, why)

    def _store(self, good: list[tuple[Point, Value]], bad: list[Point]) -> None:
        """Store what one poll read: one batch, one timestamp; refused points go bad."""
        if good:
            self.io.update_many(good)
        for point in bad:
            if self._declared(point):
                self.io.set(point, point.value, quality=Quality.BAD)

    async def _request(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run one device exchange under the lock and the timeout; a failure that is not a
        DeviceError or FatalError becomes a ConnectionError naming what was asked."""
        async with self._lock:
            return await self._exchange(what, fn, *args)

    async def _exchange(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            with anyio.fail_after(self.timeout):
                return await fn(*args)
        except (DeviceError, FatalError):
            raise
        except TimeoutError:
            raise ConnectionError(f"{what}: no answer within {self.timeout:g} s") from None
        except Exception as exc:
            raise ConnectionError(f"{what}: {describe(exc)}") from exc

    def _fail(self, exc: BaseException) -> None:
        """A request outside `run` found the link broken: end `run` with that failure."""
        if self._scope is not None and self._failure is None:
            self._failure = exc
            self._scope.cancel()

    # -- what the driver's hooks call -----------------------------------------------------------
    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, what: str = "request") -> T:
        """Run the driver's own exchange `fn(*args)` (a discovery, a login) in turn with the
        polls, bounded by `timeout`. A failure other than DeviceError ends `run` (the link is
        lost) and is raised as ConnectionError."""
        try:
            return await self._request(what, fn, *args)
        except ConnectionError as exc:
            self._fail(exc)
            raise

    async def read(self, point: Point) -> Value:
        """A fresh value of `point` from the device, for the driver's ``read`` hook.

        Raises DeviceError when offline or when the device refuses; a lost link also ends
        `run`.
        """
        polled = self._polled.get(point.id)
        if polled is None or polled.point is not point:
            raise DeviceError(f"{point.name}: not a point this I/O server polls")
        if not self._online:
            raise DeviceError(f"{point.name}: I/O server {self.io.name!r} is offline")
        try:
            [value] = await self._fetch([polled])
        except (ConnectionError, FatalError) as exc:
            self._fail(exc)
            raise DeviceError(f"{point.name}: {exc}") from exc
        if isinstance(value, DeviceError):
            raise DeviceError(f"{point.name}: the device refused the read: {value}")
        return value

    async def write(self, point: Point, value: Value) -> None:
        """Carry out a write for the driver's ``write`` hook, then confirm it.

        Refused with WriteError (nothing sent) while offline, when `max_pending` writes are
        already waiting, or when no turn comes within `write_timeout`. The device's answer is
        bounded by `timeout`; a DeviceError becomes a WriteError and the link stays up, any
        other failure becomes a WriteError and ends `run` (the link is lost). Once written,
        the point is read back (unless declared without `read_after_write`) and stored.
        """
        polled = self._polled.get(point.id)
        shown = describe_value(value)
        where = f"I/O server {self.io.name!r} ({self.io.plugin})"
        if polled is None or polled.point is not point or self._write is None:
            raise WriteError(f"{point.name}: {where} does not poll this point; {shown} not written")
        if not self._online:
            raise WriteError(f"{point.name}: {where} is offline; {shown} not written")
        if self._pending >= self.max_pending:
            self.refused += 1
            raise WriteError(
                f"{point.name}: {where} has {self._pending} writes waiting; {shown} not written"
            )
        self._pending += 1
        try:
            with anyio.move_on_after(self.write_timeout) as waited:
                await self._lock.acquire()
            if waited.cancelled_caught:
                raise WriteError(
                    f"{point.name}: {where} was busy for {self.write_timeout:g} s; "
                    f"{shown} not written"
                )
            try:
                if not self._online:  # the link dropped while we waited
                    raise WriteError(f"{point.name}: {where} went offline; {shown} not written")
                confirmed = await self._write_and_confirm(polled, value, shown)
            finally:
                self._lock.release()
        finally:
            self._pending -= 1
        if confirmed is not None:
            self._store_confirmed(polled, confirmed)

    async def _write_and_confirm(
        self, polled: _Polled, value: Value, shown: str
    ) -> Value | DeviceError | None:
        point = polled.point
        assert self._write is not None
        try:
            await self._exchange(
                f"writing {shown} to {point.name}", self._write, polled.address, value
            )
        except DeviceError as exc:
            raise WriteError(f"{point.name}: the device refused {shown}: {exc}") from exc
        except (ConnectionError, FatalError) as exc:
            self._fail(exc)
            raise WriteError(f"{point.name}: {shown} not confirmed: {describe(exc)}") from exc
        if not polled.read_after_write:
            return value
        what = f"reading {point.name} back"
        try:
            if self._read is not None:
                return await self._exchange(what, self._read, polled.address)
            assert self._read_many is not None
            [confirmed] = await self._exchange(what, self._read_many, [polled.address])
            return confirmed
        except DeviceError as exc:
            return exc
        except (ConnectionError, FatalError) as exc:
            self._fail(exc)
            raise WriteError(
                f"{point.name}: {shown} written, not confirmed: {describe(exc)}"
            ) from exc

    def _store_confirmed(self, polled: _Polled, value: Value | DeviceError) -> None:
        good: list[tuple[Point, Value]] = []
        bad: list[Point] = []
        self._accept(polled, value, good, bad)
        self._store(good, bad)
