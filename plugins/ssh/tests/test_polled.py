"""Commands from the configuration against the real sshd: typed polled points and switches."""

from __future__ import annotations

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio

COMMANDS = [
    {
        "id": "load",
        "command": "echo 0.25",
        "interval": 0.2,
        "parse": "number",
        "unit": "",
        "description": "1-min load",
    },
    {"id": "users", "command": "echo 3", "interval": 0.2, "parse": "int"},
    {"id": "up", "command": "echo yes", "interval": 0.2, "parse": "bool"},
    {
        "id": "disk.free",
        "command": 'echo \'{"disk": {"free": [10, 42]}}\'',
        "interval": 0.2,
        "parse": "json",
        "key": "disk.free.1",
        "unit": "GB",
    },
    {
        "id": "kernel",
        "command": "echo 'Linux 6.1.0-test x86_64'",
        "interval": 0.2,
        "parse": "regex",
        "regex": r"Linux (\S+)",
    },
    {"id": "broken", "command": "echo nope", "interval": 0.2, "parse": "int"},
]


async def wait_value(host, name, timeout=10):
    with anyio.fail_after(timeout):
        while host.points[name].value is None:
            await anyio.sleep(0.02)
    return host.points[name].value


async def test_polled_commands_give_typed_points(config, start, caplog):
    async with start(config({"commands": COMMANDS})) as host:
        assert await wait_value(host, "ssh.load") == 0.25
        assert await wait_value(host, "ssh.users") == 3
        assert await wait_value(host, "ssh.up") is True
        assert await wait_value(host, "ssh.disk.free") == 42
        assert await wait_value(host, "ssh.kernel") == "6.1.0-test"
        assert host.points["ssh.disk.free"].meta["unit"] == "GB"
        assert host.points["ssh.load"].meta["description"] == "1-min load"
        with pytest.raises(ioplex.ReadOnlyPointError):
            await host.write("ssh.load", 1.0)
        await anyio.sleep(0.5)
        assert host.points["ssh.broken"].quality is ioplex.Quality.BAD
    assert "output not understood under parse = 'int'" in caplog.text
    assert caplog.text.count("ssh.broken") == 1  # rate-limited: one line, not one per poll


async def test_a_switch_runs_its_commands_and_reads_its_state(config, start, remote_home):
    flag = remote_home / "flag"
    switch = {
        "id": "pump",
        "command_on": f"touch {flag}",
        "command_off": f"rm -f {flag}",
        "command_state": f"test -e {flag} && echo on || echo off",
        "interval": 60,
    }
    async with start(config({"commands": [switch]})) as host:
        assert await wait_value(host, "ssh.pump") is False
        await host.write("ssh.pump", True)
        with anyio.fail_after(10):
            while host.points["ssh.pump"].value is not True:
                await anyio.sleep(0.02)
        assert flag.exists()
        await host.write("ssh.pump", False)
        with anyio.fail_after(10):
            while host.points["ssh.pump"].value is not False:
                await anyio.sleep(0.02)
        assert not flag.exists()
        with pytest.raises(ioplex.PointTypeError):
            await host.write("ssh.pump", "maybe")


def test_bad_command_rows_are_reported_with_their_paths():
    rows = [
        {"id": "exec", "command": "x"},
        {"id": "a", "command": "x", "parse": "regex", "regex": "(a)(b)"},
        {"id": "b", "command": "x", "parse": "regex", "regex": "("},
        {"id": "c", "command_on": "x"},
        {"id": "d"},
        {"id": "d", "command": "x", "key": "a.b"},
    ]
    table = {"plugin": "ssh", "address": "127.0.0.1", "user": "u", "options": {"commands": rows}}
    with pytest.raises(ioplex.ConfigError) as info:
        ioplex.Host.from_config(
            {"ioservers": {"ssh": table}}, environ={"IOPLEX_LOAD_PLUGINS": "ssh"}
        )
    found = "\n".join(map(str, info.value.problems))
    assert "ioservers.ssh.options.commands[0].id: 'exec' is a built-in point" in found
    assert "commands[1].regex: needs exactly one group, has 2" in found
    assert "commands[2].regex: not a regular expression" in found
    assert "commands[3]: a switch needs both command_on and command_off" in found
    assert "commands[4]: needs command (a polled value) or command_on" in found
    assert "commands[5].id: 'd' is used by an earlier row" in found
    assert 'commands[5].key: key is for parse = "json"' in found
