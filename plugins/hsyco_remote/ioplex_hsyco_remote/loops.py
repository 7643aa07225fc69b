"""Loop-safe topologies: every mirrored point knows where it originates and how far it came.

API v1 state rows carry ``origin`` (the host where the point originates) and ``hops`` (the
replications it went through). A mirrored point keeps them in its meta (``hops`` + 1), so the
serving side passes them on. A host never imports a point that originates on itself (two
hosts mirroring each other end with each holding the other's own points once), and a hop
limit bounds any longer cycle or chain. A loop is logged once per instance, with its path.
"""

from __future__ import annotations

import logging
from typing import Any

ORIGIN = "origin"
HOPS = "hops"


class LoopGuard:
    """Decides which remote points one mirror instance may import."""

    def __init__(self, local_host: str, max_hops: int, where: str,
                 log: logging.Logger | logging.LoggerAdapter) -> None:
        self.local_host = local_host
        self.max_hops = max_hops
        self.where = where
        self.log = log
        self.refused = 0
        """Points refused since the start (loops and too long chains)."""
        self._logged: set[str] = set()

    def meta(self, row: list[Any], remote_host: str) -> dict[str, Any] | None:
        """The meta of a mirrored point for a state row, or None: do not import it.

        Rows from servers older than the origin fields originate on the remote, 0 hops away.
        """
        origin, hops = remote_host, 0
        if len(row) >= 7:
            origin = row[5] if isinstance(row[5], str) and row[5] else remote_host
            hops = row[6] if isinstance(row[6], int) and not isinstance(row[6], bool) else 0
        hops = max(hops, 0) + 1
        if origin == self.local_host:
            self.refused += 1
            middle = [remote_host] if hops <= 2 else ["...", remote_host]
            path = " -> ".join([self.local_host, *middle, self.local_host])
            self._once("loop", "%s: loop detected: %s originates on this host and came back "
                       "after %d replications (%s); points that originate here are never "
                       "mirrored back", self.where, row[0], hops, path)
            return None
        if hops > self.max_hops:
            self.refused += 1
            self._once("hops", "%s: not mirroring %s (origin %s): it went through %d "
                       "replications, more than %s.options.maxhops = %d (a loop that does "
                       "not pass through this host, or a very long chain)",
                       self.where, row[0], origin, hops, self.where, self.max_hops)
            return None
        return {ORIGIN: origin, HOPS: hops}

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self.log.warning(message, *args)
