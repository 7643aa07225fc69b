"""How a running server says where it is: a small JSON file in the data directory.

A server that binds port 0, or generates its own certificate, writes its address and
certificate fingerprint to ``<data_dir>/<plugin>/server.json`` for tools, scripts and tests.
The file is a courtesy, never a condition: a full or read-only disk must not keep the server
from serving, so a failed write is logged once and the server goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("ioplex.serving")


class InfoFile:
    """The info file of one server: `publish` once listening, `clear` at start and stop."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what

    def publish(self, data: dict[str, Any]) -> bool:
        """Write `data` atomically (a reader never sees half a file); False, logged, when the
        disk refuses."""
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("%s: cannot write %s (serving anyway): %s", self.what, self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return False
        return True

    def clear(self) -> None:
        """Remove a file left by a previous run or this one (nothing if it cannot be)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("%s: cannot remove %s: %s", self.what, self.path, exc)
