"""The ``<source> <destination>`` values of get and put, and the data-directory sandbox.

Local files of get and put live under the host's data directory and nowhere else: a point
write must not become a way to read or overwrite any file the host process can reach. So an
absolute local path or one with ``..`` is refused outright, and every path is resolved
(symbolic links included) and refused when it lands outside the directory.
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
            f"with spaces in \"...\"), got {len(names)} name(s) in {value!r}"
        )
    return names[0], names[1]


class Sandbox:
    """Resolves local names under `root` and refuses any that lead outside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def resolve(self, name: str) -> Path:
        """The path `name` denotes under the root (a bare name is a file in the root itself).

        Raises PathRefused for an absolute name, a ``..`` component, or a name that leads
        outside the root through a symbolic link.
        """
        pure = PurePosixPath(name)
        if not name:
            raise PathRefused("empty local path")
        if pure.is_absolute():
            raise PathRefused(
                f"local path {name!r} is absolute; local paths are relative to the data "
                f"directory {str(self.root)!r}"
            )
        if ".." in pure.parts:
            raise PathRefused(
                f"local path {name!r} contains '..'; it must stay in the data directory"
            )
        return self.check(self.root.joinpath(*pure.parts), name)

    def check(self, path: str | bytes | os.PathLike[str], name: str | None = None) -> Path:
        """Return `path` unchanged if it resolves inside the root, else raise PathRefused."""
        local = Path(os.fsdecode(path))
        real = Path(os.path.realpath(local))
        if real != self.root and not real.is_relative_to(self.root):
            shown = name if name is not None else str(local)
            raise PathRefused(
                f"local path {shown!r} leads outside the data directory {str(self.root)!r} "
                f"(it resolves to {str(real)!r}, through a symbolic link)"
            )
        return local
