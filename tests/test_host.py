"""The host: the public API, per-instance hooks, supervision, the event bus, built-ins."""

from __future__ import annotations

from typing import Any, ClassVar

import anyio
import ioplex
import pytest
from ioplex import FatalError, Quality, State

NO_OPTIONS = {"type": "object", "additionalProperties": False, "properties": {}}


def plugin_with(name: str, factory: Any, schema: dict | None = None, **hooks: Any) -> Any:
    """A throwaway plugin object providing one I/O server type (and any plugin hooks)."""
    namespace: dict[str, Any] = {"__name__": name}

    def register_ioserver_types(register: Any) -> None:
        register(name, factory, schema or NO_OPTIONS)

    namespace["register_ioserver_types"] = ioplex.hookimpl(register_ioserver_types)
    for hook, fn in hooks.items():
        namespace[hook] = ioplex.hookimpl(fn)
    return type(name, (), {k: staticmethod(v) if callable(v) else v for k, v in namespace.items()})


@pytest.mark.anyio
async def test_public_api_as_documented(make_host) -> None:
    host = make_host(
        {
            "ioservers": {
                "dummy": {"plugin": "dummy", "options": {"points": {"light.1": 0, "temp": 21.5}}}
            }
        }
    )
    async with host:
        await host.wait_online("dummy")
        async with host.subscribe("dummy.*") as events:
            await host.write("dummy.light.1", 1)
            event = await events.__anext__()
        assert (event.name, event.value, event.old_value) == ("dummy.light.1", 1, 0)
        point = host.points["dummy.light.1"]
        assert (point.value, point.quality, point.writable, point.ioserver) == (
            1,
            "good",
            True,
            "dummy",
        )
        assert point.last_changed == point.last_updated == event.time
        assert host.points["dummy.connection"].value == "online"
        assert await host.read("dummy.temp") == 21.5
        with pytest.raises(ioplex.PointTypeError, match="dummy.light.1: expected int, got str"):
            await host.write("dummy.light.1", "on")
        with pytest.raises(ioplex.UnknownPointError, match="unknown point 'dummy.light.2'"):
            await host.write("dummy.light.2", 1)
        with pytest.raises(ioplex.ReadOnlyPointError, match="dummy.connection is read-only"):
            await host.write("dummy.connection", "offline")
    # Stopped: the instance is offline and its points are bad.
    assert host.points["dummy.connection"].value == "offline"
    assert host.points["dummy.light.1"].quality is Quality.BAD
    assert host.ioservers["dummy"].state is State.STOPPED


class Counting:
    """A driver that counts the hook calls it gets."""

    calls: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, io: ioplex.IOServer) -> None:
        io.declare("x", 0, writable=True)

    @ioplex.hookimpl
    async def write(self, ioserver, point, value):  # an async hook
        Counting.calls.append(("write", ioserver.name))
        ioserver.set(point, value)

    @ioplex.hookimpl
    def read(self, ioserver, point):  # a plain one
        Counting.calls.append(("read", ioserver.name))
        return 42


@pytest.mark.anyio
async def test_calling_one_instance_reaches_that_instance_only(make_host, builtins_only) -> None:
    builtins_only.register(plugin_with("counting", Counting), "counting")
    Counting.calls = []
    names = [f"c{i}" for i in range(50)]
    host = make_host({"ioservers": {n: {"plugin": "counting"} for n in names}}, builtins_only)
    async with host:
        await host.write("c7.x", 5)
        assert await host.read("c9.x") == 42
        assert host.points["c9.x"].value == 42
    assert Counting.calls == [("write", "c7"), ("read", "c9")]
    # Each instance's hook relay holds its own driver only: the call costs the same however
    # many instances exist.
    for name in names:
        assert len(host.ioservers[name]._hook.write.get_hookimpls()) == 1


class Flaky:
    """Fails to connect twice, then stays online."""

    attempts = 0

    def __init__(self, io: ioplex.IOServer) -> None:
        self.point = io.declare("value", 1)

    @ioplex.hookimpl
    async def connect(self, ioserver):
        Flaky.attempts += 1
        if Flaky.attempts <= 2:
            raise ConnectionRefusedError("device not answering")
        ioserver.set_online()
        await anyio.sleep_forever()


