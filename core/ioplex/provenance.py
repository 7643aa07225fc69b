"""Where a point comes from, for plugins that mirror points between hosts (hsyco_remote,
mqtt, ...): loop-safe topologies without a central registry.

A mirrored point keeps in its metadata the host where it originates (``meta["origin"]``)
and how many mirrors it went through (``meta["hops"]``). A host that serves or publishes it
on passes both along (`provenance`); a host that imports one asks a `LoopGuard`, which
refuses points that originate on the host itself (so two hosts mirroring each other end with
each holding the other's own points once) and points that went through more than
``max_hops`` mirrors (a cycle that does not pass through this host, or a runaway chain).
"""

from __future__ import annotations

import logging
from typing import Any

from .points import Point

ORIGIN = "origin"
"""Metadata key: the name of the host where the point originates."""
HOPS = "hops"
"""Metadata key: how many mirrors the point went through to get here (0 at its origin)."""
DEFAULT_MAX_HOPS = 8


def provenance(point: Point, here: str) -> tuple[str, int]:
    """(origin, hops) of a point as this host `here` passes it on: its own points originate
    here, 0 hops away; mirrored ones keep what they came with."""
    meta = point.meta
    if meta:
        origin, hops = meta.get(ORIGIN), meta.get(HOPS)
        if isinstance(origin, str) and origin and hops.__class__ is int and hops >= 0:
            return origin, hops
    return here, 0


class LoopGuard:
    """Decides which remote points one mirroring instance may import; logs each kind of
    refusal once."""

    def __init__(
        self,
        local_host: str,
        max_hops: int,
        where: str,
        log: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.local_host = local_host
        self.max_hops = max_hops
        self.where = where
        """The config path of the instance, for messages (``ioservers.<name>``)."""
        self.log = log
        self.refused = 0
        """Points refused since the start (loops and too long chains)."""
        self._logged: set[str] = set()

    def meta(self, name: str, origin: str, hops: int, via: str) -> dict[str, Any] | None:
        """The provenance metadata for a point `name` received from host `via` with the
        remote's (`origin`, `hops`), or None: do not import it."""
        hops = max(hops, 0) + 1
        if origin == self.local_host:
            self.refused += 1
            middle = [via] if hops <= 2 else ["...", via]
            path = " -> ".join([origin, *middle, origin])
            self._once(
                "loop",
                "%s: loop detected: %s originates on this host and came back after "
                "%d mirror(s) (%s); points that originate here are never mirrored back",
                self.where,
                name,
                hops,
                path,
            )
            return None
        if hops > self.max_hops:
            self.refused += 1
            self._once(
                "hops",
                "%s: not mirroring %s (origin %s, via %s): it went through %d mirrors, "
                "more than the limit of %d (a cycle that does not pass through this host, or a "
                "very long chain)",
                self.where,
                name,
                origin,
                via,
                hops,
                self.max_hops,
            )
            return None
        return {ORIGIN: origin, HOPS: hops}

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self.log.warning(message, *args)
