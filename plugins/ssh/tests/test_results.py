"""Result points fire when a command ends and at no other time; run() returns a caller's own
result. Against the real sshd: a close, a restart and a crash of sshd fire no result event."""

from __future__ import annotations

import anyio
import ioplex
import ioplex_ssh
import pytest

pytestmark = pytest.mark.anyio

RESULTS = ("ssh.exec", "ssh.out", "ssh.err", "ssh.get", "ssh.put")


async def _quiet_while(host, action, until_online=True, timeout=15):
    """Run `action` and return the result-point events seen until ssh is back online."""
    seen = []
    with host.subscribe(*RESULTS) as events:
        await action()
        if until_online:
            io = host.ioservers["ssh"]
            with anyio.fail_after(timeout):
                while io.state is ioplex.State.ONLINE:
                    await anyio.sleep(0.01)
                while io.state is not ioplex.State.ONLINE:
                    await anyio.sleep(0.01)
        await anyio.sleep(0.2)
        while True:
            with anyio.move_on_after(0.05) as scope:
                seen.append(await events.__anext__())
            if scope.cancelled_caught:
                break
    return seen


async def test_reconnects_fire_no_result_events(
    remote, config, start, execute, event, files, remote_home
):
    (files / "a.txt").write_text("a")
    async with start(config()) as host:
        assert await execute(host, "echo hi; echo oops >&2") == (0, "hi", "oops")
        with host.subscribe("ssh.put") as puts:
            await host.write("ssh.put", f"a.txt {remote_home}/a.txt")
            assert (await event(puts)).value == 1
        before = {name: host.points[name].value for name in RESULTS}

        async def close():
            await host.write("ssh.connection", "close")

        async def restart():
            remote.server.kill()
            await anyio.sleep(0.3)
            remote.server.start()

        for action in (close, restart):
            assert await _quiet_while(host, action) == [], action.__name__
        for name in RESULTS:
            assert host.points[name].quality is ioplex.Quality.GOOD
            assert host.points[name].value == before[name]
        assert await execute(host, "echo again") == (0, "again", "")


async def test_sshd_killed_while_down_fires_nothing_until_a_command_ends(
    remote, config, start, execute
):
    async with start(config()) as host:
        assert (await execute(host, "true"))[0] == 0
        with host.subscribe(*RESULTS) as events:
            remote.server.kill()
            try:
                await anyio.sleep(1)
                with anyio.move_on_after(0.2) as scope:
                    got = await events.__anext__()
                    raise AssertionError(f"an event with no command: {got}")
                assert scope.cancelled_caught
            finally:
                remote.server.start()


async def test_run_returns_each_callers_own_result(config, start):
    async with start(config()) as host:
        with host.subscribe(*RESULTS) as events:
            results: dict[int, ioplex_ssh.CommandResult] = {}

            async def one(i: int) -> None:
                results[i] = await ioplex_ssh.run(
                    host, "ssh", f"echo out{i}; echo err{i} >&2; exit {i}", timeout=10
                )

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
            for i, result in results.items():
                assert (result.status, result.out, result.err) == (i, f"out{i}\n", f"err{i}\n")
                assert result.error is None and 0 < result.duration < 10
            with anyio.move_on_after(0.2) as scope:  # run() leaves the points alone
                raise AssertionError(f"unexpected event {await events.__anext__()}")
            assert scope.cancelled_caught
        slow = await ioplex_ssh.run(host, "ssh", "sleep 5", timeout=0.5)
        assert slow.status is None and "timed out after 0.5 s" in slow.error
        with pytest.raises(ioplex.WriteError, match="not an ssh I/O server"):
            await ioplex_ssh.run(host, "nosuch", "true")
        with pytest.raises(ioplex.WriteError, match="timeout"):
            await ioplex_ssh.run(host, "ssh", "true", timeout=0)
