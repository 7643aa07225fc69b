"""Connection health against the real sshd: frozen peers, locked accounts, outages with
commands waiting, backoff after a login, and the remote command of a stopping host."""

from __future__ import annotations

from pathlib import Path

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio


def slow_backoff(settings: dict, initial: float, maximum: float) -> dict:
    settings["host"].update(restart_delay=initial, restart_max_delay=maximum)
    return settings


async def wait_state(host, *states, timeout=10.0) -> float:
    """Wait until ssh is in one of `states`; return when (anyio time)."""
    io = host.ioservers["ssh"]
    with anyio.fail_after(timeout):
        while io.state not in states:
            await anyio.sleep(0.01)
    return anyio.current_time()


async def test_frozen_peer_on_demand_is_dropped_and_the_next_command_reconnects(
    remote, config, start, execute, state
):
    mark = remote.server.log_size()
    options = {"persistentconnection": False, "idle_close": 60, "keepalive": 1}
    async with start(config(options), online=False) as host:
        await state(host, ioplex.State.ONLINE)
        assert (await execute(host, "true"))[0] == 0
        assert host.points["ssh.connection"].value == "online"
        remote.server.freeze()
        try:
            assert (await execute(host, "true", point="ssh.exec.1"))[0] == "error"
            with anyio.fail_after(5):
                while host.points["ssh.connection"].value != "offline":
                    await anyio.sleep(0.05)
        finally:
            remote.server.thaw()
        assert await execute(host, "echo back") == (0, "back", "")
    assert remote.server.log(mark).count("Accepted") == 2  # a new connection after the freeze


async def test_account_locked_during_a_reconnect_is_recovered_within_the_retry_period(
    remote, config, start, execute
):
    async with start(config({"auth_retry": 2}, port=remote.server.password_port)) as host:
        remote.user.lock()
        try:
            await host.write("ssh.connection", "close")
            await wait_state(host, ioplex.State.RETRYING)
            with anyio.fail_after(10):
                while "authentication" not in (host.ioservers["ssh"].detail or ""):
                    await anyio.sleep(0.05)
            assert "ioservers.ssh.options.auth_retry" in host.ioservers["ssh"].detail
            await anyio.sleep(3)
        finally:
            remote.user.unlock()
        unlocked = anyio.current_time()
        # within one retry period (2 s) plus a refused attempt's PAM delay (~2 s)
        back = await wait_state(host, ioplex.State.ONLINE, timeout=8)
        assert back - unlocked < 6
        assert (await execute(host, "true"))[0] == 0


async def test_a_command_queued_while_sshd_is_down_fails_at_its_own_deadline(
    remote, config, start, caplog
):
    async with start(slow_backoff(config(), 8, 16)) as host:
        remote.server.kill()
        try:
            await wait_state(host, ioplex.State.RETRYING, ioplex.State.CONNECTING)
            with host.subscribe("ssh.exec") as events:
                written = anyio.current_time()
                await host.write("ssh.exec.2", "echo late")
                with anyio.fail_after(5):
                    event = await events.__anext__()
                assert event.value == "error"
                assert anyio.current_time() - written < 2.5
            assert "'echo late': not run: no connection" in caplog.text
            assert "within 2 s (its timeout)" in caplog.text
        finally:
            remote.server.start()


async def test_on_demand_commands_written_during_a_backoff_run_when_sshd_returns(
    remote, config, start, execute, state
):
    options = {"persistentconnection": False, "idle_close": 60}
    async with start(slow_backoff(config(options), 1, 2), online=False) as host:
        await state(host, ioplex.State.ONLINE)
        remote.server.kill()
        try:
            assert (await execute(host, "true", point="ssh.exec.0.5"))[0] == "error"  # a backoff
            async with anyio.create_task_group() as tg:
                results = []

                async def command():
                    results.append(await execute(host, "echo made it", point="ssh.exec.8"))

                tg.start_soon(command)
                await anyio.sleep(1.5)
                remote.server.start()
        finally:
            remote.server.start()
        assert results == [(0, "made it", "")]


async def test_backoff_starts_again_after_a_successful_login(remote, config, start, execute):
    async with start(slow_backoff(config(), 1, 8)) as host:
        remote.server.kill()
        await anyio.sleep(6)  # several failed attempts: the backoff has grown to several s
        remote.server.start()
        await wait_state(host, ioplex.State.ONLINE, timeout=12)
        await anyio.sleep(0.5)
        remote.server.kill()  # a crash right after the login
        await wait_state(host, ioplex.State.RETRYING, ioplex.State.CONNECTING)
        await anyio.sleep(0.5)
        remote.server.start()
        restarted = anyio.current_time()
        back = await wait_state(host, ioplex.State.ONLINE, timeout=12)
        assert back - restarted < 2.5  # backoff from its start (≤ 1 s), not the grown one
        assert (await execute(host, "true"))[0] == 0


def _running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


async def test_stopping_the_host_stops_the_running_remote_command(config, start):
    marker = "sleep 4321"
    async with start(config()) as host:
        await host.write("ssh.exec", marker)
        with anyio.fail_after(5):
            while not _running(marker):
                await anyio.sleep(0.05)
    with anyio.fail_after(5):
        while _running(marker):
            await anyio.sleep(0.05)