class Locked:
    attempts = 0

    def __init__(self, io: ioplex.IOServer) -> None:
        io.declare("value", 1)

    @ioplex.hookimpl
    async def connect(self, ioserver):
        Locked.attempts += 1
        raise FatalError("authentication failed for user 'admin'")


@pytest.mark.anyio
async def test_supervision(make_host, builtins_only, caplog) -> None:
    builtins_only.register(plugin_with("flaky", Flaky), "flaky")
    builtins_only.register(plugin_with("locked", Locked), "locked")
    Flaky.attempts = Locked.attempts = 0
    host = make_host(
        {
            "ioservers": {
                "f": {"plugin": "flaky"},
                "l": {"plugin": "locked"},
                "system": {"plugin": "system"},
            }
        },
        builtins_only,
    )
    async with host:
        assert host.points["f.value"].quality is Quality.BAD  # not connected yet
        with anyio.fail_after(5):
            await host.wait_online("f")
        assert Flaky.attempts == 3
        # declared before the first connection and not confirmed by the device since
        assert host.points["f.value"].quality is Quality.STALE
        await anyio.sleep(0.5)  # many backoff periods: a fatal error is never retried
        assert Locked.attempts == 1
        assert host.ioservers["l"].state is State.FAILED
        assert host.points["system.ioservers.l"].value == "failed"
        assert host.points["system.ioservers.f"].value == "online"
        assert host.points["l.connection"].value == "offline"
        assert host.points["l.value"].quality is Quality.BAD
    assert caplog.text.count("authentication failed for user 'admin'") == 1
    assert (
        "I/O server f (flaky): ConnectionRefusedError: device not answering; retry 1" in caplog.text
    )


class Dropping:
    """Online, then loses its connection once."""

    def __init__(self, io: ioplex.IOServer) -> None:
        self.lose = anyio.Event()
        self.runs = 0
        io.declare("value", 1)

    @ioplex.hookimpl
    async def connect(self, ioserver):
        self.runs += 1
        ioserver.set_online()
        ioserver.set("value", 1)  # read from the device: confirmed
        if self.runs == 1:
            await self.lose.wait()
            raise ConnectionResetError("peer closed")
        await anyio.sleep_forever()


@pytest.mark.anyio
async def test_offline_points_are_bad_until_reconnected(make_host, builtins_only) -> None:
    builtins_only.register(plugin_with("dropping", Dropping), "dropping")
    host = make_host({"ioservers": {"d": {"plugin": "dropping"}}}, builtins_only)
    async with host:
        await host.wait_online("d")
        driver = host.ioservers["d"].driver
        async with host.subscribe("d.*") as events:
            driver.lose.set()
            seen = []
            with anyio.fail_after(5):
                async for event in events:
                    seen.append((event.name, event.value, event.quality.value))
                    if event.name == "d.value" and event.quality is Quality.GOOD:
                        break
        # Carried over the reconnect, the value is stale until the driver confirms it.
        assert seen == [
            ("d.connection", "offline", "good"),
            ("d.value", 1, "bad"),
            ("d.connection", "online", "good"),
            ("d.value", 1, "stale"),
            ("d.value", 1, "good"),
        ]
        assert driver.runs == 2


def test_bad_hook_signature_is_reported_not_raised(builtins_only) -> None:
    class Wrong:
        __name__ = "wrong"

        @staticmethod
        @ioplex.hookimpl
        def register_ioserver_types(register, unknown_argument):
            pass

    info = builtins_only.register(Wrong(), "wrong")
    assert "unknown_argument" in info.error
    assert "wrong" not in builtins_only.info
    assert builtins_only.failed == [info]


def test_bad_schema_is_reported(builtins_only) -> None:
    info = builtins_only.register(
        plugin_with("loose", Counting, {"type": "object", "properties": {}}), "loose"
    )
    assert "additionalProperties: false" in info.error
    assert "loose" not in builtins_only.types


