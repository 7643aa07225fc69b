"""What the engine keeps across restarts, in SQLite in the data directory
(``<data_dir>/events/events.sqlite``): program timers, the time schedules' last fired and
next planned occurrences, and the traces of the last firings of each rule.

Writes are small and few (a timer set, a schedule fired, a batch of traces a second), so the
engine calls these synchronously; WAL mode keeps readers (``ioplex events trace``) from
blocking it.

The database is what lets timers survive a restart, never a condition for running rules: when
the file cannot be opened or written (a full or read-only disk), the store keeps going in
memory, says so once a minute, and `recover` (called by the engine every few seconds) moves
back to the file once it works again, where the engine saves its whole state anew.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ioplex.serving import RateLimitedLog

log = logging.getLogger("ioplex.plugin.events")

SCHEMA = """
CREATE TABLE IF NOT EXISTS timers (
    name TEXT PRIMARY KEY,
    deadline REAL NOT NULL,   -- epoch seconds (host clock) when it expires
    period REAL               -- seconds between expiries for REPEAT, else NULL
);
CREATE TABLE IF NOT EXISTS schedules (
    key TEXT PRIMARY KEY,     -- the TIME event (TimeEvent.key)
    last_key TEXT,            -- local date and time of the last occurrence fired
    next_at REAL              -- the next occurrence planned (epoch seconds)
);
CREATE TABLE IF NOT EXISTS traces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,       -- the rule's id, file:line
    text TEXT NOT NULL,       -- the rule's source line
    time REAL NOT NULL,
    trace TEXT NOT NULL       -- JSON: trigger, actions and their results
);
CREATE INDEX IF NOT EXISTS traces_rule ON traces (rule, seq);
"""


def database_path(data_dir: Path) -> Path:
    return data_dir / "events" / "events.sqlite"


class Store:
    """The engine's SQLite database (in memory while the file cannot be used)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None
        """Why the file is not up to date (None: it is)."""
        self._rlog = RateLimitedLog(log, interval=60.0)
        self.traces_lock = threading.Lock()
        self.trace_counts: dict[str, int] = {}
        """Rows stored per rule, at most (a rule not seen yet may have `keep` from before)."""
        opened = self._open_file()
        self.in_memory = opened is None
        """Whether the state is kept in memory for now (the file could not be opened)."""
        self.db, self.traces_db = opened or self._open_memory()

    def _open_file(self) -> tuple[sqlite3.Connection, sqlite3.Connection] | None:
        opened: list[sqlite3.Connection] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            opened.append(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            # A connection of its own for traces, written from a worker thread.
            traces = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            opened.append(traces)
            traces.execute("PRAGMA synchronous=NORMAL")
            traces.execute("PRAGMA busy_timeout=5000")
        except (sqlite3.Error, OSError) as exc:
            for conn in opened:
                conn.close()
            self._failed(exc)
            return None
        return db, traces

    def _open_memory(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.executescript(SCHEMA)
        traces = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        traces.executescript(SCHEMA)
        return db, traces

    def _failed(self, exc: BaseException) -> None:
        self.problem = f"{type(exc).__name__}: {exc}"
        self._rlog.error(
            "store",
            "events: cannot write %s (%s): rules run on, but timers and schedules set now "
            "may not survive a restart until it works again",
            self.path,
            self.problem,
        )

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            self.db.execute(sql, params)
        except sqlite3.Error as exc:
            self._failed(exc)

    def recover(
        self,
        timers: dict[str, tuple[float, float | None]],
        schedules: dict[str, tuple[str | None, float | None]],
    ) -> bool:
        """After a failure: go back to the file if it works again, writing the engine's
        whole state (`timers`, `schedules`: what `timers()` and `schedules()` return) in one
        transaction; True once the file is up to date again."""
        if self.problem is None:
            return True
        if self.in_memory:
            opened = self._open_file()
            if opened is None:
                return False
            old = (self.db, self.traces_db)
            with self.traces_lock:
                self.db, self.traces_db = opened
            self.in_memory = False
            for conn in old:
                conn.close()
        db = self.db
        try:
            db.execute("BEGIN")
            try:
                db.execute("DELETE FROM timers")
                db.executemany(
                    "INSERT INTO timers (name, deadline, period) VALUES (?, ?, ?)",
                    [(name, deadline, period) for name, (deadline, period) in timers.items()],
                )
                db.execute("DELETE FROM schedules")
                db.executemany(
                    "INSERT INTO schedules (key, last_key, next_at) VALUES (?, ?, ?)",
                    [(key, last, nxt) for key, (last, nxt) in schedules.items()],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._failed(exc)
            return False
        log.warning("events: %s is written again (timers and schedules saved)", self.path)
        self.problem = None
        return True

    def close(self) -> None:
        self.db.close()
        self.traces_db.close()

    # -- program timers ---------------------------------------------------------------------
    def timers(self) -> dict[str, tuple[float, float | None]]:
        rows = self.db.execute("SELECT name, deadline, period FROM timers")
        return {name: (deadline, period) for name, deadline, period in rows}

    def set_timer(self, name: str, deadline: float, period: float | None) -> None:
        self._write(
            "INSERT OR REPLACE INTO timers (name, deadline, period) VALUES (?, ?, ?)",
            (name, deadline, period),
        )

    def clear_timer(self, name: str) -> None:
        self._write("DELETE FROM timers WHERE name = ?", (name,))

    # -- schedules -----------------------------------------------------------------------------
    def schedules(self) -> dict[str, tuple[str | None, float | None]]:
        rows = self.db.execute("SELECT key, last_key, next_at FROM schedules")
        return {key: (last, nxt) for key, last, nxt in rows}

    def save_schedule(self, key: str, last_key: str | None, next_at: float | None) -> None:
        self._write(
            "INSERT OR REPLACE INTO schedules (key, last_key, next_at) VALUES (?, ?, ?)",
            (key, last_key, next_at),
        )

    # -- traces --------------------------------------------------------------------------------
    def add_traces(self, rows: list[tuple[str, str, float, str]], keep: int) -> None:
        """Append traces (rule, text, time, JSON) and keep the last `keep` of each rule.

        Only a batch's last `keep` rows of a rule are written, and a rule's older rows are
        deleted once it has `keep` more than it keeps: one DELETE per `keep` firings of a
        rule, not one per rule per batch (10,000 rules firing cost 10,000 DELETEs a second
        otherwise). Readers take the last `keep` (see `read_traces`)."""
        by_rule: dict[str, list[tuple[str, str, float, str]]] = {}
        for row in rows:
            by_rule.setdefault(row[0], []).append(row)
        with self.traces_lock:
            db = self.traces_db
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT INTO traces (rule, text, time, trace) VALUES (?, ?, ?, ?)",
                    [row for group in by_rule.values() for row in group[-keep:]],
                )
                counts = self.trace_counts
                for rule, group in by_rule.items():
                    n = counts.get(rule, keep) + min(len(group), keep)
                    if n < 2 * keep:
                        counts[rule] = n
                        continue
                    counts[rule] = keep
                    db.execute(
                        "DELETE FROM traces WHERE rule = ? AND seq <= (SELECT seq FROM traces "
                        "WHERE rule = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                        (rule, rule, keep),
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise


def read_traces(path: Path, rule: str | None = None, keep: int = 20) -> list[dict[str, Any]]:
    """The last `keep` stored traces of every rule, or of those whose id or text contain
    `rule`, oldest first, read-only (for ``ioplex events trace``)."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT rule, text, time, trace FROM traces ORDER BY seq").fetchall()
    finally:
        db.close()
    wanted = [r for r in rows if rule is None or r[0] == rule or rule in r[0] or rule in r[1]]
    newer: dict[str, int] = {}  # traces of each rule met so far, newest first
    last = []
    for rid, text, t, trace in reversed(wanted):
        newer[rid] = newer.get(rid, 0) + 1
        if newer[rid] <= keep:
            last.append({"rule": rid, "text": text, "time": t, **json.loads(trace)})
    return last[::-1]
