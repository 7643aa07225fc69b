"""What OpenSSH never does, from an in-process asyncssh server: a command without exit status."""

from __future__ import annotations

import asyncssh
import pytest

pytestmark = pytest.mark.anyio


class _NoAuth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False


async def _handle(process: asyncssh.SSHServerProcess) -> None:
    if process.command == "no-status":
        process.stdout.write(b"partial\n")
        process.close()  # closes the channel without an exit-status message
    else:
        process.exit(4)


@pytest.fixture
async def fake_server(data_dir):
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _NoAuth, "127.0.0.1", 0, server_host_keys=[key], process_factory=_handle, encoding=None
    )
    port = server.sockets[0].getsockname()[1]
    known = data_dir / "ssh" / "known_hosts"
    known.parent.mkdir()
    public = key.export_public_key().decode().split()
    known.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    yield port
    server.close()
    await server.wait_closed()


async def test_no_exit_status_reads_null(fake_server, data_dir, start, execute):
    config = {
        "host": {"data_dir": str(data_dir), "restart_delay": 0.1},
        "ioservers": {
            "ssh": {"plugin": "ssh", "address": "127.0.0.1", "port": fake_server, "user": "anyone"}
        },
    }
    async with start(config) as host:
        assert await execute(host, "no-status") == ("null", "partial", "")
        assert await execute(host, "anything") == (4, "", "")
