"""Data loggers under hostile values and faults: a value no column holds, a failing logger,
a remote database replaced under a replica."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import anyio
import ioplex
import pytest
from ioplex import ReplicatedRows

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


async def test_a_huge_integer_never_stops_the_loggers(make_host, caplog) -> None:
    host = make_host(
        {
            "ioservers": {"dummy": {"plugin": "dummy", "options": {"points": {"n": 0, "t": 1.5}}}},
            "loggers": {"a": {"points": ["dummy.n"]}, "b": {"points": ["dummy.t"]}},
        }
    )
    host.loggers.flush_interval = 0.05
    async with host:
        await host.wait_online("dummy")
        with pytest.raises(ioplex.PointTypeError):
            await host.write("dummy.n", int("9" * 401))
        await host.write("dummy.n", 5)
        await host.write("dummy.t", 2.5)
        await until(lambda: host.loggers["a"].recorded >= 2 and host.loggers["b"].recorded >= 2)
    assert [s.value for s in host.loggers["a"].samples_after(0, 10)][-1] == 5.0
    assert "lost" not in caplog.text and "failed" not in caplog.text


async def test_a_sample_no_column_can_hold_is_set_aside(make_host, caplog) -> None:
    host = make_host(
        {
            "ioservers": {"dummy": {"plugin": "dummy", "options": {"points": {"n": 0}}}},
            "loggers": {"a": {"points": ["dummy.n"]}, "b": {"points": ["dummy.n"]}},
        }
    )
    async with host:
        await host.wait_online("dummy")
        # Past the registry (a plugin bug, or a value type the contract will allow one day):
        # the store must still commit the rest of the batch.
        for lg in (host.loggers["a"], host.loggers["b"]):
            lg._on_change(ioplex.PointEvent("dummy.n", 10**400, 0, T0, ioplex.Quality.GOOD))
            lg._on_change(ioplex.PointEvent("dummy.n", 7, 0, T0 + 1, ioplex.Quality.GOOD))
        with caplog.at_level(logging.WARNING):
            await host.loggers.flush()
            lg = host.loggers["a"]
            lg._on_change(ioplex.PointEvent("dummy.n", 10**400, 0, T0 + 2, ioplex.Quality.GOOD))
            await host.loggers.flush()
        assert host.loggers.set_aside == 3
        assert [s.value for s in host.loggers["a"].samples_after(0, 10)][-1:] == [7.0]
        assert len([r for r in caplog.records if "set aside" in r.getMessage()]) == 2  # a, b
        assert host.loggers.health == "ok"


async def test_one_failing_logger_does_not_hold_up_the_others(make_host) -> None:
    host = make_host(
        {
            "ioservers": {"dummy": {"plugin": "dummy", "options": {"points": {"n": 0}}}},
            "loggers": {"a": {"points": ["dummy.n"]}, "b": {"points": ["dummy.n"]}},
        }
    )
    async with host:
        await host.wait_online("dummy")
        broken = host.loggers["a"]._state
        real_id = broken.id
        broken.id = 10**6  # its rows now break a foreign key in the store
        host.loggers._store.conn.execute("PRAGMA foreign_keys = ON")
        await host.write("dummy.n", 3)
        with pytest.raises(sqlite3.IntegrityError):
            await host.loggers.flush()
        assert host.loggers.health.startswith("failing")
        assert host.loggers["b"].recorded >= 1  # b committed on its own
        assert host.loggers["a"]._pending  # a's samples wait for the retry
        broken.id = real_id
        await host.loggers.flush()
        assert host.loggers.health == "ok"
        assert [s.value for s in host.loggers["a"].samples_after(0, 10)][-1] == 3.0


class Remote:
    def __init__(self) -> None:
        self.store = "db-1"
        self.rows: list[tuple[int, float, str, Any, str]] = []

    def fill(self, start: int, n: int, t0: float) -> None:
        self.rows = [(i, t0 + i, "meter.kwh", float(i), "good") for i in range(1, start + n)]


class Plugin:
    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    @ioplex.hookimpl
    def register_ioserver_types(self, register: Any) -> None:
        schema = {"type": "object", "additionalProperties": False, "properties": {}}
        register("fake", self.factory, schema, "replicates an in-memory logger")

    def factory(self, ioserver: ioplex.IOServer) -> Any:
        remote = self.remote

        class Driver:
            @ioplex.hookimpl
            async def replicate(self, ioserver, logger, source_id, since, limit):
                rows = [r for r in remote.rows if r[0] > since][:limit]
                return ReplicatedRows(rows, store=remote.store)

        return Driver()


async def test_a_replaced_remote_database_is_replicated_without_gap_or_duplicate(
    make_host, builtins_only, caplog
) -> None:
    remote = Remote()
    builtins_only.register(Plugin(remote), "fake")
    config = {
        "ioservers": {"remote": {"plugin": "fake"}},
        "loggers": {"copy": {"source": "remote", "source_id": "e", "pollinterval": 0.05}},
    }
    remote.rows = [(i, T0 + i, "meter.kwh", float(i), "good") for i in range(1, 301)]
    async with make_host(config, plugins=builtins_only) as host:
        copy = host.loggers["copy"]
        await until(lambda: copy.feeds[0].hwm == 300)
        # The remote restores a backup holding rows 1..100, then records 232 new rows, whose
        # seqs (101..332) overlap the ones the replica already has.
        remote.store = "db-2"
        restored = [(i, T0 + i, "meter.kwh", float(i), "good") for i in range(1, 101)]
        new = [(100 + i, T0 + 10_000 + i, "meter.kwh", 1000.0 + i, "good") for i in range(1, 233)]
        remote.rows = restored + new
        with caplog.at_level(logging.WARNING):
            await until(lambda: copy.feeds[0].hwm == 332 and copy.feeds[0].store == "db-2")
        times = [s.time for s in copy.samples_after(0, 10_000)]
        assert len(times) == 300 + 232 and len(set(times)) == len(times)
        assert "replaced or restored" in caplog.text
    # the identity and generation survive a restart: nothing is replicated twice
    async with make_host(config, plugins=builtins_only) as host:
        copy = host.loggers["copy"]
        await until(lambda: copy.feeds[0].hwm == 332)
        await anyio.sleep(0.2)
        assert len(copy.samples_after(0, 10_000)) == 532


class Late:
    """Declares a point with no value before connecting; connects after a moment."""

    def __init__(self, io: ioplex.IOServer) -> None:
        io.declare("reading", type=float)

    @ioplex.hookimpl
    async def connect(self, ioserver: ioplex.IOServer) -> None:
        await anyio.sleep(0.1)
        ioserver.set_online()
        ioserver.set("reading", 3.5)
        await anyio.sleep_forever()


async def test_a_point_without_a_value_yet_is_not_recorded_as_bad(make_host, builtins_only):
    class Plugin:
        @ioplex.hookimpl
        def register_ioserver_types(self, register: Any) -> None:
            schema = {"type": "object", "additionalProperties": False, "properties": {}}
            register("late", Late, schema, "connects late")

    builtins_only.register(Plugin(), "late")
    host = make_host(
        {"ioservers": {"l": {"plugin": "late"}}, "loggers": {"a": {"points": ["l.reading"]}}},
        builtins_only,
    )
    async with host:
        await host.wait_online("l")
        await host.loggers.flush()
        samples = host.loggers["a"].samples_after(0, 10)
    assert [(s.value, s.quality) for s in samples] == [(3.5, "good")]


async def test_record_refuses_names_the_registry_refuses(make_host) -> None:
    host = make_host({"loggers": {"a": {"points": []}}})
    async with host:
        with pytest.raises(ioplex.PointNameError, match="U\\+DCFF"):
            host.loggers["a"].record("a.\udcff", 1.0)
        host.loggers["a"].record("imported.meter", 2.0)
        assert await host.loggers.flush() == 1


async def test_a_damaged_database_is_reported_and_heals_once_moved_aside(
    make_host, tmp_path, caplog
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "loggers.db").write_bytes(b"not a database\n" * 100)
    host = make_host(
        {
            "ioservers": {"dummy": {"plugin": "dummy", "options": {"points": {"n": 0}}}},
            "loggers": {"a": {"points": ["dummy.n"]}},
        }
    )
    host.loggers.flush_interval = 0.05
    with caplog.at_level(logging.ERROR, logger="ioplex.loggers"):
        async with host:
            await host.wait_online("dummy")
            await host.write("dummy.n", 3)
            assert host.loggers.health.startswith("failing: cannot open")
            assert "move it aside" in caplog.text
            (data / "loggers.db").rename(data / "damaged.db")
            await until(lambda: host.loggers.health == "ok", timeout=10)
            await until(lambda: host.loggers["a"].pending == 0)
            await host.loggers.flush()
            assert [s.value for s in host.loggers["a"].samples_after(0, 10)][-1] == 3.0
