"""Host key verification against the real sshd: unknown and changed keys are refused."""

from __future__ import annotations

import asyncssh
import ioplex
import pytest

pytestmark = pytest.mark.anyio


def fingerprint(remote) -> str:
    return remote.server.host_key.get_fingerprint("sha256")


async def test_unknown_key_is_refused_with_the_way_to_accept_it(
    remote, config, start, state, trusted
):
    trusted.unlink()
    mark = remote.server.log_size()
    async with start(config(), online=False) as host:
        detail = await state(host, ioplex.State.FAILED)
    assert "is not trusted" in detail
    assert fingerprint(remote) in detail
    line = remote.server.known_hosts().splitlines()[0]
    assert f"`{line}`" in detail  # the exact line to add
    assert "ioservers.ssh.options.trust_on_first_use = true" in detail
    assert not trusted.exists()
    assert "Accepted" not in remote.server.log(mark)


async def test_trust_on_first_use_pins_the_key(remote, config, start, execute, trusted):
    trusted.unlink()
    async with start(config({"trust_on_first_use": True})) as host:
        assert (await execute(host, "true"))[0] == 0
    pinned = trusted.read_text()
    assert pinned == remote.server.known_hosts().splitlines()[0] + "\n"
    assert trusted.stat().st_mode & 0o777 == 0o600
    # and the pinned key is what later connections check, without trust_on_first_use
    async with start(config()) as host:
        assert (await execute(host, "true"))[0] == 0
    assert trusted.read_text() == pinned


async def test_changed_key_is_refused_even_with_trust_on_first_use(
    remote, config, start, state, trusted
):
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    old = f"[127.0.0.1]:{remote.server.port} {impostor[0]} {impostor[1]}\n"
    trusted.write_text(old)
    mark = remote.server.log_size()
    async with start(config({"trust_on_first_use": True}), online=False) as host:
        detail = await state(host, ioplex.State.FAILED)
    assert "HAS CHANGED" in detail
    assert fingerprint(remote) in detail
    pinned_fp = asyncssh.import_public_key(" ".join(impostor)).get_fingerprint("sha256")
    assert pinned_fp in detail
    assert f"ssh-keygen -R '[127.0.0.1]:{remote.server.port}'" in detail
    assert trusted.read_text() == old
    assert "Accepted" not in remote.server.log(mark)


async def test_known_hosts_option_names_another_file(
    remote, config, start, execute, trusted, data_dir
):
    (data_dir / "pins").mkdir()
    trusted.rename(data_dir / "pins" / "site_hosts")
    async with start(config({"known_hosts": "pins/site_hosts"})) as host:
        assert (await execute(host, "true"))[0] == 0


async def test_a_garbled_known_hosts_file_is_a_clear_fatal_error(
    remote, config, start, state, trusted
):
    trusted.write_text("just-a-host-name\n")
    async with start(config(), online=False) as host:
        detail = await state(host, ioplex.State.FAILED)
    assert str(trusted) in detail and "ioservers.ssh.options.known_hosts" in detail
