"""Atomic reload with file watching, INIT, and VSCP events from the host's bus."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import pytest
from ioplex.errors import ConfigError

from .conftest import make_config, running, until

pytestmark = pytest.mark.anyio


async def test_bad_file_is_rejected_whole_and_previous_rules_keep_running(tmp_path, caplog):
    config = make_config(tmp_path, "IO d.a : IO d.b = 1\nINIT : IO d.c = IO d.c\n")
    path = tmp_path / "events" / "main.txt"
    async with running(config) as (host, engine):
        path.write_text("IO d.a : IO d.b = 2\nIO d.a : IO x.b = 3\nIO d.a = : LOG = 1\n")
        errors = await engine.reload()
        (error,) = errors
        assert [(d.line, d.column) for d in error.diagnostics] == [(2, 10), (3, 10)]
        assert "unknown point 'x.b'" in error.diagnostics[0].message
        await host.write("d.a", 5)
        await until(lambda: host.points["d.b"].value == 1)  # the previous rule ran
        assert "keeps its previous rules" in caplog.text
        path.write_text("IO d.a : IO d.b = 2\nINIT : IO d.c = 9\n")
        assert await engine.reload() == []
        await until(lambda: host.points["d.c"].value == 9)  # INIT after the reload
        await host.write("d.a", 6)
        await until(lambda: host.points["d.b"].value == 2)


async def test_files_are_watched(tmp_path):
    config = make_config(tmp_path, "IO d.a : IO d.b = 1\n", watch=True)
    path = tmp_path / "events" / "main.txt"
    async with running(config) as (host, engine):
        await anyio.sleep(0.3)  # the watcher starts
        path.write_text("IO d.a : IO d.b = 7\n")
        await until(
            lambda: next(iter(engine.files.values()))[0].rule.text.endswith("7"), timeout=10
        )
        (tmp_path / "events" / "more.txt").write_text("IO d.a : IO d.c = 8\n")
        await until(lambda: len(engine.files) == 2, timeout=10)
        await host.write("d.a", 1)
        await until(lambda: host.points["d.b"].value == 7 and host.points["d.c"].value == 8)


@dataclass
class FakeVscpEvent:
    """The fields vscp_link's Event has (this plugin duck-types it)."""

    vscp_class: int
    vscp_type: int
    data: bytes = b""
    guid: bytes = bytes(16)
    head: int = 0

    def line(self) -> str:
        return f"{self.head},{self.vscp_class},{self.vscp_type},0,,0,-," + ",".join(
            f"0x{b:02X}" for b in self.data
        )


async def test_vscp_events_and_send(tmp_path):
    rules = (
        "VSCP 10,6 : IO d.text = %event.data[1], VSCP SEND vl %event\n"
        "VSCP FILTER 0,20,0 MASK 0,0xFFFF,0 : IO d.a = %event.type\n"
    )
    config = make_config(
        tmp_path, rules, ioservers={"vl": {"plugin": "dummy", "options": {"points": {"event": ""}}}}
    )
    async with running(config) as (host, _engine):
        host.publish(FakeVscpEvent(10, 6, bytes([0x88, 0x02])), source="plugin:test")
        await until(lambda: host.points["vl.event"].value == "0,10,6,0,,0,-,0x88,0x02")
        assert host.points["d.text"].value == "2"
        host.publish(FakeVscpEvent(20, 9), source="plugin:test")
        host.publish(FakeVscpEvent(21, 3), source="plugin:test")  # filtered out
        await until(lambda: host.points["d.a"].value == 9)
        host.publish("not an event", source="plugin:test")  # ignored
        await anyio.sleep(0.1)


async def test_day_and_night_need_the_site(tmp_path, caplog):
    # The host's config check refuses such a file at start; a reload refuses it too.
    with pytest.raises(ConfigError, match="main.txt:1:1: DAY needs the site's position"):
        async with running(make_config(tmp_path, "DAY : LOG = 1\n")):
            pass
    async with running(make_config(tmp_path, "IO d.a : LOG = 1\n")) as (_host, engine):
        (tmp_path / "events" / "main.txt").write_text("DAY : LOG = 1\n")
        errors = await engine.reload()
        assert len(errors) == 1 and "DAY needs the site's position" in str(errors[0])
        assert next(iter(engine.files.values()))[0].rule.text == "IO d.a : LOG = 1"
    assert "DAY needs the site's position" in caplog.text
    config = make_config(
        tmp_path, "DAY +0 OR NIGHT : IO d.a = 1\n", host={"latitude": 45.46, "longitude": 9.19}
    )
    async with running(config) as (_host, engine):
        rule = next(iter(engine.files.values()))[0]
        assert rule.state is True  # it is either day or night
