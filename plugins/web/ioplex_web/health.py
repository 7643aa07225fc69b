"""What the page, ``/readyz``, ``ioplex status`` and the metrics say about I/O servers and
plugin services: state, reason, since when, last error, reconnects, and a bounded log of
recent state changes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ioplex import State

LOG_SIZE = 500
"""State changes kept for the page's log."""


@dataclass
class Health:
    kind: str
    name: str
    state: str
    detail: str | None
    since: float
    last_error: str | None = None
    last_error_at: float | None = None
    reconnects: int = 0
    was_online: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "detail": self.detail,
            "since": self.since,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "reconnects": self.reconnects,
        }


class HealthBoard:
    """Kept up to date by a host state listener from the web server's start on."""

    def __init__(self, host: Any) -> None:
        self.host = host
        now = host.time()
        self.entries: dict[tuple[str, str], Health] = {}
        for name, io in host.ioservers.items():
            self.entries[("ioserver", name)] = Health(
                "ioserver",
                name,
                str(io.state),
                io.detail,
                host.started_at or now,
                was_online=io.state is State.ONLINE,
            )
        for name, state in host.services.items():
            self.entries[("plugin", name)] = Health(
                "plugin", name, str(state), None, host.started_at or now
            )
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.seq = 0
        self._active = True
        host.add_state_listener(self._changed)

    def close(self) -> None:
        self._active = False
        self.host.remove_state_listener(self._changed)

    def _changed(self, kind: str, name: str, state: State, detail: str | None) -> None:
        if not self._active:
            return
        now = self.host.time()
        entry = self.entries.get((kind, name))
        if entry is None:
            entry = self.entries[(kind, name)] = Health(kind, name, str(state), detail, now)
        elif entry.state != str(state):
            entry.since = now
        if state is State.ONLINE:
            if entry.was_online and entry.state != str(State.ONLINE):
                entry.reconnects += 1
            entry.was_online = True
        if state in (State.RETRYING, State.FAILED) and detail:
            entry.last_error, entry.last_error_at = detail, now
        entry.state, entry.detail = str(state), detail
        self.seq += 1
        self.log.append(
            {
                "seq": self.seq,
                "time": now,
                "kind": kind,
                "name": name,
                "state": str(state),
                "detail": detail,
            }
        )

    def ioservers(self) -> list[Health]:
        current = set(self.host.ioservers)
        return [e for (k, n), e in sorted(self.entries.items()) if k == "ioserver" and n in current]

    def services(self) -> list[Health]:
        return [e for (k, _), e in sorted(self.entries.items()) if k == "plugin"]

    def not_ready(self) -> list[str]:
        """Why the host is not ready: instances neither online nor failed with a reason."""
        reasons = []
        for entry in self.ioservers():
            if entry.state == State.ONLINE:
                continue
            if entry.state == State.FAILED and entry.detail:
                continue
            reasons.append(
                f"{entry.name}: {entry.state}" + (f" ({entry.detail})" if entry.detail else "")
            )
        return reasons
