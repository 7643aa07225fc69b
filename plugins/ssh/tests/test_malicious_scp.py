"""A malicious SCP source (an in-process asyncssh server) aims names of its own choosing at the
host's state during ``get x .``: every attempt is refused and nothing outside the transfer area
changes."""

from __future__ import annotations

import shlex

import asyncssh
import pytest

pytestmark = pytest.mark.anyio

SCENARIOS: dict[str, list[bytes]] = {
    # name of the remote "file" -> the SCP records the server sends
    "dotdot": [b"C0644 4 ../loggers.db\n"],
    "absolute": [b"C0644 4 /etc/evil\n"],
    "via-link": [b"C0644 4 kh\n"],  # kh: a link in the area to ssh/known_hosts
    "into-link-dir": [b"D0755 0 out\n", b"C0644 4 x\n", b"E\n"],  # out: link to outside
    "dir-dotdot": [b"D0755 0 ..\n", b"C0644 4 loggers.db\n", b"E\n"],
    "fine": [b"C0644 4 loggers.db\n"],  # a name of its own, but inside the area: allowed
}


class _NoAuth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False


async def _scp_source(process: asyncssh.SSHServerProcess) -> None:
    """Play an SCP source that sends whatever the scenario says, ignoring the request."""
    words = shlex.split(process.command or "")
    if words[:1] != ["scp"]:  # `command -v scp` and the like: yes, there is an scp
        process.exit(0)
        return
    scenario = SCENARIOS.get(words[-1], [])
    try:
        if await process.stdin.readexactly(1) != b"\0":
            process.exit(1)
            return
        for record in scenario:
            process.stdout.write(record)
            if await process.stdin.readexactly(1) != b"\0":
                process.exit(1)
                return
            if record.startswith(b"C"):
                process.stdout.write(b"EVIL\0")
                if await process.stdin.readexactly(1) != b"\0":
                    process.exit(1)
                    return
        process.exit(0)
    except (asyncssh.Error, OSError, EOFError, ConnectionError):
        process.exit(1)
    except Exception:  # noqa: BLE001 (the stream ended: asyncio.IncompleteReadError)
        process.exit(1)


@pytest.fixture
async def evil_server(data_dir):
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _NoAuth,
        "127.0.0.1",
        0,
        server_host_keys=[key],
        process_factory=_scp_source,
        encoding=None,
    )
    port = server.sockets[0].getsockname()[1]
    known = data_dir / "ssh" / "known_hosts"
    known.parent.mkdir()
    public = key.export_public_key().decode().split()
    known.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    yield port
    server.close()
    await server.wait_closed()


def _snapshot(root):
    return {
        p: (p.read_bytes() if p.is_file() and not p.is_symlink() else None) for p in root.rglob("*")
    }


async def test_a_malicious_scp_source_cannot_reach_host_state(
    evil_server, data_dir, files, tmp_path, start, event, caplog
):
    (data_dir / "loggers.db").write_bytes(b"SQLite format 3\0")
    outside = tmp_path / "outside"
    outside.mkdir()
    (files / "kh").symlink_to(data_dir / "ssh" / "known_hosts")
    (files / "out").symlink_to(outside)
    config = {
        "host": {"data_dir": str(data_dir), "restart_delay": 0.1},
        "ioservers": {
            "ssh": {"plugin": "ssh", "address": "127.0.0.1", "port": evil_server, "user": "anyone"}
        },
    }
    before = _snapshot(tmp_path)
    async with start(config) as host:
        with host.subscribe("ssh.get") as events:
            for scenario in ("dotdot", "absolute", "via-link", "into-link-dir", "dir-dotdot"):
                await host.write("ssh.get", f"{scenario} .")
                assert (await event(events)).value == "error", scenario
            await host.write("ssh.get", "fine .")
            assert (await event(events)).value == 4
    after = _snapshot(tmp_path)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed == {files / "loggers.db"}  # the one name inside the area
    assert (files / "loggers.db").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "loggers.db").read_bytes() == b"SQLite format 3\0"
    assert list(outside.iterdir()) == []
