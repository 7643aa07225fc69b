"""Replicated loggers, fed by a fake plugin implementing the `replicate` hook: idempotent
storage, the high-water mark across a restart, add_feed from a factory, failures and retries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import ioplex
import pytest
from ioplex.loggers.replication import Feed

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000 - 1_700_000_000 % 86_400

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "options": {
            "type": "object",
            "default": {},
            "additionalProperties": False,
            "properties": {
                "feed": {
                    "type": "string",
                    "default": "",
                    "description": "A local logger to add_feed into, or ''.",
                }
            },
        }
    },
}


class RemoteLogger:
    """What the fake plugin replicates from: rows by remote seq, and every call it got."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, str, Any, str]] = []
        self.calls: list[tuple[str, str, int, int]] = []
        self.fail: Exception | None = None
        self.bad_row: tuple | None = None

    def add(self, n: int, value: Callable[[int], Any] = float) -> None:
        start = len(self.rows) + 1
        for seq in range(start, start + n):
            self.rows.append((seq, T0 + seq * 60.0, "meter.kwh", value(seq), "good"))


class FakeReplicator:
    """A plugin whose I/O server type ``fake`` replicates `remote`."""

    def __init__(self, remote: RemoteLogger) -> None:
        self.remote = remote

    @ioplex.hookimpl
    def register_ioserver_types(self, register: Any) -> None:
        register("fake", self.factory, SCHEMA, "replicates an in-memory logger")

    def factory(self, ioserver: ioplex.IOServer) -> Any:
        if ioserver.options["feed"]:
            ioserver.host.loggers.add_feed(ioserver.options["feed"], ioserver.name, "energy", 0.05)
        remote = self.remote

        class Driver:
            @ioplex.hookimpl
            async def replicate(
                self, ioserver: ioplex.IOServer, logger: str, source_id: str, since: int, limit: int
            ) -> list[tuple]:
                remote.calls.append((logger, source_id, since, limit))
                await anyio.lowlevel.checkpoint()
                if remote.fail is not None:
                    raise remote.fail
                rows = [r for r in remote.rows if r[0] > since][:limit]
                if remote.bad_row is not None and rows:
                    rows[len(rows) // 2] = remote.bad_row
                return rows

        return Driver()


@pytest.fixture
def remote() -> RemoteLogger:
    return RemoteLogger()


@pytest.fixture
def fake_plugins(remote: RemoteLogger) -> ioplex.Plugins:
    plugins = ioplex.Plugins()
    plugins.load_builtins()
    info = plugins.register(FakeReplicator(remote), "fake")
    assert info.error is None, info.error
    return plugins


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


MIRROR = {
    "ioservers": {"remote": {"plugin": "fake"}},
    "loggers": {
        "mirror": {
            "source": "remote",
            "source_id": "energy",
            "pollinterval": 0.05,
            "kind": "counter",
            "levels": ["hour", "day"],
            "retention": {"raw": "1d"},
        }
    },
}


async def test_rows_are_stored_once_and_the_mark_survives_a_restart(
    make_host: Callable[..., ioplex.Host],
    fake_plugins: ioplex.Plugins,
    remote: RemoteLogger,
    tmp_path: Path,
) -> None:
    remote.add(35)
    host = make_host(MIRROR, plugins=fake_plugins)
    host.loggers.replicate_limit = 10
    async with host:
        mirror = host.loggers["mirror"]
        feed = mirror.feeds[0]
        await until(lambda: feed.hwm == 35)
        # One poll repeats while full batches come back: 10 + 10 + 10 + 5.
        assert [c[2] for c in remote.calls[:4]] == [0, 10, 20, 30]
        assert remote.calls[0] == ("mirror", "energy", 0, 10)
        stored = mirror.samples_after(0, 100)
        assert [s.seq for s in stored] == list(range(1, 36))
        assert [s.value for s in stored] == [float(i) for i in range(1, 36)]
        # The same rows again: nothing new is stored, the mark stays.
        again = await host.loggers._write(
            host.loggers._store.write_replicated,
            mirror._state,
            feed.id,
            [(s, t, p, v, q) for s, t, p, v, q in remote.rows[:20]],
        )
        assert again == (0, 35)
        assert len(mirror.samples_after(0, 100)) == 35
        await until(lambda: remote.calls[-1][2] == 35)  # the next poll asks from the mark

    remote.calls.clear()
    remote.add(5)
    host = make_host(MIRROR, plugins=fake_plugins)
    async with host:
        mirror = host.loggers["mirror"]
        await until(lambda: mirror.feeds[0].hwm == 40)
        assert remote.calls[0][2] == 35  # the mark was read back from the database
        samples = mirror.samples_after(0, 100)
        assert [s.seq for s in samples] == list(range(1, 41))  # each row once
        # Consolidated with the local logger's own kind and levels: a counter, per hour.
        await host.loggers.consolidate()
        hours = mirror.query(level="hour")
        assert sum(h.delta for h in hours) == 39.0  # readings 1..40: 39 steps of 1
        # Its own retention: raw kept one day, whatever the source keeps.
        await host.loggers.expire(T0 + 2 * 86_400)
        assert mirror.samples_after(0, 100) == []
        assert len(mirror.query(level="hour")) == len(hours)


async def test_a_driver_factory_adds_a_feed(
    make_host: Callable[..., ioplex.Host],
    fake_plugins: ioplex.Plugins,
    remote: RemoteLogger,
) -> None:
    remote.add(3)
    host = make_host(
        {
            "ioservers": {
                "remote": {"plugin": "fake", "options": {"feed": "remote.energy"}},
                "orphan": {"plugin": "fake", "options": {"feed": "remote.power"}},
            },
            "loggers": {"remote.energy": {"levels": ["raw"]}},
        },
        plugins=fake_plugins,
    )
    async with host:
        logger = host.loggers["remote.energy"]
        await until(lambda: logger.feeds and logger.feeds[0].hwm == 3)
        assert [(f.source, f.source_id, f.interval) for f in logger.feeds] == [
            ("remote", "energy", 0.05)
        ]
        assert len(logger.samples_after(0, 10)) == 3
        # A feed into a logger that is not defined fails that I/O server, saying why.
        orphan = host.ioservers["orphan"]
        assert orphan.state is ioplex.State.FAILED
        assert "data logger 'remote.power'" in orphan.detail
        assert 'add a [loggers."remote.power"] table' in orphan.detail
        # Adding the same feed again is harmless.
        assert host.loggers.add_feed("remote.energy", "remote", "energy", 1) is logger.feeds[0]
        with pytest.raises(ioplex.IoplexError, match="unknown I/O server 'nowhere'"):
            host.loggers.add_feed("remote.energy", "nowhere", "energy", 1)
        with pytest.raises(ValueError, match="must be positive"):
            host.loggers.add_feed("remote.energy", "remote", "energy", 0)


async def test_failures_are_logged_and_retried_with_backoff(
    make_host: Callable[..., ioplex.Host],
    fake_plugins: ioplex.Plugins,
    remote: RemoteLogger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    remote.add(5)
    remote.fail = ConnectionError("remote is down")
    host = make_host(MIRROR, plugins=fake_plugins)
    with caplog.at_level(logging.WARNING, logger="ioplex.loggers"):
        async with host:
            feed = host.loggers["mirror"].feeds[0]
            await until(lambda: feed.failures >= 3)
            messages = [r.getMessage() for r in caplog.records]
            assert any(
                "data logger 'mirror'" in m
                and "I/O server 'remote'" in m
                and "remote logger 'energy'" in m
                and "remote is down" in m
                for m in messages
            ), messages
            assert feed.hwm == 0 and feed.last_error == "ConnectionError: remote is down"
            remote.fail = None
            await until(lambda: feed.hwm == 5)
            assert feed.failures == 0 and feed.last_error is None
    slow = Feed(host.loggers["mirror"], "remote", "energy", 60)
    delays = []
    for n in range(1, 8):
        slow.failures = n
        delays.append(slow.retry_delay())
    assert delays == [60, 120, 240, 480, 600, 600, 600]


async def test_a_bad_batch_commits_nothing(
    make_host: Callable[..., ioplex.Host],
    fake_plugins: ioplex.Plugins,
    remote: RemoteLogger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    remote.add(6)
    remote.bad_row = (4, T0, "meter.kwh", 1.0, "excellent")
    host = make_host(MIRROR, plugins=fake_plugins)
    with caplog.at_level(logging.WARNING, logger="ioplex.loggers"):
        async with host:
            mirror = host.loggers["mirror"]
            feed = mirror.feeds[0]
            await until(lambda: feed.failures >= 1)
            assert "row 3 (seq 4): quality must be one of good, stale, bad, got 'excellent'" in (
                feed.last_error or ""
            )
            assert feed.hwm == 0 and mirror.samples_after(0, 10) == []
            remote.bad_row = None
            await until(lambda: feed.hwm == 6)
            assert len(mirror.samples_after(0, 10)) == 6


async def test_a_source_that_cannot_replicate_is_reported(
    make_host: Callable[..., ioplex.Host],
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = make_host(
        {
            "ioservers": {"dummy": {"plugin": "dummy"}},
            "loggers": {"mirror": {"source": "dummy", "pollinterval": 0.05}},
        }
    )
    with caplog.at_level(logging.ERROR, logger="ioplex.loggers"):
        async with host:
            feed = host.loggers["mirror"].feeds[0]
            await until(lambda: feed.last_error is not None)
            assert feed.last_error == "I/O server 'dummy' (dummy) does not implement replicate"
            await until(lambda: not feed.running)
    assert any("data logger 'mirror'" in r.getMessage() for r in caplog.records)
