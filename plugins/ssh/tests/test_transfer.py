"""get and put with SCP against the real sshd: byte counts, modes, and the data-dir sandbox."""

from __future__ import annotations

import logging
import os
import secrets

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
def remote_dir(remote):
    """A fresh directory in the test user's home, as the remote side sees it."""
    path = remote.user.home / f"t{secrets.token_hex(4)}"
    path.mkdir()
    os.chown(path, remote.user.uid, -1)
    return path


async def transfer(host, event, point, value):
    with host.subscribe(point) as events:
        await host.write(point, value)
        return (await event(events, point)).value


async def test_put_copies_the_file_with_mode_600(config, start, event, files, remote_dir):
    payload = os.urandom(300_000)
    (files / "report.bin").write_bytes(payload)
    (files / "report.bin").chmod(0o644)
    async with start(config()) as host:
        count = await transfer(host, event, "ssh.put", f"report.bin {remote_dir}/report.bin")
    assert count == len(payload)
    copied = remote_dir / "report.bin"
    assert copied.read_bytes() == payload
    assert copied.stat().st_mode & 0o777 == 0o600


async def test_put_makes_an_existing_remote_file_private_too(
    config, start, event, files, remote_dir, remote
):
    (files / "a.txt").write_text("new\n")
    existing = remote_dir / "a.txt"
    existing.write_text("old old old\n")
    os.chown(existing, remote.user.uid, -1)
    existing.chmod(0o644)
    async with start(config()) as host:
        assert await transfer(host, event, "ssh.put", f"a.txt {existing}") == 4
    assert existing.read_text() == "new\n"
    assert existing.stat().st_mode & 0o777 == 0o600


async def test_put_of_a_directory_like_the_nightly_backup(config, start, event, files, remote_dir):
    backup = files / "data_backup"
    (backup / "logs").mkdir(parents=True)
    (backup / "hsyco.script").write_bytes(b"x" * 1000)
    (backup / "logs" / "day.log").write_bytes(b"y" * 234)
    async with start(config()) as host:
        count = await transfer(host, event, "ssh.put", f"data_backup/ {remote_dir}/data_backup/")
    assert count == 1234
    copy = remote_dir / "data_backup"
    assert (copy / "logs" / "day.log").read_bytes() == b"y" * 234
    assert copy.stat().st_mode & 0o777 == 0o700
    assert (copy / "hsyco.script").stat().st_mode & 0o777 == 0o600


async def test_get_copies_the_file_into_the_data_directory(config, start, event, files, remote_dir):
    payload = os.urandom(123_456)
    (remote_dir / "remote file.bin").write_bytes(payload)
    (files / "in").mkdir()
    async with start(config()) as host:
        source = f'"{remote_dir}/remote file.bin"'
        named = f'{source} "in/local copy.bin"'
        assert await transfer(host, event, "ssh.get", named) == len(payload)
        # a bare destination name lands in the transfer area; a directory keeps the name
        assert await transfer(host, event, "ssh.get", f"{source} bare.bin") == len(payload)
        assert await transfer(host, event, "ssh.get", f"{source} in/") == len(payload)
    assert (files / "in" / "local copy.bin").read_bytes() == payload
    assert (files / "bare.bin").read_bytes() == payload
    assert (files / "in" / "remote file.bin").read_bytes() == payload


async def test_transfer_failures_read_error(config, start, event, files, remote_dir, caplog):
    async with start(config()) as host:
        assert await transfer(host, event, "ssh.get", f"{remote_dir}/missing x") == "error"
        assert "No such file" in caplog.text
        assert await transfer(host, event, "ssh.get", f"{remote_dir}/missing nodir/x") == "error"
        assert "destination directory 'nodir' of 'nodir/x' does not exist" in caplog.text
        assert await transfer(host, event, "ssh.put", f"absent.txt {remote_dir}/x") == "error"
        assert "local source 'absent.txt' does not exist" in caplog.text
        # the queue goes on
        (files / "ok.txt").write_text("ok")
        assert await transfer(host, event, "ssh.put", f"ok.txt {remote_dir}/ok.txt") == 2


async def test_malformed_values_fail_the_write(config, start):
    async with start(config()) as host:
        expected = r"ssh.put: expected '<source> <destination>'.* 3 name"
        with pytest.raises(ioplex.WriteError, match=expected):
            await host.write("ssh.put", "a b c")
        with pytest.raises(ioplex.WriteError, match="No closing quotation"):
            await host.write("ssh.get", '"/tmp/a b')


