"""SCP get and put, with every local file operation confined to the data directory.

asyncssh implements the SCP protocol; its public `asyncssh.scp()` always works on the whole
local filesystem and sends each file's own permissions. This module drives the same
protocol handlers (`_SCPSource`, `_SCPSink`, `_start_remote` from `asyncssh.scp`) with a
local filesystem object of its own, which

- refuses any path (including names chosen by the remote during a recursive get, and
  symbolic links met on the way) that resolves outside the data directory, at the moment
  of use rather than only when the command is checked; and
- reports every file it sends as mode 600 (directories 700), and asks the remote to apply
  modes even to existing files, so what `put` writes is readable by its owner only.

Those handlers are internal to asyncssh, hence the version bound in pyproject.toml; the
tests exercise them against a real OpenSSH server.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import asyncssh
from asyncssh.scp import _SCPSink, _SCPSource, _start_remote
from asyncssh.sftp import LocalFS, SFTPAttrs, SFTPName

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

    def __init__(self, sandbox: Sandbox, *, private_modes: bool = False) -> None:
        self.sandbox = sandbox
        self.private_modes = private_modes
        self.refusal: str | None = None
        """The last refused path and why, for the log."""

    def _check(self, path: bytes) -> bytes:
        try:
            self.sandbox.check(path)
        except PathRefused as exc:
            self.refusal = str(exc)
            raise asyncssh.SFTPPermissionDenied(f"refused by ioplex: {exc}") from None
        return path

    def _describe(self, attrs: SFTPAttrs) -> SFTPAttrs:
        if self.private_modes and attrs.permissions is not None:
            mode = DIR_MODE if stat.S_ISDIR(attrs.permissions) else FILE_MODE
            attrs.permissions = (attrs.permissions & ~0o7777) | mode
        return attrs

    async def stat(self, path: bytes, *, follow_symlinks: bool = True) -> SFTPAttrs:
        attrs = await super().stat(self._check(path), follow_symlinks=follow_symlinks)
        return self._describe(attrs)

    async def setstat(self, path: bytes, attrs: SFTPAttrs, *,
                      follow_symlinks: bool = True) -> None:
        await super().setstat(self._check(path), attrs, follow_symlinks=follow_symlinks)

    async def exists(self, path: bytes) -> bool:
        return await super().exists(self._check(path))

    async def isdir(self, path: bytes) -> bool:
        return await super().isdir(self._check(path))

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        async for entry in super().scandir(self._check(path)):
            self._describe(entry.attrs)
            yield entry

    async def mkdir(self, path: bytes) -> None:
        await super().mkdir(self._check(path))

    def open(self, path: bytes, mode: str, block_size: int = -1) -> Any:
        return super().open(self._check(path), mode, block_size)


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


async def get(conn: asyncssh.SSHClientConnection, remote: str, local: str, sandbox: Sandbox,
              stall: float) -> int:
    """Copy the remote file (or directory tree) `remote` to the local name `local`.

    Returns the bytes transferred. Raises PathRefused or TransferFailed.
    """
    target = sandbox.resolve(local)
    if local.endswith("/") or target.is_dir():
        if not target.is_dir():
            raise TransferFailed(f"destination directory {local!r} does not exist")
    elif not target.parent.is_dir():
        raise TransferFailed(
            f"destination directory {str(Path(local).parent)!r} of {local!r} does not exist"
        )
    fs = ConfinedFS(sandbox)
    with anyio.CancelScope(deadline=anyio.current_time() + stall) as scope:
        progress = _Progress(scope, stall)
        try:
            reader, writer = await _start_remote(
                conn, True, False, False, True, _remote_arg(remote)  # source, recursive
            )
            sink = _SCPSink(fs, reader, writer, False, False, True, BLOCK_SIZE, progress)
            await sink.run(str(target))
        except (asyncssh.Error, OSError) as exc:
            raise _failure(exc, fs) from None
    if scope.cancelled_caught:
        raise TransferFailed(f"no progress for {stall:g} s")
    return progress.total


async def put(conn: asyncssh.SSHClientConnection, local: str, remote: str, sandbox: Sandbox,
              stall: float) -> int:
    """Copy the local file (or directory tree) `local` to `remote`, readable by its owner only.

    Returns the bytes transferred. Raises PathRefused or TransferFailed.
    """
    if GLOB_CHARS.intersection(local):
        raise PathRefused(f"local source {local!r}: wildcards (* ? [ ]) are not supported")
    source = sandbox.resolve(local)
    if not source.exists():
        raise TransferFailed(f"local source {local!r} does not exist in the data directory")
    fs = ConfinedFS(sandbox, private_modes=True)
    with anyio.CancelScope(deadline=anyio.current_time() + stall) as scope:
        progress = _Progress(scope, stall)
        try:
            recurse = source.is_dir()
            reader, writer = await _start_remote(
                conn, False, False, True, recurse, _remote_arg(remote)  # sink, preserve modes
            )
            sender = _SCPSource(fs, reader, writer, True, recurse, BLOCK_SIZE, progress)
            await sender.run(str(source))
        except (asyncssh.Error, OSError) as exc:
            raise _failure(exc, fs) from None
    if scope.cancelled_caught:
        raise TransferFailed(f"no progress for {stall:g} s")
    return progress.total
