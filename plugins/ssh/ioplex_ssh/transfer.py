"""SCP (or SFTP) get and put, with every local file operation confined to the transfer area.

asyncssh implements the SCP protocol; its public `asyncssh.scp()` always works on the whole
local filesystem and sends each file's own permissions. This module drives the same
protocol handlers (`_SCPSource`, `_SCPSink`, `_start_remote` from `asyncssh.scp`) with a
local filesystem object of its own, which

- refuses any path (including names chosen by the remote during a recursive get, and
  symbolic links met on the way) that resolves outside the data directory, at the moment
  of use rather than only when the command is checked; and
- reports every file it sends as mode 600 (directories 700), and asks the remote to apply
  modes even to existing files, so what `put` writes is readable by its owner only;
- creates every file it receives with mode 600, never through a symbolic link;
- copies a source written with a trailing ``/`` *into* the destination directory (creating
  it), so the nightly ``data_backup/ /tmp/data_backup/`` gives the same tree every night
  instead of nesting a new copy inside the last one.

A remote without an ``scp`` program (some appliances, SFTP-only servers) gets the same
transfers over SFTP, with the same local filesystem object.

Those handlers are internal to asyncssh, hence the version bound in pyproject.toml; the
tests exercise them against a real OpenSSH server.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import asyncssh
from asyncssh.misc import async_context_manager
from asyncssh.scp import _SCPSink, _SCPSource, _start_remote
from asyncssh.sftp import LocalFile, LocalFS, SFTPAttrs, SFTPName

from .paths import PathRefused, Sandbox

BLOCK_SIZE = 256 * 1024
FILE_MODE = 0o600
DIR_MODE = 0o700
GLOB_CHARS = frozenset("*?[]")


class TransferFailed(Exception):
    """A get or put did not complete; the message says why."""


class ConfinedFS(LocalFS):
    """The local side of an SCP transfer, confined to a sandbox.

    With `private_modes`, files are described to the remote as mode 600 and directories as
    700, whatever their local mode.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        private_modes: bool = False,
        send_as: tuple[bytes, bytes] | None = None,
        flatten: bytes | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.private_modes = private_modes
        self.send_as = send_as
        """(local source, name): the source is announced to the remote under that name."""
        self.flatten = flatten
        """A destination directory whose first "is it a directory?" answers no, so the
        directory the remote sends first is received *as* it, not inside it."""
        self.refusal: str | None = None
        """The last refused path and why, for the log."""

    def _check(self, path: bytes, guard: bool = False) -> bytes:
        try:
            self.sandbox.check(path)
            if guard:
                self.sandbox.guard(path)
        except PathRefused as exc:
            self.refusal = str(exc)
            raise asyncssh.SFTPPermissionDenied(f"refused by ioplex: {exc}") from None
        return path

    def basename(self, path: bytes) -> bytes:
        if self.send_as is not None and path == self.send_as[0]:
            return self.send_as[1]
        return os.path.basename(path)

    def _describe(self, attrs: SFTPAttrs) -> SFTPAttrs:
        if self.private_modes and attrs.permissions is not None:
            mode = DIR_MODE if stat.S_ISDIR(attrs.permissions) else FILE_MODE
            attrs.permissions = (attrs.permissions & ~0o7777) | mode
        return attrs

    async def stat(self, path: bytes, *, follow_symlinks: bool = True) -> SFTPAttrs:
        attrs = await super().stat(self._check(path), follow_symlinks=follow_symlinks)
        return self._describe(attrs)

    async def setstat(self, path: bytes, attrs: SFTPAttrs, *, follow_symlinks: bool = True) -> None:
        if attrs.permissions is not None:  # what arrives stays private whatever the remote says
            mode = DIR_MODE if os.path.isdir(path) else FILE_MODE
            attrs.permissions = (attrs.permissions & ~0o7777) | mode
        await super().setstat(self._check(path, guard=True), attrs, follow_symlinks=False)

    async def exists(self, path: bytes) -> bool:
        return await super().exists(self._check(path))

    async def isdir(self, path: bytes) -> bool:
        if self.flatten is not None and path == self.flatten:
            self.flatten = None
            return False
        return await super().isdir(self._check(path))

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        async for entry in super().scandir(self._check(path)):
            self._describe(entry.attrs)
            yield entry

    async def mkdir(self, path: bytes) -> None:
        os.mkdir(self._check(path), DIR_MODE)

    @async_context_manager
    async def open(self, path: bytes, mode: str, block_size: int = -1) -> Any:
        self._check(path, guard=True)
        if mode[0] in "wx":
            # created 600, truncated only once opened, never through a symbolic link
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(f"{os.fsdecode(path)!r} is not a regular file")
                os.fchmod(fd, FILE_MODE)
                os.ftruncate(fd, 0)
                return LocalFile(os.fdopen(fd, "wb"))
            except BaseException:
                os.close(fd)
                raise
        return LocalFile(os.fdopen(os.open(path, os.O_RDONLY | os.O_CLOEXEC), "rb"))


class _Progress:
    """Counts transferred bytes and pushes the stall deadline forward on every block."""

    def __init__(self, scope: anyio.CancelScope, stall: float) -> None:
        self.scope = scope
        self.stall = stall
        self.files: dict[bytes, int] = {}

    def __call__(self, srcpath: bytes, dstpath: bytes, copied: int, total: int) -> None:
        self.files[srcpath + b"\0" + dstpath] = copied
        self.scope.deadline = anyio.current_time() + self.stall

    @property
    def total(self) -> int:
        return sum(self.files.values())


