"""The events engine on a full disk: rules run on, timers work in memory, and the database
is written again (with the whole state) once there is room."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from ioplex import testing
from ioplex_events.store import database_path

from .conftest import make_config, running, until

pytestmark = pytest.mark.anyio

RULES = """\
IO d.a : IO d.b = 1, TIMER short = SET 0.2, TIMER long = SET 3600
TIMER short : IO d.c = 1
"""


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        with testing.small_disk(mount):
            yield mount
    except testing.DiskUnavailable as exc:
        pytest.skip(str(exc))


def stored_timers(data_dir: Path) -> set[str]:
    db = sqlite3.connect(database_path(data_dir))
    try:
        return {name for (name,) in db.execute("SELECT name FROM timers")}
    finally:
        db.close()


async def test_rules_run_on_a_full_disk_and_the_state_is_saved_later(
    tmp_path: Path, disk: Path, caplog
) -> None:
    data_dir = disk / "data"
    config = make_config(tmp_path, RULES, host={"data_dir": str(data_dir)})
    filler = testing.fill_disk(disk)
    with caplog.at_level(logging.WARNING, logger="ioplex.plugin.events"):
        async with running(config) as (host, engine):
            assert engine.store.problem is not None
            await host.write("d.a", 5)
            await until(lambda: host.points["d.b"].value == 1 and host.points["d.c"].value == 1)
            assert "long" in engine.timers
            filler.unlink()
            await until(lambda: engine.store.problem is None, timeout=15)
            assert stored_timers(data_dir) == {"long"}
            # The disk fills again while running: a timer set now is kept in memory...
            filler = testing.fill_disk(disk)
            await host.write("d.c", 0)
            await host.write("d.a", 6)
            await until(lambda: host.points["d.c"].value == 1 and "short" not in engine.timers)
            engine.set_timer("later", "set", 7200)
            assert engine.store.problem is not None
            filler.unlink()
            # ... and saved with the rest once the file can be written again.
            await until(lambda: engine.store.problem is None, timeout=15)
            assert stored_timers(data_dir) == {"long", "later"}
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot write" in m and "rules run on" in m for m in messages), messages
    assert any("is written again" in m for m in messages), messages
    async with running(config) as (host, engine):  # the timers survived the restart
        assert {"long", "later"} <= set(engine.timers)
