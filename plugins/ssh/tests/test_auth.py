"""Logging in to the real sshd: password, keyboard-interactive, keys; and refusals.

sshd's own log says which method it accepted, so each test checks the method really used.
"""

from __future__ import annotations

import logging
import shutil

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio


async def test_password(remote, config, start, execute):
    mark = remote.server.log_size()
    async with start(config(port=remote.server.password_port)) as host:
        assert await execute(host, "whoami") == (0, remote.user.name, "")
    assert f"Accepted password for {remote.user.name}" in remote.server.log(mark)


async def test_keyboard_interactive(remote, config, start, execute):
    mark = remote.server.log_size()
    async with start(config(port=remote.server.kbdint_port)) as host:
        assert await execute(host, "whoami") == (0, remote.user.name, "")
    assert f"Accepted keyboard-interactive/pam for {remote.user.name}" in remote.server.log(mark)


async def test_key_option_openssh_format(remote, config, start, execute, data_dir):
    shutil.copy(remote.user.key_path, data_dir / "id_ed25519")
    mark = remote.server.log_size()
    async with start(config({"key": "id_ed25519"}, password="")) as host:
        assert await execute(host, "whoami") == (0, remote.user.name, "")
    assert f"Accepted publickey for {remote.user.name}" in remote.server.log(mark)
    assert "ED25519" in remote.server.log(mark)


async def test_encrypted_key_with_passphrase(remote, config, start, execute):
    options = {"key": str(remote.encrypted_key), "passphrase": remote.passphrase}
    mark = remote.server.log_size()
    async with start(config(options, password="")) as host:
        assert (await execute(host, "true"))[0] == 0
    assert "Accepted publickey" in remote.server.log(mark)
    assert "ECDSA" in remote.server.log(mark)


async def test_password_may_name_a_pem_file(remote, config, start, execute, data_dir):
    (data_dir / "keys").mkdir()
    shutil.copy(remote.pem_key, data_dir / "keys" / "server.pem")
    mark = remote.server.log_size()
    async with start(config(password="keys/server.pem")) as host:
        assert (await execute(host, "true"))[0] == 0
    assert "Accepted publickey" in remote.server.log(mark)
    assert "RSA" in remote.server.log(mark)


async def test_wrong_passphrase_is_fatal_and_not_shown(remote, config, start, state, caplog):
    options = {"key": str(remote.encrypted_key), "passphrase": "not-the-passphrase"}
    async with start(config(options, password=""), online=False) as host:
        detail = await state(host, ioplex.State.FAILED)
    assert "wrong passphrase" in detail and "ioservers.ssh.options.passphrase" in detail
    assert "not-the-passphrase" not in caplog.text + detail


async def test_wrong_password_is_retried_slowly_names_the_setting_and_hides_the_value(
    remote, config, start, state, caplog
):
    caplog.set_level(logging.DEBUG)
    secret = "Wrong-Secret-1234"
    mark = remote.server.log_size()
    async with start(config({"auth_retry": 1}, password=secret), online=False) as host:
        detail = await state(host, ioplex.State.RETRYING)
        assert f"user {remote.user.name!r}" in detail
        assert "(ioservers.ssh.password)" in detail and "ioservers.ssh.user" in detail
        assert "next attempt in 1 s (ioservers.ssh.options.auth_retry)" in detail
        with anyio.fail_after(10):  # retried, not stopped (PAM delays each refusal ~2 s)
            while remote.server.log(mark).count("PAM: Authentication failure") < 2:
                await anyio.sleep(0.1)
        assert host.ioservers["ssh"].state is not ioplex.State.FAILED  # never a permanent stop
        assert host.points["ssh.connection"].value == "offline"
    assert secret not in caplog.text and secret not in detail
