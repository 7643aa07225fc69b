"""Commands through ssh.exec against the real sshd: status, output, modes, timeouts, order."""

from __future__ import annotations

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio


async def test_exit_status_stdout_and_stderr(config, start, execute):
    async with start(config()) as host:
        status, out, err = await execute(host, "echo one; echo two; echo oops >&2; exit 3")
        assert (status, out, err) == (3, "one<br>two", "oops")
        status, out, err = await execute(host, "true")
        assert (status, out, err) == (0, "", "")


async def test_events_fire_even_when_nothing_changed(config, start, execute):
    async with start(config()) as host:
        first = await execute(host, "echo same")
        second = await execute(host, "echo same")
        assert first == second == (0, "same", "")


async def test_line_mode_gives_an_event_per_line(config, start, event):
    async with start(config({"stdout": "line"})) as host:
        with host.subscribe("ssh.*") as events:
            await host.write("ssh.exec", "printf 'a\\nb\\n'; echo e1 >&2; printf c")
            seen = []
            while True:
                e = await event(events)
                if e.name == "ssh.exec":
                    break
                seen.append((e.name, e.value))
        assert [v for n, v in seen if n == "ssh.out"] == ["a", "b", "c"]
        assert [v for n, v in seen if n == "ssh.err"] == ["e1"]
        assert e.value == 0


async def test_stdout_false_fires_no_out_or_err(config, start, event):
    async with start(config({"stdout": False})) as host:
        with host.subscribe("ssh.*") as events:
            await host.write("ssh.exec", "echo hidden; echo hidden >&2; exit 5")
            e = await event(events, "ssh.exec")
            assert e.value == 5
            assert [x.name for x in events.drain()] == []
        assert host.points["ssh.out"].value is None


async def test_timeout_gives_error_and_the_next_queued_command_runs(config, start, event):
    async with start(config()) as host:
        with host.subscribe("ssh.exec", "ssh.out") as events:
            started = anyio.current_time()
            await host.write("ssh.exec.1", "sleep 60")
            await host.write("ssh.exec", "echo after")
            first = await event(events, "ssh.exec")
            elapsed = anyio.current_time() - started
            assert first.value == "error"
            assert 0.9 <= elapsed < 5
            out = await event(events, "ssh.out")
            second = await event(events, "ssh.exec")
            assert (out.value, second.value) == ("after", 0)


async def test_commands_run_in_order_one_at_a_time(config, start, event):
    async with start(config()) as host:
        marker = "order-marker"  # in the test user's home: no other session shares it
        with host.subscribe("ssh.exec") as events:
            for i in range(5):
                # each command would see another one's file if two ran at once
                await host.write(
                    "ssh.exec",
                    f"test -e {marker} && exit 99; touch {marker}; sleep 0.05; "
                    f"echo {i} >> {marker}.log; rm {marker}; exit {i}",
                )
            statuses = [(await event(events, "ssh.exec")).value for _ in range(5)]
        assert statuses == [0, 1, 2, 3, 4]
        status_log = await _read_remote(host, f"{marker}.log")
        assert status_log == "0<br>1<br>2<br>3<br>4"


async def _read_remote(host, path):
    with host.subscribe("ssh.out") as events:
        await host.write("ssh.exec", f"cat {path}; rm -f {path}")
        with anyio.fail_after(10):
            async for e in events:
                return e.value


async def test_a_full_queue_fails_the_write_clearly(config, start, event):
    async with start(config({"queue": 2})) as host:
        with host.subscribe("ssh.exec") as events:
            await host.write("ssh.exec", "sleep 0.5; exit 7")
            await anyio.sleep(0.2)  # running: the next two wait, the third has no room
            await host.write("ssh.exec", "exit 8")
            await host.write("ssh.exec", "exit 9")
            with pytest.raises(
                ioplex.WriteError,
                match=r"2 commands are already waiting "
                r"\(ioservers.ssh.options.queue = 2\); 'exit 10' is not run",
            ):
                await host.write("ssh.exec", "exit 10")
            assert [(await event(events, "ssh.exec")).value for _ in range(3)] == [7, 8, 9]


async def test_output_beyond_max_output_is_dropped_with_a_warning(config, start, execute, caplog):
    async with start(config({"max_output": 1024})) as host:
        command = "head -c 5000 /dev/zero | tr '\\0' x; echo; echo e >&2"
        status, out, err = await execute(host, command)
        assert (status, len(out), err) == (0, 1024, "e")
        assert "stdout cut at 1024 bytes (3977 dropped)" in caplog.text


async def test_killed_by_a_signal_reads_128_plus_the_signal(config, start, execute):
    async with start(config()) as host:
        assert (await execute(host, "kill -TERM $$"))[0] == 128 + 15
