"""Fixtures of the vscp_link tests: isolated hosts, a raw line client, an event recorder.

Everything runs on real loopback sockets (127.0.0.1) with real servers; ports are picked by
the kernel (port 0) and read back.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import anyio
import ioplex
import ioplex_vscp_link as vscp
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

NODE_DIR = Path(__file__).parent / "node"


def _load_sibling(name: str) -> Any:
    """A helper module next to this file (the tests run with --import-mode=importlib, so
    they cannot import their neighbours by name)."""
    key = f"ioplex_vscp_link_tests_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).parent / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


strict_peer = _load_sibling("strict_peer")
USERS = [
    {"name": "admin", "password": "secret", "set_guid": True},
    {"name": "reader", "password": "r3ad", "send": False},
    {"name": "writer", "password": "wr1te", "receive": False, "set_filter": False},
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A plugin that records every event on a host's bus, to see what reached it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed: anyio.Event | None = None

    @ioplex.hookimpl
    def on_event(self, host: Any, source: str, event: Any) -> None:
        self.events.append((source, event))
        if self._changed is not None:
            self._changed.set()

    def vscp(self) -> list[vscp.Event]:
        return [e for _, e in self.events if isinstance(e, vscp.Event)]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[vscp.Event]:
        """Wait until at least `count` VSCP events were seen; return them."""
        with anyio.fail_after(timeout):
            while len(self.vscp()) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.vscp()


def make_host(tmp_path: Path, config: dict[str, Any], *extra: tuple[str, Any]) -> ioplex.Host:
    """A host with only this plugin (and `extra` (name, plugin) pairs) loaded: the other
    plugins of the repository are not this suite's business."""
    plugins = ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "vscp_link"})
    for name, plugin in extra:
        plugins.register(plugin, name)
    config = {**config}
    config.setdefault("host", {})
    config["host"] = {
        "data_dir": str(tmp_path / "data"),
        "restart_delay": 0.05,
        "restart_max_delay": 0.2,
        **config["host"],
    }
    return ioplex.Host.from_config(config, plugins=plugins)


def server_config(**server: Any) -> dict[str, Any]:
    settings = {"enabled": True, "listen": "127.0.0.1:0", "users": USERS, "keepalive": 0.5}
    settings.update(server)
    return {"plugins": {"vscp_link": {"server": settings}}}


@asynccontextmanager
async def running_server(
    tmp_path: Path, *extra: tuple[str, Any], **server: Any
) -> AsyncIterator[tuple[ioplex.Host, vscp.Server]]:
    host = make_host(tmp_path, server_config(**server), *extra)
    async with host:
        yield host, await vscp.wait_server(host)


class Running:
    """A host running in a task of its own, so that it can stop while others go on."""

    def __init__(self, host: ioplex.Host) -> None:
        self.host = host
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def _run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with self.host:
                task_status.started()
                await self._stop.wait()
        finally:
            self._stopped.set()

    @classmethod
    async def start(cls, tg: Any, host: ioplex.Host) -> Running:
        running = cls(host)
        await tg.start(running._run)
        return running

    async def stop(self) -> None:
        self._stop.set()
        with anyio.fail_after(10):
            await self._stopped.wait()


class Wire:
    """A raw client: bytes out, lines in, for exact transcripts."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)

    @classmethod
    async def open(cls, address: tuple[str, int], *, banner: bool = True) -> Wire:
        wire = cls(await anyio.connect_tcp(*address))
        if banner:
            await wire.until(b"+OK - Success.\r\n")
        return wire

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1") + b"\r\n"
        await self.stream.send(data)

    async def line(self, timeout: float = 5.0) -> bytes:
        """One line, with its CRLF."""
        with anyio.fail_after(timeout):
            return await self.reader.receive_until(b"\n", 100_000) + b"\n"

    async def until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        with anyio.fail_after(timeout):
            return await self.reader.receive_until(marker, 10_000_000) + marker

    async def reply(self, command: str, timeout: float = 5.0) -> bytes:
        """Send a command; return every line up to and including the status line."""
        await self.send(command)
        out = b""
        while True:
            line = await self.line(timeout)
            out += line
            if line[:3] in (b"+OK", b"-OK"):
                return out

    async def login(self, user: str = "admin", password: str = "secret") -> None:
        assert await self.reply(f"USER {user}") == b"+OK - User name accepted, password please\r\n"
        assert await self.reply(f"PASS {password}") == b"+OK - Success.\r\n"

    async def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closed the connection (after anything still unread)."""
        with anyio.fail_after(timeout):
            try:
                while await self.stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return True
        return False

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@pytest.fixture
def tools() -> Any:
    """The helpers above, for the test modules (which cannot import this file)."""

    class Tools:
        Recorder = Recorder
        Wire = Wire
        Running = Running
        make_host = staticmethod(make_host)
        server_config = staticmethod(server_config)
        running_server = staticmethod(running_server)
        USERS = USERS
        StrictPeer = strict_peer.StrictPeer
        start_peer = staticmethod(strict_peer.start)

    return Tools


@pytest.fixture(scope="session")
def node_vscp_tcp() -> Path:
    """The npm package node-vscp-tcp, installed from tests/node's lock file when missing.

    Idempotent; fails (never skips) when node or the package cannot be had: the interop
    test is part of the suite.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the node-vscp-tcp interop test (Node 20+)")
    marker = NODE_DIR / "node_modules" / "node-vscp-tcp" / "package.json"
    if not marker.exists():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0 or not marker.exists():
            pytest.fail(
                f"npm ci in {NODE_DIR} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
    return NODE_DIR
