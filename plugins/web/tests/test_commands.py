"""``ioplex points/get/set/watch/status`` against a running host, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ioplex import State
from ioplex_web.testing import PASSWORDS, USERS


def ioplex(
    running: Any,
    *args: str,
    user: str | None = "alice",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IOPLEX_")}
    environ["IOPLEX_URL"] = running.url
    if user:
        environ.update(IOPLEX_USER=user, IOPLEX_PASSWORD=PASSWORDS[user])
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ioplex", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )


def test_points_get_set(make_host: Any) -> None:
    running = make_host({"users": USERS}, rate=0)
    done = ioplex(running, "points", "dummy.light.*")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["dummy.light.1", "dummy.light.2"]
    assert "writable" in lines[0]
    assert ioplex(running, "get", "dummy.temp.living").stdout.strip() == "21.5"
    done = ioplex(running, "set", "dummy.light.1", "17")
    assert done.returncode == 0, done.stderr
    assert running.host.points["dummy.light.1"].value == 17
    # a str point takes the text as it is, even when it looks like a number
    assert ioplex(running, "set", "dummy.label", "42").returncode == 0
    assert running.host.points["dummy.label"].value == "42"
    assert ioplex(running, "set", "dummy.door.front", "on").returncode == 0
    assert running.host.points["dummy.door.front"].value is True
    assert ioplex(running, "set", "--ui", "dummy.alarm.text", "hello").returncode == 0
    assert running.host.ui["dummy.alarm.text"].value == "hello"
    assert "dummy.alarm.text" in ioplex(running, "points", "--ui").stdout


def test_errors_and_exit_codes(make_host: Any, tmp_path: Path) -> None:
    running = make_host({"users": USERS}, rate=0)
    done = ioplex(running, "get", "dummy.nope")
    assert done.returncode == 1 and done.stderr.startswith("error: 404: unknown point")
    done = ioplex(running, "set", "dummy.light.1", "twelve")
    assert done.returncode == 2 and "dummy.light.1" in done.stderr
    done = ioplex(running, "set", "dummy.light.1", "1", user="bob")
    assert done.returncode == 1 and "role read" in done.stderr
    done = ioplex(running, "points", user=None)
    assert done.returncode == 1 and "IOPLEX_USER" in done.stderr
    done = ioplex(
        running,
        "points",
        user=None,
        env={"IOPLEX_USER": "alice", "IOPLEX_PASSWORD": "wrong-password"},
    )
    assert done.returncode == 1 and "wrong-password" not in done.stderr + done.stdout
    creds = tmp_path / "creds"
    creds.write_text(f"bob:{PASSWORDS['bob']}\n")
    done = ioplex(running, "get", "--credentials", str(creds), "dummy.light.2", user=None)
    assert done.returncode == 0 and done.stdout.strip() == "1"
    done = ioplex(running, "points", env={"IOPLEX_URL": "http://127.0.0.1:1"})
    assert done.returncode == 3 and "cannot reach" in done.stderr


def test_status(make_host: Any) -> None:
    running = make_host({"users": USERS}, rate=0)
    done = ioplex(running, "status")
    assert done.returncode == 0, done.stderr
    assert "dummy" in done.stdout and "online" in done.stdout
    assert done.stdout.splitlines()[-1] == "ready"
    running.call(running.host.ioservers["dummy"].set_state, State.RETRYING, "no route")
    done = ioplex(running, "status")
    assert done.returncode == 1 and "no route" in done.stdout
    assert done.stdout.splitlines()[-1] == "not ready"


def test_watch_prints_and_follows_changes(make_host: Any) -> None:
    running = make_host({"users": USERS}, rate=0)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IOPLEX_")}
    environ.update(
        IOPLEX_URL=running.url,
        IOPLEX_USER="bob",
        IOPLEX_PASSWORD=PASSWORDS["bob"],
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ioplex", "watch", "dummy.light.*"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "dummy.light.1 = 0" in lines[0] and "dummy.light.2 = 1" in lines[1]
        running.call(running.host.ioservers["dummy"].set, "light.2", 99)
        assert "dummy.light.2 = 99" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    time.sleep(0)
