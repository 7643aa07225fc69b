"""The ``<source> <destination>`` values of get and put, and the transfer area.

Local files of get and put live in the transfer area (``<data_dir>/files`` by default) and
nowhere else: a point write, or a name a malicious server sends, must not become a way to
read or overwrite the host's own state (keys, known_hosts, ``loggers.db``, certificates) or
any other file the host process can reach. So an absolute local path or one with ``..`` is
refused outright, every path is resolved (symbolic links included) and refused when it lands
outside the area, and a file on the protected list or held open by the host process is
refused even inside it.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path, PurePosixPath


class PathRefused(ValueError):
    """A local path is not acceptable; the message says why."""


def split_transfer(value: str) -> tuple[str, str]:
    """Split a get/put value into (source, destination).

    Names are separated by spaces; a name with spaces is written in double quotes
    (``"my file.txt" /tmp/x``) or with backslash escapes. Single quotes are ordinary
    characters, so names like ``John's notes`` need no quoting.
    """
    lexer = shlex.shlex(value, posix=True)
    lexer.whitespace_split = True
    lexer.quotes = '"'
    lexer.commenters = ""
    try:
        names = list(lexer)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise ValueError(f"cannot split {value!r} into source and destination: {exc}") from None
    if len(names) != 2 or not all(names):
        raise ValueError(
            f"expected '<source> <destination>' (two names separated by spaces; quote a name "
            f'with spaces in "..."), got {len(names)} name(s) in {value!r}'
        )
    return names[0], names[1]


def held_open() -> set[tuple[int, int]]:
    """(device, inode) of every file this process holds open (Linux ``/proc/self/fd``)."""
    found: set[tuple[int, int]] = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            info = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            found.add((info.st_dev, info.st_ino))
    return found


class Sandbox:
    """Resolves local names under `root` and refuses any that lead outside it, or to a
    `protected` file, or to a file the host process holds open (its databases, logs)."""

    def __init__(self, root: Path, protected: list[Path] | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        self.protected = {Path(os.path.realpath(p)) for p in protected or []}

    def guard(self, path: str | bytes | os.PathLike[str]) -> None:
        """Refuse `path` (already inside the root) if it is protected or held open."""
        local = Path(os.fsdecode(path))
        real = Path(os.path.realpath(local))
        if real in self.protected:
            raise PathRefused(
                f"local path {str(local)!r} is a file the ssh I/O server itself "
                "uses (known_hosts or a key); it is never transferred"
            )
        try:
            info = os.stat(real)
        except OSError:
            return
        if (info.st_dev, info.st_ino) in held_open():
            raise PathRefused(
                f"local path {str(local)!r} is a file the host holds open "
                "(a database or log); it is never transferred"
            )

    def resolve(self, name: str) -> Path:
        """The path `name` denotes under the root (a bare name is a file in the root itself).

        Raises PathRefused for an absolute name, a ``..`` component, or a name that leads
        outside the root through a symbolic link.
        """
        pure = PurePosixPath(name)
        if not name:
            raise PathRefused("empty local path")
        if "\0" in name:
            raise PathRefused(f"local path {name!r} contains a NUL character")
        if pure.is_absolute():
            raise PathRefused(
                f"local path {name!r} is absolute; local paths are relative to the transfer "
                f"area {str(self.root)!r}"
            )
        if ".." in pure.parts:
            raise PathRefused(
                f"local path {name!r} contains '..'; it must stay in the transfer area"
            )
        path = self.check(self.root.joinpath(*pure.parts), name)
        self.guard(path)
        return path

    def check(self, path: str | bytes | os.PathLike[str], name: str | None = None) -> Path:
        """Return `path` unchanged if it resolves inside the root, else raise PathRefused."""
        local = Path(os.fsdecode(path))
        real = Path(os.path.realpath(local))
        if real != self.root and not real.is_relative_to(self.root):
            shown = name if name is not None else str(local)
            raise PathRefused(
                f"local path {shown!r} leads outside the transfer area {str(self.root)!r} "
                f"(it resolves to {str(real)!r})"
            )
        return local