@pytest.fixture
def outside(tmp_path):
    """A directory next to the data directory, with a secret in it, that must stay untouched."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("top secret")
    return path


async def test_get_cannot_write_outside_the_data_directory(
    config, start, event, files, remote_dir, outside, caplog
):
    (remote_dir / "evil.txt").write_text("overwrite!")
    (files / "link").symlink_to(outside)
    (files / "secret-link.txt").symlink_to(outside / "secret.txt")
    attempts = {
        "../outside/evil.txt": "contains '..'",
        f"{outside}/evil.txt": "is absolute",
        "link/evil.txt": "leads outside the transfer area",
        "link/": "leads outside the transfer area",
        "secret-link.txt": "leads outside the transfer area",
    }
    async with start(config()) as host:
        for local, why in attempts.items():
            value = f"{remote_dir}/evil.txt {local}"
            assert await transfer(host, event, "ssh.get", value) == "error", local
            assert why in caplog.text, local
            assert f"ssh.get = {value!r}: refused" in caplog.text
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret"


async def test_put_cannot_read_outside_the_data_directory(
    config, start, event, files, remote_dir, outside, caplog
):
    (files / "link").symlink_to(outside)
    (files / "leak.txt").symlink_to(outside / "secret.txt")
    (files / "tree").mkdir()
    (files / "tree" / "fine.txt").write_text("fine")
    (files / "tree" / "leak.txt").symlink_to(outside / "secret.txt")
    attempts = {
        "../outside/secret.txt": "refused: local path '../outside/secret.txt' contains '..'",
        f"{outside}/secret.txt": "is absolute",
        "link/secret.txt": "refused: local path 'link/secret.txt' leads outside",
        "leak.txt": "refused: local path 'leak.txt' leads outside",
        "tree": "Not a regular file",  # links inside a directory are never followed
        "*.txt": "wildcards (* ? [ ]) are not supported",
    }
    async with start(config()) as host:
        for local, why in attempts.items():
            target = remote_dir / "got"
            assert await transfer(host, event, "ssh.put", f"{local} {target}") == "error", local
            assert why in caplog.text, local
    leaked = [p for p in remote_dir.rglob("*") if p.is_file() and p.read_bytes() == b"top secret"]
    assert leaked == []


async def test_recursive_get_refuses_a_link_met_on_the_way(
    config, start, event, files, remote_dir, outside, caplog, remote
):
    # remote: tree/sub/evil.txt; local: dst/tree/sub is a link to the outside directory.
    # The destination passes the first check; the link is met only while copying.
    (remote_dir / "tree" / "sub").mkdir(parents=True)
    (remote_dir / "tree" / "sub" / "evil.txt").write_text("overwrite!")
    (files / "dst" / "tree").mkdir(parents=True)
    (files / "dst" / "tree" / "sub").symlink_to(outside)
    async with start(config()) as host:
        assert await transfer(host, event, "ssh.get", f"{remote_dir}/tree dst/") == "error"
    assert "refused: local path" in caplog.text and "dst/tree/sub" in caplog.text
    assert "leads outside the transfer area" in caplog.text
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_a_stalled_transfer_is_abandoned_after_timeout_without_progress(
    config, start, event, files, remote_dir, remote, caplog
):
    fifo = remote_dir / "fifo"
    os.mkfifo(fifo)  # the remote scp blocks opening it: no byte ever moves
    os.chown(fifo, remote.user.uid, -1)
    (files / "small.txt").write_text("hello")
    async with start(config({"timeout": 1})) as host:
        started = anyio.current_time()
        assert await transfer(host, event, "ssh.put", f"small.txt {fifo}") == "error"
        assert 0.9 < anyio.current_time() - started < 5
        assert "no progress for 1 s" in caplog.text
        (files / "next.txt").write_text("next")
        assert await transfer(host, event, "ssh.put", f"next.txt {remote_dir}/next.txt") == 4


async def test_nightly_directory_put_twice_gives_one_tree(config, start, event, files, remote_dir):
    backup = files / "data_backup"
    (backup / "logs").mkdir(parents=True)
    (backup / "hsyco.script").write_bytes(b"x" * 10)
    (backup / "logs" / "day.log").write_bytes(b"y" * 5)
    target = remote_dir / "data_backup"
    async with start(config()) as host:
        for _night in range(2):
            assert await transfer(host, event, "ssh.put", f"data_backup/ {target}/") == 15
    tree = sorted(str(p.relative_to(remote_dir)) for p in remote_dir.rglob("*"))
    assert tree == [
        "data_backup",
        "data_backup/hsyco.script",
        "data_backup/logs",
        "data_backup/logs/day.log",
    ]


async def test_directory_get_with_a_slash_copies_the_contents_repeatably(
    config, start, event, files, remote_dir
):
    (remote_dir / "reports" / "old").mkdir(parents=True)
    (remote_dir / "reports" / "a.csv").write_text("1,2\n")
    (remote_dir / "reports" / "old" / "b.csv").write_text("3\n")
    async with start(config()) as host:
        for _run in range(2):
            value = f"{remote_dir}/reports/ copies/reports"
            assert await transfer(host, event, "ssh.get", value) == 6
    tree = sorted(str(p.relative_to(files)) for p in files.rglob("*"))
    assert tree == [
        "copies",
        "copies/reports",
        "copies/reports/a.csv",
        "copies/reports/old",
        "copies/reports/old/b.csv",
    ]
    assert (files / "copies/reports/a.csv").stat().st_mode & 0o777 == 0o600
    assert (files / "copies/reports/old").stat().st_mode & 0o777 == 0o700


async def test_received_files_are_private_even_over_an_existing_file(
    config, start, event, files, remote_dir
):
    (remote_dir / "r.txt").write_text("remote")
    (remote_dir / "r.txt").chmod(0o666)
    (files / "r.txt").write_text("old")
    (files / "r.txt").chmod(0o644)
    async with start(config()) as host:
        assert await transfer(host, event, "ssh.get", f"{remote_dir}/r.txt r.txt") == 6
        assert await transfer(host, event, "ssh.get", f"{remote_dir}/r.txt new.txt") == 6
    for name in ("r.txt", "new.txt"):
        assert (files / name).read_text() == "remote"
        assert (files / name).stat().st_mode & 0o777 == 0o600


async def test_host_state_is_out_of_reach(
    config, start, event, files, data_dir, remote_dir, trusted, caplog
):
    (data_dir / "loggers.db").write_bytes(b"SQLite format 3\0")
    (remote_dir / "evil").write_text("evil")
    state = {p: p.read_bytes() for p in (data_dir / "loggers.db", trusted)}
    (files / "kh").symlink_to(trusted)
    async with start(config()) as host:
        for value in ("../loggers.db x", "../ssh/known_hosts x", "kh x"):
            assert await transfer(host, event, "ssh.put", f"{value}") == "error", value
        for local in ("../loggers.db", "../ssh/known_hosts", "kh", f"{data_dir}/loggers.db"):
            value = f"{remote_dir}/evil {local}"
            assert await transfer(host, event, "ssh.get", value) == "error", local
    assert {p: p.read_bytes() for p in state} == state
    assert not (remote_dir / "x").exists()


async def test_a_remote_without_scp_transfers_over_sftp(
    remote, config, start, event, files, remote_dir, caplog
):
    caplog.set_level(logging.INFO)
    payload = os.urandom(70_000)
    (files / "tree").mkdir()
    (files / "tree" / "p.bin").write_bytes(payload)
    (files / "tree" / "p.bin").chmod(0o644)
    async with start(config(port=remote.server.noscp_port)) as host:
        assert await transfer(host, event, "ssh.exec", "scp") == 127  # really no scp there
        assert await transfer(host, event, "ssh.put", f"tree/p.bin {remote_dir}/p.bin") == len(
            payload
        )
        assert await transfer(host, event, "ssh.put", f"tree/ {remote_dir}/tree") == len(payload)
        assert await transfer(host, event, "ssh.put", f"tree/ {remote_dir}/tree") == len(payload)
        assert await transfer(host, event, "ssh.get", f"{remote_dir}/p.bin back.bin") == len(
            payload
        )
        assert await transfer(host, event, "ssh.get", f"{remote_dir}/x ../x") == "error"
    assert "has no scp program; get and put use SFTP" in caplog.text
    assert (remote_dir / "p.bin").read_bytes() == payload
    assert (remote_dir / "p.bin").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (remote_dir / "tree").iterdir()) == ["p.bin"]
    assert (remote_dir / "tree" / "p.bin").stat().st_mode & 0o777 == 0o600
    assert (files / "back.bin").read_bytes() == payload
    assert (files / "back.bin").stat().st_mode & 0o777 == 0o600
