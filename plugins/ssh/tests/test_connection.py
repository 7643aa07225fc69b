"""The connection life cycle against the real sshd: loss and return, on-demand, close, overrides."""

from __future__ import annotations

import logging

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio


async def test_sshd_killed_and_restarted(remote, config, start, event, caplog):
    async with start(config()) as host:
        with host.subscribe("ssh.connection", "ssh.exec", "ssh.out") as events:
            await host.write("ssh.exec", "sleep 5")
            await anyio.sleep(0.3)  # let it start
            remote.server.kill()
            try:
                assert (await event(events, "ssh.exec")).value == "error"  # the running one
                assert (await event(events, "ssh.connection")).value == "offline"
                await host.write("ssh.exec", "echo back")  # waits for the connection
                await host.write("ssh.exec.1", "echo too late")  # waits at most 1 s
                assert (await event(events, "ssh.exec", timeout=5)).value == "error"
                assert "'echo too late': not run: no connection" in caplog.text
                down = (ioplex.State.RETRYING, ioplex.State.CONNECTING)
                assert host.ioservers["ssh"].state in down
            finally:
                remote.server.start()
            assert (await event(events, "ssh.connection")).value == "online"
            assert (await event(events, "ssh.out")).value == "back"
            assert (await event(events, "ssh.exec")).value == 0
        assert host.ioservers["ssh"].state is ioplex.State.ONLINE


async def test_close_in_persistent_mode_reconnects(config, start, event, execute):
    async with start(config()) as host:
        with host.subscribe("ssh.connection") as events:
            await host.write("ssh.connection", "close")
            assert (await event(events)).value == "offline"
            assert (await event(events)).value == "online"
        assert (await execute(host, "true"))[0] == 0


async def test_on_demand_connects_per_burst_and_closes_when_idle(
    remote, config, start, event, execute, state
):
    mark = remote.server.log_size()
    options = {"persistentconnection": False, "idle_close": 0.5}
    async with start(config(options), online=False) as host:
        await state(host, ioplex.State.ONLINE)
        assert host.points["ssh.connection"].value == "offline"
        with host.subscribe("ssh.connection") as events:
            assert await execute(host, "echo hi") == (0, "hi", "")
            assert await execute(host, "echo again") == (0, "again", "")  # same connection
            assert (await event(events)).value == "online"
            idle_from = anyio.current_time()
            assert (await event(events)).value == "offline"
            assert 0.4 < anyio.current_time() - idle_from < 3
            assert host.points["ssh.exec"].quality is ioplex.Quality.GOOD
            assert await execute(host, "echo later") == (0, "later", "")
            assert (await event(events)).value == "online"
            await host.write("ssh.connection", "close")
            assert (await event(events, timeout=0.4)).value == "offline"  # now, not when idle
    assert remote.server.log(mark).count("Accepted") == 2


async def test_overrides_of_user_and_password(remote, config, start, execute, state, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Not-The-Password-77"
    options = {"persistentconnection": False, "idle_close": 60}
    async with start(config(options), online=False) as host:
        await state(host, ioplex.State.ONLINE)
        assert await execute(host, "whoami") == (0, remote.user.name, "")

        await host.write("ssh.password", wrong)
        assert await execute(host, "whoami") == (0, remote.user.name, "")  # until closed
        await host.write("ssh.connection", "close")
        assert (await execute(host, "true"))[0] == "error"
        assert "tried keyboard-interactive and password (ssh.password)" in caplog.text
        assert host.ioservers["ssh"].state is ioplex.State.ONLINE  # on demand: not fatal
        await host.write("ssh.password", "")  # the configured one again
        assert await execute(host, "whoami") == (0, remote.user.name, "")
        assert host.points["ssh.password"].value is None

        await host.write("ssh.user", "nosuchuser")
        assert host.points["ssh.user"].value == "nosuchuser"
        await host.write("ssh.connection", "close")
        assert (await execute(host, "whoami"))[0] == "error"
        assert "user 'nosuchuser' (ssh.user)" in caplog.text
        await host.write("ssh.user", "")
        assert host.points["ssh.user"].value == remote.user.name
        assert await execute(host, "whoami") == (0, remote.user.name, "")
    assert wrong not in caplog.text and remote.user.password not in caplog.text


async def test_overrides_need_on_demand_connections(config, start):
    async with start(config()) as host:
        with pytest.raises(ioplex.WriteError, match="persistentconnection = false"):
            await host.write("ssh.user", "someone")
        with pytest.raises(ioplex.WriteError, match="persistentconnection = false"):
            await host.write("ssh.password", "x")