@pytest.mark.anyio
async def test_on_event_isolates_plugins(make_host, builtins_only, caplog) -> None:
    got: dict[str, list] = {"good": [], "driver": []}

    def broken(host, source, event):
        raise ValueError(f"cannot handle {event}")

    async def good(host, source, event):
        got["good"].append((source, event))

    class Listening:
        def __init__(self, io):
            pass

        @ioplex.hookimpl
        def on_event(self, source, event):
            got["driver"].append(event)

    builtins_only.register(plugin_with("broken", Counting, on_event=broken), "broken")
    builtins_only.register(plugin_with("good", Counting, on_event=good), "good")
    builtins_only.register(plugin_with("listening", Listening), "listening")
    host = make_host({"ioservers": {"l": {"plugin": "listening"}}}, builtins_only)
    async with host:
        for n in range(3):
            host.publish(f"event {n}", source="test")
        with anyio.fail_after(2):
            while len(got["good"]) < 3 or len(got["driver"]) < 3:
                await anyio.sleep(0.01)
    assert got["good"] == [("test", "event 0"), ("test", "event 1"), ("test", "event 2")]
    assert got["driver"] == ["event 0", "event 1", "event 2"]
    assert caplog.text.count("on_event of broken failed") == 3


@pytest.mark.anyio
async def test_serve_runs_with_validated_settings(make_host, builtins_only) -> None:
    seen = []

    async def serve(host, settings):
        seen.append(settings)
        await anyio.sleep_forever()

    def settings_schema():
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "listen": {"type": "string", "default": "127.0.0.1:0", "description": "x"}
            },
        }

    builtins_only.register(
        plugin_with("served", Counting, serve=serve, plugin_settings_schema=settings_schema),
        "served",
    )
    async with make_host({}, builtins_only) as host:
        await anyio.sleep(0.05)
        assert seen == [{"listen": "127.0.0.1:0"}]
        assert host.services["served"] is State.ONLINE
    with pytest.raises(ioplex.ConfigError, match="plugins.served.listn: unknown key 'listn'"):
        make_host({"plugins": {"served": {"listn": "x"}}}, builtins_only)


class Discovering:
    def __init__(self, io):
        io.declare("old", 1)
        io.declare_family("exec.*", type=str)
        self.written = []

    @ioplex.hookimpl
    def discover(self, ioserver):
        ioserver.declare("new.1", 2)
        return ["new.1"]

    @ioplex.hookimpl
    def write(self, point, value):
        self.written.append((point.name, value))


@pytest.mark.anyio
async def test_discovery_and_point_families(make_host, builtins_only) -> None:
    builtins_only.register(plugin_with("disc", Discovering), "disc")
    async with make_host({"ioservers": {"d": {"plugin": "disc"}}}, builtins_only) as host:
        with anyio.fail_after(2):
            while "d.new.1" not in host.points:
                await anyio.sleep(0.01)
        assert "d.old" not in host.points  # gone from the device, gone from the registry
        await host.write("d.exec.5", "uptime")
        assert host.ioservers["d"].driver.written == [("d.exec.5", "uptime")]
        with pytest.raises(ioplex.PointTypeError):
            await host.write("d.exec.7", 3)
        with pytest.raises(ioplex.UnknownPointError):
            await host.write("d.exec", "x")


@pytest.mark.anyio
async def test_system_points_and_clock(make_host) -> None:
    config = {"ioservers": {"system": {"plugin": "system"}, "dummy": {"plugin": "dummy"}}}
    async with make_host(config) as host:
        await host.wait_online()
        assert abs(host.points["system.time"].value / 1000 - host.time()) < 2
        assert host.points["system.ioservers.dummy"].value == "online"
        assert host.points["system.plugins.dummy"].value == "loaded"
        with pytest.raises(ioplex.ReadOnlyPointError):
            await host.write("system.time", 0)
    config["host"] = {"allow_set_clock": True, "clock": "virtual"}
    async with make_host(config) as host:
        await host.write("system.time", 1_000_000_000_000)
        assert abs(host.time() - 1_000_000_000) < 1
        assert abs(host.points["system.time"].value - 1_000_000_000_000) < 1000


