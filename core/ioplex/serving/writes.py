"""Which points a remote client may write: the ``control`` setting of a server plugin."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..points import check_pattern

if TYPE_CHECKING:
    from ..host import Host

_GLOB = re.compile(r"[*?\[]")


class RemoteWrites:
    """A server's write policy: ``false`` (read-only), ``true`` (any point that is not
    sensitive), or a list of glob patterns over point names.

    A *sensitive* point (`Point.sensitive`: ssh's ``exec``, ``get``, ``put``...) is writable
    from a remote only when a pattern names it without wildcards in its instance part, e.g.
    ``"ssh.exec"`` or ``"ssh.exec.*"`` — never through ``true``, ``"*"`` or ``"ss*.exec"``:
    running commands from a remote is something an operator must ask for by name.
    """

    def __init__(self, control: bool | str | Sequence[str], where: str = "control") -> None:
        if isinstance(control, str):
            control = [control]
        self.everything = control is True
        self.patterns: tuple[str, ...] = () if isinstance(control, bool) else tuple(control)
        for i, pattern in enumerate(self.patterns):
            try:
                check_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"{where}[{i}]: {exc}") from None
        self._any = (
            re.compile("|".join(fnmatch.translate(p) for p in self.patterns)).match
            if self.patterns
            else None
        )
        exact = [p for p in self.patterns if not _GLOB.search(p.partition(".")[0])]
        self._named = (
            re.compile("|".join(fnmatch.translate(p) for p in exact)).match if exact else None
        )

    @property
    def enabled(self) -> bool:
        """Whether any write is allowed at all."""
        return self.everything or bool(self.patterns)

    def allows(self, name: str, sensitive: bool) -> bool:
        """Whether a remote may write the point `name` (`sensitive` as the point says)."""
        if sensitive:
            return self._named is not None and self._named(name) is not None
        if self.everything:
            return True
        return self._any is not None and self._any(name) is not None

    def allows_point(self, host: Host, name: str) -> bool:
        """`allows` for a point of `host`, declared or still to be declared by a family."""
        point = host.points.get(name)
        if point is not None:
            return self.allows(name, point.sensitive)
        instance, _, id = name.partition(".")
        io = host.ioservers.get(instance)
        sensitive = io is not None and bool(id) and io.family_sensitive(id)
        return self.allows(name, sensitive)
