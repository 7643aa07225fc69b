"""ioplex.Poller against a strict line-protocol device on loopback: schedules, one request at a
time, read-after-write, writes refused offline, a frozen device, per-point refusals."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import ioplex
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from ioplex import DeviceError, Quality, State, WriteError

NO_OPTIONS = {"type": "object", "additionalProperties": False, "properties": {}}


class Device:
    """A strict fake device: ``GET <reg>`` -> ``OK <value>``, ``SET <reg> <value>`` -> ``OK``,
    ``ERR <why>`` for what it refuses. It answers one request at a time and records a request
    that arrives before the previous answer was sent (`pipelined`), which a correct client
    never does. `frozen` makes it swallow requests without answering (a hung peer)."""

    def __init__(self) -> None:
        self.registers: dict[str, Any] = {"fast": 1.0, "slow": 2.0, "setpoint": 20.0}
        self.readonly = {"fast", "slow"}
        self.limits = {"setpoint": (5.0, 30.0)}
        self.log: list[tuple[float, str]] = []
        self.frozen: set[str] = set()  # verbs it swallows
        self.delay = 0.0
        self.pipelined = 0
        self.connections = 0

    def requests(self, line: str) -> list[float]:
        return [t for t, text in self.log if text == line]

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        lines = BufferedByteReceiveStream(stream)
        async with stream:
            while True:
                try:
                    line = (await lines.receive_until(b"\n", 256)).decode()
                except (
                    anyio.EndOfStream,
                    anyio.IncompleteRead,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    OSError,
                ):
                    return
                self.log.append((anyio.current_time(), line))
                if lines.buffer:
                    self.pipelined += 1
                verb, name, *rest = line.split()
                if verb in self.frozen or "*" in self.frozen:
                    await anyio.sleep_forever()
                await anyio.sleep(self.delay)
                await stream.send((self.answer(verb, name, rest) + "\n").encode())

    def answer(self, verb: str, name: str, rest: list[str]) -> str:
        if name not in self.registers:
            return "ERR unknown register"
        if verb == "GET":
            return f"OK {self.registers[name]}"
        if verb == "SET" and rest:
            if name in self.readonly:
                return "ERR read-only register"
            low, high = self.limits.get(name, (-math.inf, math.inf))
            self.registers[name] = min(max(float(rest[0]), low), high)  # clamps, as devices do
            return "OK"
        return "ERR bad request"


@asynccontextmanager
async def serving(device: Device) -> AsyncIterator[int]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, device.handle)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


def line_plugin(port: int, points: dict[str, dict[str, Any]], **poller: Any) -> tuple[Any, list]:
    """A plugin whose driver speaks the Device protocol through a Poller; returns the plugin and
    a list that receives each driver instance."""
    drivers: list[Any] = []

    class Driver:
        def __init__(self, io: ioplex.IOServer) -> None:
            self.poller = ioplex.Poller(io, read=self.get, write=self.put, **poller)
            for id, spec in points.items():
                self.poller.point(
                    id,
                    type=spec.get("type", float),
                    every=spec.get("every"),
                    writable=spec.get("writable", False),
                    read_after_write=spec.get("read_after_write", True),
                )
            self.active = self.most_active = 0
            drivers.append(self)

        @ioplex.hookimpl
        async def connect(self, ioserver: ioplex.IOServer) -> None:
            async with await anyio.connect_tcp("127.0.0.1", port) as self.stream:
                self.lines = BufferedByteReceiveStream(self.stream)
                await self.poller.run()

        @ioplex.hookimpl
        async def read(self, ioserver, point):
            return await self.poller.read(point)

        @ioplex.hookimpl
        async def write(self, ioserver, point, value):
            await self.poller.write(point, value)

        async def ask(self, line: str) -> str:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            try:
                await self.stream.send(line.encode() + b"\n")
                reply = (await self.lines.receive_until(b"\n", 256)).decode()
            finally:
                self.active -= 1
            status, _, text = reply.partition(" ")
            if status == "ERR":
                raise DeviceError(text)
            return text

        async def get(self, address: str) -> float | str:
            text = await self.ask(f"GET {address}")
            return float(text) if address != "name" else text

        async def put(self, address: str, value: Any) -> None:
            await self.ask(f"SET {address} {value}")

    namespace = {
        "register_ioserver_types": staticmethod(
            ioplex.hookimpl(lambda register: register("line", Driver, NO_OPTIONS, "test device"))
        ),
    }
    return type("line", (), namespace), drivers


@pytest.fixture
def line_host(make_host, builtins_only) -> Callable[..., tuple[ioplex.Host, list]]:
    def make(port: int, points: dict[str, dict[str, Any]], **poller: Any):
        plugin, drivers = line_plugin(port, points, **poller)
        builtins_only.register(plugin, "line")
        return make_host({"ioservers": {"dev": {"plugin": "line"}}}, builtins_only), drivers

    return make


POINTS = {"fast": {"every": 0.1}, "slow": {"every": 0.5}, "setpoint": {"writable": True}}


@pytest.mark.anyio
async def test_every_point_is_read_before_online_then_on_its_own_schedule(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, interval=10, timeout=1)
        seen_at_online: list[set[str]] = []

        def on_connection(event: ioplex.PointEvent) -> None:
            if event.value == "online":
                seen_at_online.append({line for _, line in device.log})

        host.points.listen(on_connection, "dev.connection")
        async with host:
            await host.wait_online("dev")
            assert seen_at_online == [{"GET fast", "GET slow", "GET setpoint"}]
            assert host.points["dev.fast"].value == 1.0
            assert host.points["dev.slow"].quality is Quality.GOOD
            await anyio.sleep(1.25)
        fast, slow = device.requests("GET fast"), device.requests("GET slow")
        setpoint = device.requests("GET setpoint")
        assert 9 <= len(fast) <= 14, fast  # every 0.1 s for 1.25 s, plus the first read
        assert 3 <= len(slow) <= 4, slow
        assert len(setpoint) == 1  # the poller's default interval, 10 s
        gaps = [b - a for a, b in itertools.pairwise(fast)]
        assert min(gaps) > 0.07, gaps  # never read back to back
        assert device.pipelined == 0


@pytest.mark.anyio
async def test_one_request_at_a_time_under_concurrent_writes(line_host) -> None:
    device = Device()
    device.delay = 0.01
    async with serving(device) as port:
        host, drivers = line_host(
            port, {"fast": {"every": 0.02}, "setpoint": {"writable": True}}, timeout=2
        )
        async with host:
            await host.wait_online("dev")
            async with anyio.create_task_group() as tg:
                for value in range(10, 20):
                    tg.start_soon(host.write, "dev.setpoint", value)
                    tg.start_soon(host.read, "dev.fast")
        assert drivers[0].most_active == 1
        assert device.pipelined == 0
        assert len(device.requests("GET setpoint")) >= 11  # the first read and 10 read-backs


@pytest.mark.anyio
async def test_a_write_is_read_back_and_shows_what_the_device_holds(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, interval=10, timeout=1)
        async with host:
            await host.wait_online("dev")
            await host.write("dev.setpoint", 22.5)
            assert host.points["dev.setpoint"].value == 22.5
            await host.write("dev.setpoint", 99)  # the device clamps to its maximum
            assert host.points["dev.setpoint"].value == 30.0
            lines = [line for _, line in device.log]
            assert lines[-4:] == [
                "SET setpoint 22.5",
                "GET setpoint",
                "SET setpoint 99.0",
                "GET setpoint",
            ]


@pytest.mark.anyio
async def test_write_without_read_back_stores_the_written_value(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, _ = line_host(
            port, {"setpoint": {"writable": True, "read_after_write": False}}, timeout=1
        )
        async with host:
            await host.wait_online("dev")
            await host.write("dev.setpoint", 99)
            assert host.points["dev.setpoint"].value == 99.0  # what was written, not clamped
            assert device.requests("GET setpoint") == device.requests("GET setpoint")[:1]


@pytest.mark.anyio
async def test_writes_are_refused_at_once_while_offline(line_host) -> None:
    # Nothing listens on the port: the instance never comes online.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    host, _ = line_host(port, POINTS, timeout=1)
    async with host:
        with anyio.fail_after(1):
            with pytest.raises(
                WriteError,
                match=r"dev.setpoint: I/O server 'dev' \(line\) is "
                r"offline; 21.0 not written",
            ):
                await host.write("dev.setpoint", 21)
            with pytest.raises(DeviceError, match="dev.fast: I/O server 'dev' is offline"):
                await host.read("dev.fast")


@pytest.mark.anyio
async def test_a_device_error_marks_one_point_bad_and_keeps_the_link(line_host, caplog) -> None:
    device = Device()
    caplog.set_level(logging.WARNING, "ioplex")
    async with serving(device) as port:
        host, _ = line_host(port, {**POINTS, "missing": {"every": 0.05}}, timeout=1)
        async with host:
            await host.wait_online("dev")
            await anyio.sleep(0.3)
            assert host.points["dev.missing"].quality is Quality.BAD
            assert host.points["dev.fast"].quality is Quality.GOOD
            assert host.points["dev.connection"].value == "online"
            assert device.connections == 1
    complaints = [r for r in caplog.records if "dev.missing" in r.getMessage()]
    assert len(complaints) == 1, [r.getMessage() for r in complaints]  # rate-limited
    assert "the device refused the read: unknown register" in complaints[0].getMessage()
    assert len(device.requests("GET missing")) >= 4


@pytest.mark.anyio
async def test_a_refused_write_is_a_write_error_and_the_link_stays(line_host) -> None:
    device = Device()
    device.readonly.add("setpoint")
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, timeout=1)
        async with host:
            await host.wait_online("dev")
            with pytest.raises(
                WriteError, match="dev.setpoint: the device refused 25.0: read-only"
            ):
                await host.write("dev.setpoint", 25)
            assert host.points["dev.connection"].value == "online"
            assert device.connections == 1


@pytest.mark.anyio
async def test_a_value_outside_the_contract_marks_the_point_bad(line_host) -> None:
    device = Device()
    device.registers["fast"] = "nan"
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, timeout=1)
        async with host:
            await host.wait_online("dev")
            assert host.points["dev.fast"].quality is Quality.BAD
            assert host.points["dev.slow"].value == 2.0
            assert host.points["dev.connection"].value == "online"


@pytest.mark.anyio
async def test_a_frozen_device_goes_offline_and_values_are_reread_on_reconnect(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, interval=10, timeout=0.3)
        async with host:
            await host.wait_online("dev")
            async with host.subscribe("dev.fast", "dev.connection") as events:
                device.frozen.add("*")
                device.registers["fast"] = 7.0
                with anyio.fail_after(2):
                    while host.points["dev.connection"].value != "offline":
                        await anyio.sleep(0.01)
                assert host.points["dev.fast"].quality is Quality.BAD
                assert host.points["dev.fast"].value == 1.0  # kept, but bad
                with pytest.raises(WriteError, match="offline"):
                    await host.write("dev.setpoint", 21)
                device.frozen.clear()
                await host.wait_online("dev", timeout=3)
                assert host.points["dev.fast"].value == 7.0
                changes = events.drain()
            # After going offline, the old value never came back as good: the first good
            # event of dev.fast carries the value read after the reconnect.
            offline = next(i for i, e in enumerate(changes) if e[1] == "offline")
            good = [e for e in changes[offline:] if e[0] == "dev.fast" and e[4] is Quality.GOOD]
            assert good[0][1] == 7.0
            assert device.connections >= 2


@pytest.mark.anyio
async def test_a_write_the_device_never_answers_ends_the_link(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, drivers = line_host(port, POINTS, interval=10, timeout=0.3, write_timeout=5)
        async with host:
            await host.wait_online("dev")
            device.frozen.add("SET")
            started = anyio.current_time()
            with pytest.raises(
                WriteError,
                match=r"dev.setpoint: 21.0 not confirmed: .*"
                r"writing 21.0 to dev.setpoint: no answer within 0.3 s",
            ):
                await host.write("dev.setpoint", 21)
            assert anyio.current_time() - started < 1
            with anyio.fail_after(2):
                while host.ioservers["dev"].state is State.ONLINE:
                    await anyio.sleep(0.01)
            device.frozen.clear()
            await host.wait_online("dev", timeout=3)
            await host.write("dev.setpoint", 21)
            assert host.points["dev.setpoint"].value == 21.0
        assert drivers[0].most_active == 1


@pytest.mark.anyio
async def test_a_write_waits_at_most_write_timeout_for_its_turn(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, interval=0.05, timeout=2, write_timeout=0.2)
        async with host:
            await host.wait_online("dev")
            device.frozen.add("GET")  # the next poll holds the line until its timeout
            await anyio.sleep(0.1)
            started = anyio.current_time()
            with pytest.raises(WriteError, match="was busy for 0.2 s; 21.0 not written"):
                await host.write("dev.setpoint", 21)
            assert anyio.current_time() - started < 0.5
            assert not device.requests("SET setpoint 21.0")


@pytest.mark.anyio
async def test_writes_beyond_max_pending_are_refused_and_counted(line_host) -> None:
    device = Device()
    device.delay = 0.05
    async with serving(device) as port:
        host, drivers = line_host(port, POINTS, interval=10, timeout=2, max_pending=2)
        async with host:
            await host.wait_online("dev")
            results: list[BaseException | None] = []

            async def write(value: int) -> None:
                try:
                    await host.write("dev.setpoint", value)
                    results.append(None)
                except WriteError as exc:
                    results.append(exc)

            async with anyio.create_task_group() as tg:
                for value in range(10, 16):
                    tg.start_soon(write, value)
            refused = [r for r in results if r is not None]
            assert len(refused) == 4 and "has 2 writes waiting" in str(refused[0])
            assert drivers[0].poller.refused == 4


@pytest.mark.anyio
async def test_a_point_added_while_running_is_read_at_once(line_host) -> None:
    device = Device()
    device.registers["extra"] = 5.0
    async with serving(device) as port:
        host, drivers = line_host(port, POINTS, interval=10, timeout=1)
        async with host:
            await host.wait_online("dev")
            async with host.subscribe("dev.extra") as events:
                drivers[0].poller.point("extra", type=float)
                with anyio.fail_after(1):
                    while host.points["dev.extra"].value != 5.0:
                        await anyio.sleep(0.01)
                # No value yet is bad, not a good None; then the first read.
                assert [(e[1], e[4]) for e in events.drain()] == [
                    (None, Quality.BAD),
                    (5.0, Quality.GOOD),
                ]
            drivers[0].poller.forget("slow")
            host.ioservers["dev"].undeclare("fast")  # as discovery does for vanished points
            before = (len(device.requests("GET slow")), len(device.requests("GET fast")))
            drivers[0].poller.point("often", type=float, every=0.05)  # wakes the loop
            await anyio.sleep(0.3)
            assert (len(device.requests("GET slow")), len(device.requests("GET fast"))) == before
            assert len(device.requests("GET often")) >= 4


@pytest.mark.anyio
async def test_read_hook_asks_the_device(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, interval=10, timeout=1)
        async with host:
            await host.wait_online("dev")
            device.registers["slow"] = 3.5
            assert await host.read("dev.slow") == 3.5
            assert host.points["dev.slow"].value == 3.5
            assert len(device.requests("GET slow")) == 2


@pytest.mark.anyio
async def test_the_host_stops_at_once_while_a_request_hangs(line_host) -> None:
    device = Device()
    async with serving(device) as port:
        host, _ = line_host(port, POINTS, interval=0.05, timeout=30)
        async with host:
            await host.wait_online("dev")
            device.frozen.add("*")
            await anyio.sleep(0.2)
            started = anyio.current_time()
        assert anyio.current_time() - started < 1
        assert host.ioservers["dev"].state is State.STOPPED


@pytest.mark.anyio
async def test_fatal_error_from_the_device_stops_the_instance(make_host, builtins_only) -> None:
    class Refusing:
        def __init__(self, io):
            self.poller = ioplex.Poller(io, read=self.get)
            self.poller.point("x", type=int)

        @ioplex.hookimpl
        async def connect(self, ioserver):
            await self.poller.run()

        async def get(self, address):
            raise ioplex.FatalError("wrong PIN")

    plugin = type(
        "refusing",
        (),
        {
            "register_ioserver_types": staticmethod(
                ioplex.hookimpl(lambda register: register("refusing", Refusing, NO_OPTIONS))
            )
        },
    )
    builtins_only.register(plugin, "refusing")
    host = make_host({"ioservers": {"r": {"plugin": "refusing"}}}, builtins_only)
    async with host:
        with anyio.fail_after(2):
            while host.ioservers["r"].state is not State.FAILED:
                await anyio.sleep(0.01)
        assert "wrong PIN" in host.ioservers["r"].detail


@pytest.mark.anyio
async def test_read_many_asks_in_batches(make_host, builtins_only) -> None:
    calls: list[list[str]] = []

    class Block:
        def __init__(self, io):
            self.poller = ioplex.Poller(io, read_many=self.get_many, batch=2, interval=10)
            for i in range(5):
                self.poller.point(f"r{i}", type=int)

        @ioplex.hookimpl
        async def connect(self, ioserver):
            await self.poller.run()

        async def get_many(self, addresses):
            calls.append(addresses)
            return [
                DeviceError("no such register") if a == "r3" else int(a[1:]) * 10 for a in addresses
            ]

    plugin = type(
        "block",
        (),
        {
            "register_ioserver_types": staticmethod(
                ioplex.hookimpl(lambda register: register("block", Block, NO_OPTIONS))
            )
        },
    )
    builtins_only.register(plugin, "block")
    host = make_host({"ioservers": {"b": {"plugin": "block"}}}, builtins_only)
    async with host:
        await host.wait_online("b")
        assert calls == [["r0", "r1"], ["r2", "r3"], ["r4"]]
        assert [host.points[f"b.r{i}"].value for i in range(5)] == [0, 10, 20, None, 40]
        assert host.points["b.r3"].quality is Quality.BAD
        assert host.points["b.r4"].quality is Quality.GOOD


def test_bad_arguments_are_refused_when_the_driver_is_built() -> None:
    with pytest.raises(TypeError, match="needs read or read_many"):
        ioplex.Poller(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval must be positive"):
        ioplex.Poller(None, read=lambda a: a, interval=0)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_points_the_driver_keeps_itself_are_stale_after_a_reconnect(
    make_host, builtins_only
) -> None:
    """A driver mixing polled and pushed points: after a reconnect the polled ones are read
    afresh (good), the pushed one is stale until the driver sets it, as the kernel does."""
    connects = 0

    class Mixed:
        def __init__(self, io):
            self.poller = ioplex.Poller(io, read=self.get, interval=10)
            self.poller.point("polled", type=int)
            io.declare("pushed", 0, type=int)

        @ioplex.hookimpl
        async def connect(self, ioserver):
            nonlocal connects
            connects += 1
            if connects == 1:
                ioserver.set("pushed", 5)
            with anyio.move_on_after(0.2 if connects == 1 else math.inf):
                await self.poller.run()
            raise ConnectionError("dropped")  # the first connection drops after 0.2 s

        async def get(self, address):
            return connects

    plugin = type(
        "mixed",
        (),
        {
            "register_ioserver_types": staticmethod(
                ioplex.hookimpl(lambda register: register("mixed", Mixed, NO_OPTIONS))
            )
        },
    )
    builtins_only.register(plugin, "mixed")
    host = make_host({"ioservers": {"m": {"plugin": "mixed"}}}, builtins_only)
    async with host:
        await host.wait_online("m")
        with anyio.fail_after(3):
            while connects < 2 or not host.ioservers["m"].online:
                await anyio.sleep(0.01)
        assert (host.points["m.polled"].value, host.points["m.polled"].quality) == (2, Quality.GOOD)
        assert (host.points["m.pushed"].value, host.points["m.pushed"].quality) == (
            5,
            Quality.STALE,
        )
