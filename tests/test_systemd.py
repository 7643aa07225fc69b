"""`ioplex run` under systemd: READY=1 once started, the watchdog fed, STOPPING=1 at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def test_run_notifies_systemd_and_feeds_the_watchdog(tmp_path: Path) -> None:
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(20)
        config = tmp_path / "site.toml"
        config.write_text('[host]\ndata_dir = "data"\n[ioservers.d]\nplugin = "dummy"\n')
        proc = subprocess.Popen(
            [sys.executable, "-m", "ioplex", "run", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "IOPLEX_LOAD_PLUGINS": "",
                "NOTIFY_SOCKET": str(address),
                "WATCHDOG_USEC": "200000",
            },
        )
        try:
            messages = []
            deadline = time.monotonic() + 20
            while sum(m == "WATCHDOG=1" for m in messages) < 3 and time.monotonic() < deadline:
                messages.append(sock.recv(4096).decode())
            assert messages[0].startswith("READY=1\nSTATUS=host ioplex running")
            assert f"MAINPID={proc.pid}" in messages[0]
            assert messages.count("WATCHDOG=1") >= 3
            proc.send_signal(signal.SIGHUP)
            assert sock.recv(4096).decode() in ("RELOADING=1", "WATCHDOG=1")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
        rest = []
        sock.settimeout(1)
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        assert "STOPPING=1" in rest and proc.returncode == 0
