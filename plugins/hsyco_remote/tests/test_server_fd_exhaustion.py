"""Out of file descriptors: ``ioplex run`` with RLIMIT_NOFILE 256 (soft and hard, so the host
cannot raise it) and 400 idle TCP connections to its HTTPS port from 200 loopback addresses.
The log stays short, nothing restarts, and HTTPS answers again within 2 s once they close."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio

LIMIT = 256
IDLE = 400
HOLD = 6.0
"""Seconds the idle connections are held (the TLS-handshake deadline is 10 s)."""
PASSWORD = "fd-test-password"


def leaf_toml(data_dir: Path) -> str:
    return f"""
[host]
name = "fd-leaf"
data_dir = {json.dumps(str(data_dir))}

[ioservers.dummy]
plugin = "dummy"

[ioservers.dummy.options]
points = {{ "light.1" = 1 }}

[plugins.hsyco_remote.server]
listen = "127.0.0.1:0"
password = "{PASSWORD}"
address = "127.0.0.0/8"
"""


LIMITED_RUN = (
    "import os, resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LIMIT}, {LIMIT}))\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'ioplex', 'run', sys.argv[1]])\n"
)
"""Sets the limit, soft and hard, then becomes ``ioplex run``: the limit holds from the start."""


def _environ() -> dict[str, str]:
    # This plugin alone: other installed plugins' servers must not share the fd budget.
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOPLEX_")}
    return {**env, "IOPLEX_LOAD_PLUGINS": "hsyco_remote"}


def _open_idle(port: int) -> list[socket.socket]:
    """`IDLE` connections that never speak, two per source address 127.0.1.1..200, opened
    without waiting (the ones past the backlog stay half-open in the kernel)."""
    socks = []
    for i in range(IDLE):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((f"127.0.1.{i // 2 + 1}", 0))
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    return socks


async def _answers(info: dict, context: ssl.SSLContext) -> bool:
    try:
        async with httpx.AsyncClient(verify=context, timeout=1.0) as client:
            response = await client.get(f"{info['url']}/x/rioget?1*1*{PASSWORD}")
            return response.status_code == 200
    except httpx.HTTPError:
        return False


async def test_fd_exhaustion_is_waited_out_quietly(tmp_path):
    config = tmp_path / "leaf.toml"
    data_dir = tmp_path / "data"
    config.write_text(leaf_toml(data_dir))
    log_file = tmp_path / "leaf.log"
    info_file = data_dir / "hsyco_remote" / "server.json"
    with log_file.open("wb") as log_out:
        process = await anyio.open_process(
            [sys.executable, "-c", LIMITED_RUN, str(config)],
            env=_environ(),
            stdout=log_out,
            stderr=subprocess.STDOUT,
        )
    socks: list[socket.socket] = []
    try:
        with anyio.fail_after(30):
            while not info_file.exists():
                assert process.returncode is None, log_file.read_text()
                await anyio.sleep(0.05)
        await anyio.sleep(0.2)
        info = json.loads(info_file.read_text())
        context = ssl.create_default_context(cafile=info["certificate"])
        assert await _answers(info, context)
        lines_before = len(log_file.read_text().splitlines())

        socks = _open_idle(info["port"])
        await anyio.sleep(HOLD)
        assert process.returncode is None
        for sock in socks:
            sock.close()
        socks = []
        closed = time.monotonic()
        while not await _answers(info, context):
            assert time.monotonic() - closed < 2.0, "HTTPS did not answer within 2 s"
            await anyio.sleep(0.05)
        recovered = time.monotonic() - closed
        await anyio.sleep(0.5)
        text = log_file.read_text()
        lines = text.splitlines()[lines_before:]
        assert len(lines) < 100, f"{len(lines)} log lines:\n" + "\n".join(lines[:20])
        assert "Traceback" not in text
        assert (
            text.count("hsyco_remote server of host fd-leaf listening on") == 1
        )  # the server never restarted
        assert "cannot accept a connection" in text  # it did run out, and said so once
        assert process.returncode is None
        print(f"recovered in {recovered:.2f} s; {len(lines)} log lines")
    finally:
        for sock in socks:
            sock.close()
        process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(15) as waiting:
            await process.wait()
        if waiting.cancelled_caught:
            process.kill()
            await process.wait()
