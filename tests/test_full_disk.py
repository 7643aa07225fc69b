"""A full disk: the host starts and runs, data loggers queue their samples (bounded) and
resume by themselves once there is room, with nothing queued lost; a server's info file is
never a reason not to serve.

The disk is a small tmpfs mounted for the test (root with CAP_SYS_ADMIN, as the suite runs
in CI); filling it with a file is a real ENOSPC for SQLite, not a simulated error.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import ioplex
import pytest
from ioplex import testing
from ioplex.serving import InfoFile
from ioplex.testing import fill_disk as fill

pytestmark = pytest.mark.anyio


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of our own."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        with testing.small_disk(disk):
            yield disk
    except testing.DiskUnavailable as exc:
        pytest.skip(str(exc))


def host_on(disk: Path, make_host: Callable[..., ioplex.Host]) -> ioplex.Host:
    host = make_host(
        {
            "host": {"data_dir": str(disk / "data")},
            "ioservers": {"dummy": {"plugin": "dummy", "options": {"points": {"n": 0}}}},
            "loggers": {"a": {"points": ["dummy.n"]}},
        }
    )
    host.loggers.flush_interval = 0.05
    return host


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


async def test_the_disk_fills_while_recording(small_disk, make_host, caplog) -> None:
    host = host_on(small_disk, make_host)
    with caplog.at_level(logging.WARNING, logger="ioplex.loggers"):
        async with host:
            await host.wait_online("dummy")
            await host.write("dummy.n", 1)
            await until(lambda: host.loggers["a"].recorded >= 2)
            filler = fill(small_disk)
            for i in range(2, 30_002):  # far more than the free pages could hold
                await host.write("dummy.n", i)
                if i % 2_000 == 0:
                    await anyio.sleep(0.01)
            await until(lambda: host.loggers.health.startswith("failing"))
            assert "database or disk is full" in host.loggers.health
            assert host.ioservers["dummy"].state is ioplex.State.ONLINE  # the host goes on
            filler.unlink()
            await until(lambda: host.loggers["a"].pending == 0 and host.loggers.health == "ok")
            await host.loggers.flush()  # waits for a batch still being committed
            values = [s.value for s in host.loggers["a"].samples_after(0, 100_000)]
    assert values[-30_000:] == [float(i) for i in range(2, 30_002)]  # none lost
    assert host.loggers["a"].dropped == 0
    failures = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert 1 <= len(failures) <= 4, [r.getMessage() for r in failures]  # rate-limited


async def test_the_host_starts_on_a_full_disk(small_disk, make_host, caplog) -> None:
    filler = fill(small_disk)
    host = host_on(small_disk, make_host)
    with caplog.at_level(logging.WARNING, logger="ioplex.loggers"):
        async with host:
            await host.wait_online("dummy")
            for i in range(1, 101):
                await host.write("dummy.n", i)
            assert host.loggers.health.startswith("failing: cannot open")
            assert host.loggers["a"].pending >= 100  # queued: the writes and the initial value
            with pytest.raises(ioplex.IoplexError, match="not open"):
                await host.loggers.flush()
            filler.unlink()
            await until(lambda: host.loggers["a"].pending == 0 and host.loggers.health == "ok")
            await host.loggers.flush()
            values = [s.value for s in host.loggers["a"].samples_after(0, 1_000)]
    assert values[-100:] == [float(i) for i in range(1, 101)] and set(values[:-100]) == {0.0}
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot open" in m and "disk is full" in m for m in messages), messages
    assert any("is open now" in m for m in messages), messages


async def test_a_stop_before_the_disk_frees_says_what_is_lost(small_disk, make_host, caplog):
    fill(small_disk)
    host = host_on(small_disk, make_host)
    with caplog.at_level(logging.ERROR, logger="ioplex.loggers"):
        async with host:
            await host.wait_online("dummy")
            await host.write("dummy.n", 5)
    messages = [r.getMessage() for r in caplog.records]
    assert any(re.search(r"never opened: [2-9] samples lost", m) for m in messages), messages


def test_an_info_file_on_a_full_disk_is_skipped_and_logged(small_disk, caplog) -> None:
    info = InfoFile(small_disk / "web" / "server.json", "web server of host t")
    assert info.publish({"port": 1})
    fill(small_disk)
    with caplog.at_level(logging.WARNING, logger="ioplex.serving"):
        assert not info.publish({"port": 2})
    assert "web server of host t: cannot write" in caplog.text and "serving anyway" in caplog.text
    assert json.loads((small_disk / "web" / "server.json").read_text()) == {"port": 1}
    assert not (small_disk / "web" / "server.tmp").exists()
    info.clear()
    info.clear()
    assert not (small_disk / "web" / "server.json").exists()
