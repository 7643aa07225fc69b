"""The SSH seed's rules, verbatim, against a real private OpenSSH sshd (ioplex_ssh.testing).

The commands run as a throwaway unprivileged user created for the session; the machine has
no sudo for it, so ``sudo reboot`` can only fail (the rule's firing is what is tested).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import anyio
import ioplex
import pytest

from .conftest import running, until

ioplex_ssh_testing = pytest.importorskip("ioplex_ssh.testing")

SEED_RULES = """\
TIME 0000 : IO ssh.exec = "sudo reboot"
USER "$exec" : IO ssh.exec = $exec, UISET "$exec.focus" = true
IO ssh.out : UISET stdout.text = IO ssh.out
"""
NIGHTLY_PUT = """\
TIME 0000 :  IO ssh.put = "data_backup/ /tmp/data_backup/",
IO ssh.put = "data_backup/ /tmp/data_backup/",
IO ssh.put = "data_backup/hsyco.script /tmp/data_backup/hsyco.script"
"""
ENVIRON = {**os.environ, "IOPLEX_LOAD_PLUGINS": "events,ssh"}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with ioplex_ssh_testing.private_sshd(tmp_path_factory.mktemp("sshd")) as (server, user):
        assert user.uid != 0
        if shutil.which("sudo"):  # never let this test reboot anything
            out = subprocess.run(
                ["sudo", "-n", "-l", "-U", user.name], capture_output=True, text=True, check=False
            )
            assert "not allowed" in out.stdout + out.stderr
        yield server, user


def _config(tmp_path: Path, sshd, rules: str) -> dict:
    server, user = sshd
    data = tmp_path / "data"
    (data / "ssh").mkdir(parents=True)
    (data / "ssh" / "known_hosts").write_text(server.known_hosts())
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "seed.txt").write_text(rules)
    return {
        "host": {"data_dir": str(data), "clock": "virtual", "timezone": "UTC"},
        "ioservers": {
            "ssh": {
                "plugin": "ssh",
                "address": "127.0.0.1",
                "port": server.port,
                "user": user.name,
                "password": user.password,
            }
        },
        "plugins": {"events": {"files": [str(tmp_path / "events" / "*.txt")], "watch": False}},
    }


def _midnight_soon(before: float = 1.5) -> float:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today.timestamp() + 86400 - before  # just before the next midnight


@pytest.mark.anyio
async def test_console_rules(tmp_path, sshd):
    async with running(_config(tmp_path, sshd, SEED_RULES), environ=ENVIRON) as (host, engine):
        await host.wait_online("ssh", timeout=15)
        host.ui.declare("$exec", "", writable=True)  # the GUI's input field
        await host.ui.write("$exec", "echo hello from $(whoami)")
        await until(
            lambda: (
                "stdout.text" in host.ui
                and host.ui["stdout.text"].value == f"hello from {sshd[1].name}"
            ),
            timeout=15,
        )
        assert host.ui["$exec.focus"].value is True
        # The same command again: ssh.out fires again though unchanged (a forced event).
        rule = next(c for c in next(iter(engine.files.values())) if c.rule.line == 3)
        fired = rule.fired
        host.ui["$exec"].value = ""
        await host.ui.write("$exec", "echo hello from $(whoami)")
        await until(lambda: rule.fired == fired + 1, timeout=15)


@pytest.mark.anyio
async def test_time_0000_sudo_reboot_fires_at_midnight(tmp_path, sshd):
    config = _config(tmp_path, sshd, SEED_RULES)
    async with running(config, environ=ENVIRON, clock_at=_midnight_soon()) as (host, engine):
        await host.wait_online("ssh", timeout=15)
        with host.subscribe("ssh.exec") as results:
            with anyio.fail_after(20):
                async for event in results:
                    if event.quality is ioplex.Quality.GOOD and event.value is not None:
                        break
        assert event.value in (1, 127)  # no sudo here (127), or sudo refused (1)
        rule = next(iter(engine.files.values()))[0]
        assert rule.fired == 1
        assert rule.traces[-1][1]["actions"] == [['IO ssh.exec = "sudo reboot"', "ok"]]


@pytest.mark.anyio
async def test_nightly_put(tmp_path, sshd):
    config = _config(tmp_path, sshd, NIGHTLY_PUT)
    target = Path("/tmp/data_backup")
    if target.exists() and target.stat().st_uid != sshd[1].uid:
        shutil.rmtree(target)  # left by an earlier run's user
    try:
        async with running(config, environ=ENVIRON, clock_at=_midnight_soon(4)) as (host, _e):
            backup = Path(host.ioservers["ssh"].data_dir) / "files" / "data_backup"
            backup.mkdir(parents=True)  # the ssh plugin's transfer area
            (backup / "hsyco.script").write_text("CREATE TABLE t;\n")
            (backup / "other.db").write_bytes(b"x" * 1000)
            await host.wait_online("ssh", timeout=15)
            values = []
            with host.subscribe("ssh.put") as done:
                with anyio.fail_after(30):
                    async for event in done:
                        if event.quality is ioplex.Quality.GOOD and event.value is not None:
                            values.append(event.value)
                            if len(values) == 3:
                                break
            assert "error" not in values, values
            assert (target / "hsyco.script").read_text() == "CREATE TABLE t;\n"
            assert (target / "data_backup" / "other.db").exists() or (target / "other.db").exists()
    finally:
        shutil.rmtree(target, ignore_errors=True)
