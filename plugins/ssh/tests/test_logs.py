"""Quiet, useful logs and exact host-key matching, against the real sshd."""

from __future__ import annotations

import logging

import asyncssh
import ioplex
import pytest

pytestmark = pytest.mark.anyio


async def test_info_logs_hold_no_asyncssh_chatter_and_commands_are_cut(
    config, start, execute, caplog, remote_home
):
    caplog.set_level(logging.INFO)
    long = "echo " + "x" * 300 + "; exit 3"
    async with start(config({"stdout": True})) as host:
        assert (await execute(host, long, point="ssh.exec.0.001"))[0] in ("error", 3)
        assert (await execute(host, "true"))[0] == 0
    assert not [r for r in caplog.records if r.name.startswith("asyncssh")]
    assert "x" * 300 not in caplog.text
    assert "x" * 100 + "..." in caplog.text


async def test_changed_key_message_lists_the_pinned_key_once(remote, config, start, state, trusted):
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    public = impostor.export_public_key().decode().split()
    trusted.write_text(f"[127.0.0.1]:{remote.server.port} {public[0]} {public[1]}\n")
    async with start(config(), online=False) as host:
        detail = await state(host, ioplex.State.FAILED)
    assert detail.count(impostor.get_fingerprint("sha256")) == 1


async def test_trust_on_first_use_logs_the_pinned_fingerprint(
    remote, config, start, trusted, caplog
):
    trusted.unlink()
    async with start(config({"trust_on_first_use": True})):
        pass
    fingerprint = remote.server.host_key.get_fingerprint("sha256")
    assert f"trusted the host key of 127.0.0.1:{remote.server.port} on first use" in caplog.text
    assert fingerprint in caplog.text


async def test_a_password_naming_a_missing_pem_file_says_so(remote, config, start, state, caplog):
    mark = remote.server.log_size()
    async with start(config(password="keys/site.pem"), online=False) as host:
        detail = await state(host, ioplex.State.FAILED)
    assert "ioservers.ssh.password names the private key file" in detail
    assert "site.pem" in detail and "No such file" in detail
    assert "Failed password" not in remote.server.log(mark)  # never sent as a password


async def test_a_plain_host_line_does_not_match_another_port(remote, config, start, state, trusted):
    public = remote.server.host_key.export_public_key().decode().split()
    trusted.write_text(f"127.0.0.1 {public[0]} {public[1]}\n")  # port 22 only, as in OpenSSH
    async with start(config(), online=False) as host:
        detail = await state(host, ioplex.State.FAILED)
    assert "is not trusted" in detail
