"""A real `ioplex run` killed with SIGKILL and started again: `ioplex watch` says it lost the
connection, reconnects by itself and carries on with a fresh snapshot and new changes."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ioplex_web.testing import PASSWORDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readline(proc: subprocess.Popen[str], timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""  # type: ignore[union-attr]


def wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = readline(proc, deadline - time.monotonic())
        if text in line:
            return line
    raise AssertionError(f"{text!r} not printed within {timeout} s")


def test_watch_survives_a_killed_and_restarted_host(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "site.toml"
    config.write_text(f"""
[host]
name = "restart"
data_dir = "data"

[ioservers.dummy]
plugin = "dummy"
[ioservers.dummy.options]
points = {{ "light.1" = 0 }}

[plugins.web]
enabled = true
listen = "127.0.0.1:{port}"
[[plugins.web.users]]
name = "alice"
password = {{ env = "ALICE_PASSWORD" }}
role = "write"
""")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IOPLEX_")}
    environ.update(
        ALICE_PASSWORD=PASSWORDS["alice"],
        IOPLEX_URL=f"http://127.0.0.1:{port}",
        IOPLEX_USER="alice",
        IOPLEX_PASSWORD=PASSWORDS["alice"],
        PYTHONUNBUFFERED="1",
        IOPLEX_LOAD_PLUGINS="web",
    )
    run = [sys.executable, "-m", "ioplex", "run", str(config)]
    started: list[subprocess.Popen[str]] = []

    def start(command: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ
        )
        started.append(proc)
        return proc

    def ioplex_set(value: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(
                [sys.executable, "-m", "ioplex", "set", "dummy.light.1", value],
                env=environ,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if done.returncode == 0 or time.monotonic() > deadline:
                assert done.returncode == 0, done.stderr
                return
            time.sleep(0.5)

    try:
        host = start(run)
        wait_for(host, "listening on")
        watch = start([sys.executable, "-m", "ioplex", "watch", "dummy.light.*"])
        wait_for(watch, "dummy.light.1 = 0")
        ioplex_set("5")
        wait_for(watch, "dummy.light.1 = 5")
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        wait_for(watch, "connection to")  # the watcher says so and keeps trying
        host = start(run)
        wait_for(host, "listening on")
        wait_for(watch, "dummy.light.1 = 0")  # a fresh snapshot from the new run
        ioplex_set("7")
        wait_for(watch, "dummy.light.1 = 7")
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
