"""Loop safety: a mirrored point carries where it originates and how far it came.

Every state on the broker carries ``src`` (the host where the point originates) and ``hops``
(how many mirrors it went through). A mirrored point keeps both in its meta (``origin``,
``hops`` + 1), and when a host publishes a mirrored point (from another broker, or for a
concentrator above it) it passes them on. A host never imports a point that originates on
itself, and a hop limit bounds any longer cycle. Each kind of refusal is logged once.
"""

from __future__ import annotations

import logging
from typing import Any

ORIGIN = "origin"
HOPS = "hops"


class LoopGuard:
    """Decides which remote states one instance may import."""

    def __init__(self, local_host: str, max_hops: int, where: str,
                 log: logging.Logger | logging.LoggerAdapter) -> None:
        self.local_host = local_host
        self.max_hops = max_hops
        self.where = where
        self.log = log
        self.refused = 0
        """States refused since the start (loops and too long chains)."""
        self._logged: set[str] = set()

    def meta(self, topic_host: str, name: str, src: str, hops: int) -> dict[str, Any] | None:
        """The meta of the mirrored point, or None: do not import it."""
        hops += 1
        if src == self.local_host:
            self.refused += 1
            self._once("loop", "%s: loop detected: %s/%s originates on this host (%s) and "
                       "came back through %d mirror(s); points that originate here are never "
                       "mirrored back", self.where, topic_host, name, src, hops)
            return None
        if hops > self.max_hops:
            self.refused += 1
            self._once("hops", "%s: not mirroring %s/%s (origin %s): it went through %d "
                       "mirrors, more than %s.options.max_hops = %d", self.where, topic_host,
                       name, src, hops, self.where, self.max_hops)
            return None
        return {ORIGIN: src, HOPS: hops}

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self.log.warning(message, *args)
