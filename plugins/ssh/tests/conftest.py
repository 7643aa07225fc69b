"""Fixtures of the ssh plugin's tests: one private, real OpenSSH server for the session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import ioplex
import pytest
from ioplex_ssh.testing import PrivateSSHD, SSHUser, private_sshd

KEY_PASSPHRASE = "key-passphrase-42"
ONLY_THIS_PLUGIN = {**os.environ, "IOPLEX_LOAD_PLUGINS": "ssh"}
"""Hosts in these tests load no other installed plugin: their state must not matter here."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Remote:
    """The session's sshd, its one user, and key files in every format the plugin reads."""

    server: PrivateSSHD
    user: SSHUser
    pem_key: Path
    """An RSA key in traditional PEM (PKCS#1), no passphrase."""
    encrypted_key: Path
    """An ECDSA key in OpenSSH format, encrypted with `passphrase`."""
    passphrase: str = KEY_PASSPHRASE


@pytest.fixture(scope="session")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    workdir = tmp_path_factory.mktemp("sshd")
    with private_sshd(workdir) as (server, user):
        rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
        ecdsa = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
        pem, encrypted = workdir / "rsa.pem", workdir / "ecdsa_encrypted"
        rsa.write_private_key(str(pem), "pkcs1-pem")
        ecdsa.write_private_key(str(encrypted), "openssh", passphrase=KEY_PASSPHRASE)
        user.authorize(rsa.export_public_key().decode(), ecdsa.export_public_key().decode())
        yield Remote(server, user, pem, encrypted)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def remote_home(remote: Remote) -> Path:
    """A fresh directory in the test user's home, as the remote side sees it."""
    import secrets

    path = remote.user.home / f"t{secrets.token_hex(4)}"
    path.mkdir()
    os.chown(path, remote.user.uid, -1)
    return path


@pytest.fixture
def files(data_dir: Path) -> Path:
    """The transfer area of a host using `data_dir` (``options.files_dir``, default)."""
    path = data_dir / "files"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def trusted(remote: Remote, data_dir: Path) -> Path:
    """The default known_hosts file of a host using `data_dir`, trusting the sshd."""
    path = data_dir / "ssh" / "known_hosts"
    path.parent.mkdir()
    path.write_text(remote.server.known_hosts())
    return path


@pytest.fixture
def config(remote: Remote, data_dir: Path, trusted: Path) -> Callable[..., dict[str, Any]]:
    """A host configuration with one ssh I/O server named ``ssh``, logging in by password."""

    def make(options: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
        table = {
            "plugin": "ssh",
            "address": "127.0.0.1",
            "port": remote.server.port,
            "user": remote.user.name,
            "password": remote.user.password,
            **settings,
            "options": options or {},
        }
        return {
            "host": {"data_dir": str(data_dir), "restart_delay": 0.1, "restart_max_delay": 0.5},
            "ioservers": {"ssh": table},
        }

    return make


@asynccontextmanager
async def _running(config: dict[str, Any], online: bool = True) -> AsyncIterator[ioplex.Host]:
    host = ioplex.Host.from_config(config, environ=ONLY_THIS_PLUGIN)
    async with host:
        if online:
            await host.wait_online("ssh", timeout=10)
        yield host


async def _event(
    events: ioplex.Subscription, name: str | None = None, timeout: float = 10
) -> ioplex.PointEvent:
    with anyio.fail_after(timeout):
        async for event in events:
            # events of points going bad while offline (quality only) are not results
            if (name is None or event.name == name) and event.quality is ioplex.Quality.GOOD:
                return event
    raise AssertionError(f"the subscription ended before an event of {name}")


async def _state(host: ioplex.Host, state: ioplex.State, timeout: float = 10) -> str | None:
    io = host.ioservers["ssh"]
    with anyio.fail_after(timeout):
        while io.state is not state:
            await anyio.sleep(0.01)
    return io.detail


async def _execute(
    host: ioplex.Host, command: str, point: str = "ssh.exec", timeout: float = 10
) -> tuple[Any, Any, Any]:
    with host.subscribe("ssh.exec", "ssh.out", "ssh.err") as events:
        await host.write(point, command)
        seen: dict[str, Any] = {}
        while "ssh.exec" not in seen:
            event = await _event(events, timeout=timeout)
            seen[event.name] = event.value
    return seen["ssh.exec"], seen.get("ssh.out"), seen.get("ssh.err")


@pytest.fixture
def start() -> Callable[..., Any]:
    """``async with start(config) as host:`` a running host; by default once ssh is online."""
    return _running


@pytest.fixture
def event() -> Callable[..., Any]:
    """``await event(subscription, "ssh.get")``: the point's next good-quality event (10 s max)."""
    return _event


@pytest.fixture
def state() -> Callable[..., Any]:
    """``await state(host, State.FAILED)``: wait for ssh to reach a state; returns its detail."""
    return _state


@pytest.fixture
def execute() -> Callable[..., Any]:
    """``await execute(host, "cmd")``: write a command, return (exec, out, err) from its events."""
    return _execute