class OnDemand:
    """Connects only when there is work: up, taking writes, with its link closed."""

    def __init__(self, io):
        io.declare("value", 1, writable=True)

    @ioplex.hookimpl
    async def connect(self, ioserver):
        ioserver.set_online(link=False)
        await anyio.sleep_forever()


@pytest.mark.anyio
async def test_online_with_the_link_closed(make_host, builtins_only) -> None:
    builtins_only.register(plugin_with("ondemand", OnDemand), "ondemand")
    async with make_host({"ioservers": {"o": {"plugin": "ondemand"}}}, builtins_only) as host:
        await host.wait_online("o")
        assert host.points["o.connection"].value == "offline"
        assert host.points["o.value"].quality is Quality.STALE  # usable, not yet confirmed
        assert host.ioservers["o"].state is State.ONLINE


class PortHog:
    """A plugin whose service listens on a port another socket already holds."""

    attempts = 0
    port = 0

    @ioplex.hookimpl
    async def serve(self, host, settings):
        PortHog.attempts += 1
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        await listener.aclose()


@pytest.mark.anyio
async def test_a_taken_listen_port_is_reported_once_and_retried_slowly(
    make_host, builtins_only, caplog
) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        PortHog.port = holder.getsockname()[1]
        builtins_only.register(PortHog(), "porthog")
        host = make_host({"host": {"restart_delay": 0.01, "restart_max_delay": 0.2}}, builtins_only)
        async with host:
            await anyio.sleep(1.0)
    assert 3 <= PortHog.attempts <= 8  # every 0.2 s (restart_max_delay), not every 0.01 s
    lines = [r for r in caplog.records if "is another program using it?" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "ERROR"


class Doorkeeper:
    """An I/O server type whose peer refuses the login until `opens` is set."""

    attempts = 0
    opens = False

    @ioplex.hookimpl
    def register_ioserver_types(self, register):
        register("doorkeeper", lambda io: self, {"type": "object", "additionalProperties": False})

    @ioplex.hookimpl
    async def connect(self, ioserver):
        Doorkeeper.attempts += 1
        if not Doorkeeper.opens:
            raise ioplex.Refused("the peer refused the login as 'op'")
        ioserver.set_online()
        await anyio.sleep_forever()


@pytest.mark.anyio
async def test_a_refusal_is_retried_slowly_logged_once_and_heals(
    make_host, builtins_only, caplog
) -> None:
    builtins_only.register(Doorkeeper(), "doorkeeper")
    host = make_host(
        {
            "host": {"restart_delay": 0.01, "restart_max_delay": 0.2},
            "ioservers": {"door": {"plugin": "doorkeeper"}},
        },
        builtins_only,
    )
    async with host:
        await anyio.sleep(1.0)
        io = host.ioservers["door"]
        assert io.state is State.RETRYING and "refused the login" in (io.detail or "")
        assert 3 <= Doorkeeper.attempts <= 8  # every 0.2 s (restart_max_delay), not 0.01 s
        Doorkeeper.opens = True
        await host.wait_online("door")
    lines = [r for r in caplog.records if "refused the login" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "ERROR"
    assert "stopped for good" not in caplog.text


@pytest.mark.anyio
async def test_the_dummy_simulation_stays_near_its_configured_values(make_host) -> None:
    host = make_host(
        {
            "ioservers": {
                "d": {
                    "plugin": "dummy",
                    "options": {"points": {"light": 0, "temp": 21.5, "door": False}, "rate": 1000},
                }
            }
        }
    )
    async with host:
        await host.wait_online("d")
        seen: dict[str, set] = {"d.light": set(), "d.temp": set()}
        with host.subscribe("d.light", "d.temp") as events:
            with anyio.fail_after(10):
                while sum(map(len, seen.values())) < 400:
                    event = await events.__anext__()
                    seen[event.name].add(event.value)
    assert seen["d.light"] <= {0, 1}
    assert all(17.0 < t < 26.0 for t in seen["d.temp"])
