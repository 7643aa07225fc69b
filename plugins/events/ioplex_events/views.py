"""The engine's read-only views (the kernel's `register_views` hook): ``events.traces``, the
last firings of the rules, and ``events.rules``, each loaded rule's counters.

Interfaces (the web plugin's ``/api/v1/views/events.traces``) read these through
``host.views`` without importing this plugin. Traces come from the running engine's memory
(the last ``trace_size`` firings of each rule, stored or not yet) merged with the SQLite store
(firings from before the last restart); without a running engine, from the store alone.
"""

from __future__ import annotations

import difflib
import heapq
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import anyio
from ioplex.points import printable

from .store import database_path

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
"""Most firings one call returns (``trace_size`` is at most 1000 too)."""
CHUNK = 1000
"""Rules looked at per turn of the event loop, so 10,000 rules never stall it."""
MAX_SUGGEST = 2000
"""Most rules a did-you-mean looks through."""
POINT_PREFIX = "events."


def point_key(rule_id: str) -> str:
    """``<file>.<line>`` as the engine names a rule's point ``events.<file>.<line>``
    (the key the web API's ``/api/v1/rules`` lists)."""
    file, _, line = rule_id.rpartition(":")
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '_', file).strip('_') or 'rules'}.{line}"


def parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or len(text) > 7:
        raise ValueError(f"limit: '{printable(text, 40)}' is not a whole number")
    limit = int(text)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: {limit} is not within 1...{MAX_LIMIT}")
    return limit


def _matches(rule: str, rule_id: str, point: str | None) -> bool:
    """`rule` names the rule by its id (``file:line``), its point, or its point's key."""
    return rule == rule_id or (point is not None and rule in (point, point[len(POINT_PREFIX) :]))


def _entry(rule_id: str, point: str | None, text: str, at: float, trace: dict) -> dict:
    return {"rule": rule_id, "point": point, "text": text, "time": at, **trace}


def _loaded(engine: Any) -> list[Any]:
    return [c for rules in list(engine.files.values()) for c in rules]


async def traces(host: Any, rule: str | None = None, limit: str | None = None) -> dict[str, Any]:
    """The last `limit` firings (default 20, at most 1000), newest first, of every rule or of
    `rule` (its id ``file:line``, its point ``events.<file>.<line>`` or ``<file>.<line>``).

    A rule the running engine has not loaded is a `ValueError` (with the closest ids); with
    no engine running, the store answers and an unknown rule gives no firings.
    """
    from . import engine_of

    count = parse_limit(limit)
    rule = rule or None  # an empty form field asks for every rule
    if rule is not None and len(rule) > 1024:
        raise ValueError("rule: longer than 1024 characters; give its id (file:line)")
    engine = engine_of(host)
    # From memory: (time, rule id, point, text, trace) of the matching loaded rules.
    memory: list[tuple[float, str, str | None, str, Any]] = []
    oldest: dict[str, float] = {}  # per rule: the oldest firing memory holds
    ids: list[str] = []
    path = database_path(host.data_dir)
    if engine is not None:
        path = Path(getattr(engine.store, "path", path))
        rules = _loaded(engine)
        for start in range(0, len(rules), CHUNK):
            for c in rules[start : start + CHUNK]:
                point = c.point.name if c.point is not None else POINT_PREFIX + point_key(c.id)
                if rule is not None and not _matches(rule, c.id, point):
                    continue
                ids.append(c.id)
                kept = list(c.traces)
                if kept:
                    oldest[c.id] = min(at for at, _ in kept)
                memory.extend((at, c.id, point, c.rule.text, t) for at, t in kept)
            memory = heapq.nlargest(count, memory, key=lambda m: m[0])
            await anyio.lowlevel.checkpoint()
        if rule is not None and not ids:
            raise ValueError(f"no rule '{printable(rule)}' is loaded{_closest(rule, rules)}")
    # One rule id: the store's index finds its rows. A point key: every row is looked at.
    if engine is not None:
        by_id = ids[0] if rule is not None and len(ids) == 1 else None
    else:
        by_id = rule if rule is not None and ":" in rule else None
    # Only stored firings newer than memory's `count`-th newest can make the answer.
    newer_than = memory[-1][0] if len(memory) >= count else None
    stored = await anyio.to_thread.run_sync(
        _read_store, path, rule, by_id, oldest, count, newer_than
    )
    merged = [_entry(rid, point, text, at, t.as_dict()) for at, rid, point, text, t in memory]
    merged += stored
    merged.sort(key=lambda e: e["time"], reverse=True)
    return {
        "rule": rule,
        "limit": count,
        "engine": engine is not None,
        "traces": merged[:count],
    }


def _closest(rule: str, rules: list[Any]) -> str:
    """``; did you mean ...?`` (not with over MAX_SUGGEST rules: too slow for the loop)."""
    if len(rules) > MAX_SUGGEST:
        return ""
    names = {}
    for c in rules:
        names[c.id] = c.id
        names[point_key(c.id)] = c.id
    close = difflib.get_close_matches(rule[:200], list(names), n=1)
    return f"; did you mean {names[close[0]]!r}?" if close else ""


def _read_store(
    path: Path,
    rule: str | None,
    by_id: str | None,
    oldest: dict[str, float],
    count: int,
    newer_than: float | None,
) -> list[dict[str, Any]]:
    """The newest `count` stored firings not also in memory (a rule's firings at or after
    the oldest one memory holds are there) and not older than `newer_than` (memory has
    `count` newer ones already), newest first. Runs in a worker thread; rows are read
    lazily, so a store of 200,000 firings costs only the rows that can make the answer."""
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
    try:
        if by_id is not None:
            rows = db.execute(
                "SELECT rule, text, time, trace FROM traces WHERE rule = ? ORDER BY seq DESC",
                (by_id,),
            )
        else:
            rows = db.execute("SELECT rule, text, time, trace FROM traces ORDER BY seq DESC")
        for rule_id, text, at, trace in rows:  # read lazily, newest first
            if newer_than is not None and at < newer_than:
                break  # (seq order is time order, unless the clock was set back)
            if rule_id in oldest and at >= oldest[rule_id]:
                continue
            key = point_key(rule_id)
            if rule is not None and not _matches(rule, rule_id, POINT_PREFIX + key):
                continue
            try:
                data = json.loads(trace)
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(_entry(rule_id, POINT_PREFIX + key, text, at, data))
                if len(out) >= count:
                    break
    except sqlite3.Error as exc:  # a store being created or replaced: its fault, not ours
        raise RuntimeError(f"cannot read the traces store {path}: {exc}") from None
    finally:
        db.close()
    return out


async def rules(host: Any) -> dict[str, Any]:
    """Every rule the running engine has loaded: id, point, text, firings and skips counted
    since the start, whether it runs now, why it is disabled (a runaway), and its last
    firing's time. Empty (``engine: false``) when no engine runs."""
    from . import engine_of

    engine = engine_of(host)
    if engine is None:
        return {"engine": False, "rules": []}
    items = []
    for n, c in enumerate(_loaded(engine)):
        if n % CHUNK == CHUNK - 1:
            await anyio.lowlevel.checkpoint()
        kept = c.traces
        items.append(
            {
                "rule": c.id,
                "point": c.point.name if c.point is not None else None,
                "text": c.rule.text,
                "fired": c.fired,
                "skipped": c.skipped,
                "running": c.running,
                "disabled": c.disabled,
                "last_fired": max((at for at, _ in kept), default=None),
            }
        )
    return {"engine": True, "rules": items}
