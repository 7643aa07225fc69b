"""Reloading a running host (SIGHUP): only what changed is touched, a bad file changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio

BASE = """
[host]
name = "site"
data_dir = "data"
restart_delay = 0.05

[ioservers.keep]
plugin = "dummy"
options = {{ points = {{ a = 1 }} }}

[ioservers.gone]
plugin = "dummy"
options = {{ points = {{ b = 2 }} }}

[ioservers.edit]
plugin = "dummy"
options = {{ points = {{ c = {c} }} }}
{extra}
"""


def write(path: Path, c: int = 3, extra: str = "") -> Path:
    path.write_text(BASE.format(c=c, extra=extra), encoding="utf-8")
    return path


async def test_reload_adds_removes_and_restarts_only_what_changed(tmp_path, builtins_only) -> None:
    config = write(tmp_path / "site.toml")
    host = ioplex.Host.from_config(config, plugins=builtins_only)
    async with host:
        await host.wait_online()
        keep = host.ioservers["keep"]
        driver = keep.driver
        with host.subscribe("keep.*") as keep_events:
            write(
                config,
                c=30,
                extra='[ioservers.new]\nplugin = "dummy"\n'
                "options = { points = { d = 4 } }\n".replace("[ioservers.gone]", ""),
            )
            text = config.read_text().replace(
                '[ioservers.gone]\nplugin = "dummy"\noptions = { points = { b = 2 } }\n', ""
            )
            config.write_text(text)
            result = await host.reload(config)
            await host.wait_online()
            assert (result.added, result.removed, result.changed) == (["new"], ["gone"], ["edit"])
            assert keep_events.pending() == 0  # the untouched instance never dropped
        assert host.ioservers["keep"] is keep and keep.driver is driver
        assert "gone" not in host.ioservers and "gone.b" not in host.points
        assert host.points["edit.c"].value == 30 and host.points["new.d"].value == 4
        assert host.points["keep.connection"].value == "online"


async def test_an_added_instance_shows_in_the_system_points(tmp_path, builtins_only) -> None:
    config = write(tmp_path / "site.toml", extra='[ioservers.system]\nplugin = "system"\n')
    host = ioplex.Host.from_config(config, plugins=builtins_only)
    async with host:
        await host.wait_online()
        write(
            config,
            extra='[ioservers.system]\nplugin = "system"\n[ioservers.later]\nplugin = "dummy"\n',
        )
        await host.reload(config)
        await host.wait_online("later")
        assert host.points["system.ioservers.later"].value == "online"


async def test_a_bad_file_is_rejected_whole(tmp_path, builtins_only) -> None:
    config = write(tmp_path / "site.toml")
    host = ioplex.Host.from_config(config, plugins=builtins_only)
    async with host:
        await host.wait_online()
        write(config, c=30, extra='[ioservers.new]\nplugin = "nosuchplugin"\n')
        with pytest.raises(ioplex.ConfigError, match="nosuchplugin"):
            await host.reload(config)
        assert host.points["edit.c"].value == 3 and "new" not in host.ioservers


async def test_reload_restarts_loggers_when_their_tables_change(tmp_path, builtins_only) -> None:
    config = write(tmp_path / "site.toml", extra='[loggers.x]\npoints = ["keep.a"]\n')
    host = ioplex.Host.from_config(config, plugins=builtins_only)
    async with host:
        await host.wait_online()
        old = host.loggers
        write(config, extra='[loggers.x]\npoints = ["keep.a"]\n[loggers.y]\npoints = ["edit.c"]\n')
        result = await host.reload(config)
        assert result.loggers and result.changed == [] and host.loggers is not old
        assert set(host.loggers) == {"x", "y"}
        await host.write("keep.a", 5)
        with anyio.fail_after(5):
            while not host.loggers["x"].recorded:
                await host.loggers.flush()
                await anyio.sleep(0.05)


def ioplex_cmd(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ioplex", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "IOPLEX_LOAD_PLUGINS": ""},
    )


def test_sighup_reloads_and_sigterm_stops(tmp_path) -> None:
    config = write(tmp_path / "site.toml")
    proc = ioplex_cmd("run", str(config), "--watch", "edit.*", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        line = ""
        while "edit.c = 3" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "edit.c = 3" in line
        write(config, c=7)
        proc.send_signal(signal.SIGHUP)
        while "edit.c = 7" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "edit.c = 7" in line
        write(config, extra='[ioservers.bad]\nplugin = "nosuch"\n')
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert proc.poll() is None  # a bad file does not stop the host
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "reloaded: restarted edit" in err
    assert "reload refused" in err and "nosuch" in err
    assert "Traceback" not in err


def test_startup_failures_are_one_line(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = tmp_path / "site.toml"
    config.write_text(f'[host]\ndata_dir = "{blocker}/data"\n')
    proc = ioplex_cmd("run", str(config), cwd=tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error: cannot create the data directory")
    assert "Traceback" not in err

    proc = ioplex_cmd("run", str(write(config)), "--watch", "a b", cwd=tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and err.count("\n") == 1 and "--watch" in err

    config = write(config, extra='[loggers.x]\npoints = ["keep.a"]\n')
    first = ioplex_cmd("run", str(config), cwd=tmp_path)
    try:
        time.sleep(2)
        second = ioplex_cmd("run", str(config), cwd=tmp_path)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1 and "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("error:")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=20)