def _remote_arg(path: str) -> bytes:
    """The remote path as one shell word, after ``--`` so a leading ``-`` is no option."""
    return b"-- " + shlex.quote(path).encode("utf-8")


def _failure(exc: Exception, fs: ConfinedFS) -> Exception:
    """What a failed transfer raises: PathRefused when the sandbox stopped it."""
    if fs.refusal is not None:
        return PathRefused(fs.refusal)
    return TransferFailed(str(getattr(exc, "reason", None) or exc))


def _contents_target(remote: str) -> tuple[str, str]:
    """(parent, name) of a remote destination directory that takes a source's contents."""
    normal = posixpath.normpath(remote)
    name = posixpath.basename(normal)
    if name in ("", ".", "..", "/") or normal in ("/", "~"):
        raise TransferFailed(
            f"a source ending in '/' copies its contents into the destination directory; "
            f"name that directory ({remote!r} does not)"
        )
    return posixpath.dirname(normal) or ".", name


async def get(
    conn: asyncssh.SSHClientConnection,
    remote: str,
    local: str,
    sandbox: Sandbox,
    stall: float,
    sftp: bool = False,
) -> int:
    """Copy the remote file (or directory tree) `remote` to the local name `local`.

    A `remote` ending in ``/`` copies the directory's contents into `local` (created if
    missing), so repeating the copy gives the same tree. Returns the bytes transferred.
    Raises PathRefused or TransferFailed.
    """
    contents = remote.endswith("/") and remote.strip("/") != ""
    target = sandbox.resolve(local)
    if contents:
        if target.exists() and not target.is_dir():
            raise TransferFailed(f"destination {local!r} is not a directory")
        target.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        sandbox.check(target, local)  # no link was planted on the way meanwhile
    elif local.endswith("/") or target.is_dir():
        if not target.is_dir():
            raise TransferFailed(f"destination directory {local!r} does not exist")
    elif not target.parent.is_dir():
        raise TransferFailed(
            f"destination directory {str(Path(local).parent)!r} of {local!r} does not exist"
        )
    fs = ConfinedFS(sandbox, flatten=os.fsencode(target) if contents else None)
    with anyio.CancelScope(deadline=anyio.current_time() + stall) as scope:
        progress = _Progress(scope, stall)
        try:
            if sftp:
                async with conn.start_sftp_client() as client:
                    await client._begin_copy(  # asyncssh's copy, our local fs
                        client,
                        fs,
                        [remote.rstrip("/") or "/"],
                        os.fsencode(target),
                        "get",
                        False,
                        False,
                        True,
                        False,
                        False,
                        BLOCK_SIZE,
                        -1,
                        progress,
                        None,
                    )
            else:
                reader, writer = await _start_remote(
                    conn,
                    True,
                    False,
                    False,
                    True,
                    _remote_arg(remote),  # source, recursive
                )
                sink = _SCPSink(fs, reader, writer, False, False, True, BLOCK_SIZE, progress)
                await sink.run(str(target))
        except (asyncssh.Error, OSError) as exc:
            raise _failure(exc, fs) from None
    if scope.cancelled_caught:
        raise TransferFailed(f"no progress for {stall:g} s")
    return progress.total


async def put(
    conn: asyncssh.SSHClientConnection,
    local: str,
    remote: str,
    sandbox: Sandbox,
    stall: float,
    sftp: bool = False,
) -> int:
    """Copy the local file (or directory tree) `local` to `remote`, readable by its owner only.

    A `local` directory ending in ``/`` copies its contents into the directory `remote`
    (created if missing; its parent must exist), so repeating the copy gives the same tree.
    Returns the bytes transferred. Raises PathRefused or TransferFailed.
    """
    if GLOB_CHARS.intersection(local):
        raise PathRefused(f"local source {local!r}: wildcards (* ? [ ]) are not supported")
    source = sandbox.resolve(local)
    if not source.exists():
        raise TransferFailed(f"local source {local!r} does not exist in the transfer area")
    contents = local.endswith("/") and source.is_dir()
    send_as = None
    if contents:
        remote, name = _contents_target(remote)
        send_as = (os.fsencode(source), name.encode("utf-8"))
    fs = ConfinedFS(sandbox, private_modes=True, send_as=send_as)
    with anyio.CancelScope(deadline=anyio.current_time() + stall) as scope:
        progress = _Progress(scope, stall)
        try:
            recurse = source.is_dir()
            if sftp:
                async with conn.start_sftp_client() as client:
                    await client._begin_copy(
                        fs,
                        client,
                        [os.fsencode(source)],
                        remote,
                        "put",
                        False,
                        True,
                        recurse,
                        False,
                        False,
                        BLOCK_SIZE,
                        -1,
                        progress,
                        None,
                    )
            else:
                reader, writer = await _start_remote(
                    conn,
                    False,
                    contents,
                    True,
                    recurse,
                    _remote_arg(remote),  # sink, preserve
                )
                sender = _SCPSource(fs, reader, writer, True, recurse, BLOCK_SIZE, progress)
                await sender.run(str(source))
        except (asyncssh.Error, OSError) as exc:
            raise _failure(exc, fs) from None
    if scope.cancelled_caught:
        raise TransferFailed(f"no progress for {stall:g} s")
    return progress.total


async def has_scp(conn: asyncssh.SSHClientConnection, timeout: float) -> bool:
    """Whether the remote runs an ``scp`` program (else transfers go over SFTP)."""
    with anyio.move_on_after(timeout):
        try:
            done = await conn.run("command -v scp", check=False)
        except (asyncssh.Error, OSError):
            return True  # cannot tell: keep SCP and its error
        return done.exit_status == 0
    return True
