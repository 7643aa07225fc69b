"""What the serving side shows of its host: RemoteServerIOFilter and RemoteServerUIFilter.

A point or UI variable is exposed when its name matches one of the filter's glob patterns
(the kernel's pattern syntax: ``dummy.*``, ``*.temp.?``); everything else is invisible to
clients: absent from the state and the changes, and "unknown" to writes.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from ioplex import Point, PointNameError, Registry
from ioplex.points import check_pattern


def compile_patterns(patterns: Sequence[str], where: str) -> Callable[[str], Any]:
    """A matcher for the glob `patterns`; ValueError naming `where` for a bad pattern."""
    for i, pattern in enumerate(patterns):
        try:
            check_pattern(pattern)
        except PointNameError as exc:
            raise ValueError(f"{where}[{i}]: {exc}") from None
    if any(p == "*" for p in patterns):
        return lambda name: True
    if not patterns:
        return lambda name: False
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)).match


class Exposure:
    """The exposed part of a host's two registries, and how many points it holds."""

    def __init__(
        self, host: Any, io_filter: Sequence[str], ui_filter: Sequence[str], where: str
    ) -> None:
        self.host = host
        self.io_patterns = tuple(io_filter)
        self.ui_patterns = tuple(ui_filter)
        self._matches = {
            "io": compile_patterns(self.io_patterns, f"{where}.io_filter"),
            "ui": compile_patterns(self.ui_patterns, f"{where}.ui_filter"),
        }
        self._counts: dict[str, tuple[int, int]] = {}
        self._topotime = int(time.time() * 1000)
        self._reported: dict[str, int] = {}

    def registry(self, ns: str) -> Registry:
        return self.host.ui if ns == "ui" else self.host.points

    def exposed(self, ns: str, name: str) -> bool:
        return bool(self._matches[ns](name))

    def get(self, ns: str, name: str) -> Point | None:
        """The exposed point `name`, or None (unknown and hidden look the same)."""
        point = self.registry(ns).get(name)
        return point if point is not None and self._matches[ns](name) else None

    def points(self, ns: str) -> list[Point]:
        """Every exposed point of a namespace, in registry order (a snapshot of references)."""
        patterns = self.io_patterns if ns == "io" else self.ui_patterns
        return self.registry(ns).match(*patterns) if patterns else []

    def count(self, ns: str) -> int:
        """How many points are exposed; recounted only when the registry's size changed."""
        size = len(self.registry(ns))
        cached = self._counts.get(ns)
        if cached is None or cached[0] != size:
            count = len(self.points(ns))
            if cached is not None and cached[1] != count:
                self._topotime = int(time.time() * 1000)
            cached = self._counts[ns] = (size, count)
        return cached[1]

    def report(self, spaces: tuple[str, ...]) -> dict[str, int]:
        """The counts of `spaces` for an answer, remembered as what clients were told."""
        counts = {ns: self.count(ns) for ns in spaces}
        self._reported.update(counts)
        return counts

    def counts_changed(self) -> bool:
        """Whether a count differs from the last one reported (then it counts as reported)."""
        changed = False
        for ns, told in list(self._reported.items()):
            now = self.count(ns)
            if now != told:
                self._reported[ns] = now
                changed = True
        return changed

    def topotime(self) -> int:
        """When the set of exposed points last changed size, in ms since the epoch (HSYCO's
        "topotime"; removing one point and adding another in between goes unnoticed)."""
        for ns in ("io", "ui"):
            self.count(ns)
        return self._topotime

    def clock_point(self) -> Point | None:
        """``<system>.time`` of the host's `system` I/O server, when it exists and is exposed."""
        for io in self.host.ioservers.values():
            if io.type == "system":
                point = self.get("io", f"{io.name}.time")
                if point is not None:
                    return point
        return None
