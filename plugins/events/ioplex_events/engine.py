"""The rules engine: rules indexed by what they name, evaluated on each trigger, actions run
under a per-rule policy, schedules and program timers that survive restarts and clock jumps.

How a rule fires (HSYCO's semantics, made precise):

- A trigger is one thing that happened: a change of a point (``IO``/``UI``), a ``TIME``, a
  program timer's expiry, ``START``, ``INIT``, a VSCP event, a sun change. Only the rules
  that name it are looked at (`index`), so a change costs the same with 10 or 10,000 rules
  that do not name its point.
- Transient atoms (``IO name``, ``TIME``, ``TIMER``...) are true only for the trigger that
  is them; conditions (``IO name > 5``, ``DAY``) are true while they hold. A rule fires when
  its expression is true for a trigger and was false just before: a condition fires when
  it *becomes* true, a transient every time it happens (unless the rest of the rule was
  already true without it).
- Quality gating: a condition on a point whose quality is not good (or that does not exist
  yet) is *unknown*: an unknown expression never fires and does not change what the rule
  remembers, so a link that drops and comes back fires nothing unless a value really moved
  while it was down. A change to a bad quality, and the return to good with the same
  value, are not ``IO name`` events.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import itertools
import json
import logging
import re
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from ioplex import PointTypeError, Quality, UnknownPointError
from ioplex.points import INT_MAX, INT_MIN, describe_value
from ioplex.serving import RateLimitedLog

from . import syntax as s
from .calendar import Sun, next_occurrence, previous_occurrence, site_zone
from .language import RulesError
from .loader import Context, find_files, load_file
from .store import Store, database_path
from .values import compare, convert
from .vscp import event_part, vscp_matches

log = logging.getLogger("ioplex.plugin.events")

GOOD = Quality.GOOD
MODES = ("single", "queued", "restart", "parallel")
CAUSE_WINDOW = 2.0
"""Seconds a write by a rule is remembered as the cause of the change it brings back
(for runaway detection)."""
STORE_RETRY = 5
"""Seconds between attempts to write the events database again after a failure."""
JUMP_TOLERANCE = 2.0
"""A wall clock that moved this many seconds more or less than the monotonic clock jumped."""
MAX_TRACES_STORED = 2_000
"""Most traces written to SQLite per second: rules that fired beyond it stay marked and
are stored at the next flushes (their last `trace_size` firings, from memory), so a burst
costs a bounded amount of disk and CPU a second and loses only firings that `trace_size`
would have pruned anyway."""
TRACE_SLICE = 20
"""Traces encoded as JSON per turn of the event loop. The encoding runs on the loop in
slices, not in the writer thread: a thread running Python holds the GIL for up to 5 ms at
a time, and every change arriving meanwhile would wait that long (the p99 latency)."""
WORKERS = 16
"""Firings whose actions run at once (a slow action, such as a write to a remote that
takes seconds, holds one worker)."""
MAX_READY = 100_000
"""Most firings waiting for a worker; more are skipped (logged, traced)."""
POINT_PREFIX = "events"
Trigger = tuple[Any, ...] | None
SYNC_ACTIONS = (s.WriteAction, s.TimerAction, s.LogAction)
"""Actions that may complete at once (a write only to a point no I/O server owns)."""


def subscription_patterns(names: set[str] | list[str]) -> list[str]:
    """The registry patterns that deliver the changes of `names` and of no other point:
    each name exactly (escaped). The registry matches exact names with one set lookup, so
    10,000 of them cost a point no more than one; a whole-server pattern (``name.*``) would
    queue every change of that server for the engine to throw away (most of the changes,
    on a host where rules name one point in ten)."""
    return [glob.escape(name) for name in sorted(names)]


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "rules"


@dataclass(eq=False, slots=True)
class Compiled:
    """A rule as the engine runs it. `waiting`, `scopes` and `traces` are an empty tuple
    until first needed (three empty containers would double the memory of a rule)."""

    rule: s.Rule
    eval: Callable[[Trigger], bool | None]
    keys: tuple[tuple[Any, ...], ...]
    has_transient: bool
    # The fields a firing reads, next to each other (fewer cache lines to fetch per rule).
    simple: bool = False
    """The rule's event is one ``IO name`` / ``UI name`` (no value): it fires on every
    change of that point with a good quality, and its state is always false."""
    sync: bool = False
    """Every action is a write, a timer or a log: it may run at once (`Engine._fire_now`)."""
    disabled: str | None = None
    running: int = 0
    stamp: int = -1
    plan: tuple | None = None
    """The actions with the points they read and write resolved (`Engine._resolve`), valid
    while `stamp` is the registries' (no point declared or removed since)."""
    traces: deque | tuple = ()
    unstored: int = 0
    """Traces not stored yet (see `Engine.unstored`)."""
    fired: int = 0
    point: Any = None
    state: bool | None = None
    waiting: deque | tuple = ()
    scopes: set | tuple = ()
    skipped: int = 0
    id: str = ""
    """``file:line`` (set by `Engine.compile`)."""
    texts: tuple[str, ...] = ()
    """Each action's source text, for traces and logs."""


class Trace:
    """One firing as traces keep it: read as a mapping (``trace["status"]``), stored as
    JSON by `as_dict`. The trigger and the actions are described only when read, not on
    each firing: `outcomes` is None when every action of `texts` went well, else one
    result per action run ("ok" or "error: ...")."""

    __slots__ = ("_outcomes", "_texts", "_trigger", "status")

    def __init__(
        self, trigger: Trigger, texts: tuple[str, ...], outcomes: list[str] | None, status: str
    ) -> None:
        self._trigger = trigger
        self._texts = texts
        self._outcomes = outcomes
        self.status = status

    @property
    def actions(self) -> list[list[str]]:
        """``[action text, result]`` of each action run."""
        if self._outcomes is None:
            return [[text, "ok"] for text in self._texts]
        return [[text, outcome] for text, outcome in zip(self._texts, self._outcomes, strict=False)]

    def __getitem__(self, key: str) -> Any:
        if key == "trigger":
            return describe_trigger(self._trigger)
        if key in ("actions", "status"):
            return getattr(self, key)
        raise KeyError(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": describe_trigger(self._trigger),
            "actions": self.actions,
            "status": self.status,
        }

    def json(self) -> str:
        """``json.dumps(self.as_dict())``, the same text, made faster for the traces stored
        every second: the actions of a firing whose every action went well are encoded
        once per rule."""
        if self._outcomes is None:
            actions = _all_ok(self._texts)
        else:
            actions = json.dumps(self.actions)
        trigger = json.dumps(describe_trigger(self._trigger))
        return (
            f'{{"trigger": {trigger}, "actions": {actions}, "status": {json.dumps(self.status)}}}'
        )


@functools.lru_cache(maxsize=4096)
def _all_ok(texts: tuple[str, ...]) -> str:
    return json.dumps([[text, "ok"] for text in texts])


class Traces(deque):
    """A rule's last firings, oldest first, read as ``(time, Trace)`` pairs. Kept as plain
    ``(time, trigger, outcomes, status)`` tuples: a firing makes one tuple, the `Trace` is
    made when read."""

    __slots__ = ("texts",)

    def __init__(self, size: int, texts: tuple[str, ...]) -> None:
        super().__init__(maxlen=size)
        self.texts = texts

    def _pair(self, raw: tuple) -> tuple[float, Trace]:
        return raw[0], Trace(raw[1], self.texts, raw[2], raw[3])

    def __getitem__(self, index: int) -> tuple[float, Trace]:  # type: ignore[override]
        return self._pair(super().__getitem__(index))

    def __iter__(self) -> Iterator[tuple[float, Trace]]:  # type: ignore[override]
        return map(self._pair, super().__iter__())

    def last(self, count: int) -> list[tuple]:
        """The last `count` firings as kept (plain tuples)."""
        return list(itertools.islice(super().__iter__(), len(self) - count, None))


@dataclass(slots=True)
class Firing:
    rule: Compiled
    trigger: Trigger
    depth: int
    time: float
    chain: tuple[str, ...] = ()
    """The rules whose writes caused this firing, this one last; empty for a firing no
    rule caused (the common case: no tuple made per firing), see `ids`."""

    def ids(self) -> tuple[str, ...]:
        """The chain of rule ids that led to this firing, this one included."""
        return self.chain or (self.rule.id,)


class Schedule:
    """One ``TIME`` event and the rules that name it."""

    def __init__(self, event: s.TimeEvent) -> None:
        self.event = event
        self.key = event.key
        self.last_key: str | None = None
        self.next_at: float | None = None
        self.next_key: str | None = None


class Engine:
    """The rules of one host. Create it, `load` the files, then run `run` in a task."""

    def __init__(self, host: Any, settings: dict[str, Any]) -> None:
        self.host = host
        self.settings = settings
        self.base_dir = Path(getattr(host.config, "base_dir", Path.cwd()))
        hs = host.config.host
        self.zone = site_zone(getattr(hs, "zone", None))
        lat, lon = getattr(hs, "latitude", None), getattr(hs, "longitude", None)
        self.sun = Sun(lat, lon, self.zone) if lat is not None and lon is not None else None
        self.mode = settings["mode"]
        self.max_queued = settings["max_queued"]
        self.max_parallel = settings["max_parallel"]
        self.runaway_depth = settings["runaway_depth"]
        self.catch_up = settings["catch_up"]
        self.trace_size = settings["trace_size"]
        self.store = Store(database_path(host.data_dir))
        self.files: dict[Path, list[Compiled]] = {}
        self.sources: dict[Path, bytes] = {}
        self.errors: dict[Path, RulesError] = {}
        self.index: dict[tuple[Any, ...], list[Compiled]] = {}
        self.named: dict[str, set[str]] = {"io": set(), "ui": set()}
        """The point names rules name, by namespace (the keys of `index`, for a quick test)."""
        self.by_name: dict[str, dict[str, tuple[list[Compiled], tuple[str, str], bool]]]
        self.by_name = {"io": {}, "ui": {}}
        """What a change of a point needs, by namespace and name, in one lookup: the rules
        naming it, its `index` key, whether a condition or value reads it from `view`."""
        self.schedules: dict[str, Schedule] = {}
        self.sun_offsets: set[tuple[int, int]] = set()
        self.sun_state: dict[tuple[str, int], bool] = {}
        self.sun_next = 0.0
        self.timers: dict[str, list[Any]] = {}  # name -> [monotonic deadline, period]
        self.causes: dict[tuple[str, str], tuple[int, float, tuple[str, ...]]] = {}
        self.bad: set[tuple[str, str]] = set()
        self.view: dict[tuple[str, str], tuple[Any, Any]] = {}
        """The values of the points rules name, as of the change being handled: a burst
        of changes is evaluated in order, not against the registry's latest values."""
        self.unstored: deque[Compiled] = deque()
        """Rules with traces not stored yet (oldest marked first; how many: `unstored` of
        each rule, so a firing touches no dict)."""
        self.dropped_traces = 0
        """Traces never stored: their rule fired more than `trace_size` times between two
        stores of its traces."""
        self.subs: dict[str, Any] = {"io": None, "ui": None}
        self.registries = (host.points, host.ui)
        self.tg: TaskGroup | None = None
        self.wake = anyio.Event()
        self.loaded = anyio.Event()
        self.rlog = RateLimitedLog(log, 60.0)
        self.points_ok = POINT_PREFIX not in host.ioservers
        self.runaways = 0
        self.firings = 0
        """Firings started since the engine started."""
        self.active = 0
        self.ready: deque[Firing] = deque()
        self.deferred: tuple[list, list] | None = None
        """While a drain is handled (`on_changes`): the writes of the firings run at once,
        ``(point, value)`` lists of the data points and the UI variables, made as batches
        at its end (`flush_writes`), or before anything reads a point
        (a condition, a value taken from a point written meanwhile, a log, a timer), so
        nothing sees the difference but the registry (one call, not one per firing)."""
        self.deferred_points: dict[Any, None] = {}
        self.drain_stamp: int | None = None
        """`registries_stamp` during a drain, taken again after each registry call the
        engine makes (only those run code that may declare or remove points: listeners),
        so a firing does not compute it."""
        """The points written in `deferred` (a small dict, to test a value's source)."""
        self.fired_points: dict[Compiled, float] = {}
        """Rules whose points to set to their last firing time (`flush_fired`)."""
        self.idle: list[anyio.Event] = []
        """Firings whose actions are running now."""

    # -- loading -----------------------------------------------------------------------------
    def context(self) -> Context:
        return Context(
            instances=set(self.host.ioservers),
            points=self.host.points,
            has_site=self.sun is not None,
        )

    def _load_one(self, path: Path, data: bytes) -> list[s.Rule]:
        return load_file(path, self.base_dir, self.context())

    async def reload(self) -> list[RulesError]:
        """Read every events file again; a file with any problem keeps its previous rules.
        Returns the errors found (also logged, one line per problem)."""
        paths = find_files(self.settings["files"], self.base_dir)
        errors: list[RulesError] = []
        changed: list[Path] = []
        new_files = {p: rules for p, rules in self.files.items() if p in paths}
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            if self.sources.get(path) == data and path in self.files:
                continue
            try:
                rules = await anyio.to_thread.run_sync(self._load_one, path, data)
            except RulesError as exc:
                errors.append(exc)
                self.errors[path] = exc
                kept = "keeps its previous rules" if path in self.files else "is not loaded"
                log.error(
                    "events: %s has %d problem(s) and %s:\n%s",
                    path,
                    len(exc.diagnostics),
                    kept,
                    "\n".join(f"  {d}" for d in exc.diagnostics[:100]),
                )
                continue
            self.errors.pop(path, None)
            self.sources[path] = data
            new_files[path] = [self.compile(rule) for rule in rules]
            changed.append(path)
        removed = [p for p in self.files if p not in new_files]
        for path in removed:
            self.sources.pop(path, None)
        if changed or removed or not self.loaded.is_set():
            self._install(new_files)
            total = sum(len(r) for r in new_files.values())
            log.info("events: %d rules from %d files loaded", total, len(new_files))
            for path in changed:
                self.dispatch(("init", str(path)), ("init",))
        self.loaded.set()
        return errors

    def _install(self, files: dict[Path, list[Compiled]]) -> None:
        """Swap in a new rule set at once (no await: no trigger sees half of it)."""
        old_points = {c.point.name for rules in self.files.values() for c in rules if c.point}
        index: dict[tuple[Any, ...], list[Compiled]] = {}
        schedules: dict[str, Schedule] = {}
        offsets: set[tuple[int, int]] = set()
        for path, rules in files.items():
            for c in rules:
                for key in c.keys:
                    if key[0] == "init":
                        key = ("init", str(path))
                    index.setdefault(key, []).append(c)
                for atom in s.atoms(c.rule.event):
                    if isinstance(atom, s.TimeEvent):
                        schedules.setdefault(
                            atom.key, self.schedules.get(atom.key) or Schedule(atom)
                        )
                    elif isinstance(atom, s.SunEvent):
                        offsets.add(self._offsets(atom))
        # Events queued for the old index are delivered with it before the swap.
        for ns in ("io", "ui"):
            sub = self.subs[ns]
            if sub is not None:
                self.on_changes(ns, sub.drain())
        self.files = files
        self.index = index
        self.named = {ns: {k[1] for k in index if k[0] == ns} for ns in ("io", "ui")}
        self.by_name = self._by_name(files, index)
        self.view.clear()
        self.sun_offsets = offsets
        self.sun_next = 0.0
        self._update_sun(quiet=True)
        for rules in files.values():
            for c in rules:
                c.stamp = -1  # which points a rule's writes remember as causes may change
                if c.state is None:
                    c.state = c.eval(None)
        stored = self.store.schedules()
        for key, sched in schedules.items():
            if key not in self.schedules:
                sched.last_key, sched.next_at = stored.get(key, (None, None))
                if sched.next_at is not None:
                    self._catch_up(sched, sched.next_at - 1, self.host.time(), "while down")
                self._plan(sched, self.host.time())
        self.schedules = schedules
        self._resubscribe()
        self._declare_points(old_points)
        self.flush_fired()
        self.wake.set()

    def _by_name(
        self, files: dict[Path, list[Compiled]], index: dict[tuple[Any, ...], list[Compiled]]
    ) -> dict[str, dict[str, tuple[list[Compiled], tuple[str, str], bool]]]:
        viewed: set[tuple[str, str]] = set()
        for rules in files.values():
            for c in rules:
                for atom in s.atoms(c.rule.event):
                    if isinstance(atom, s.PointEvent):
                        if atom.op is not None:
                            viewed.add((atom.namespace, atom.name))
                        if isinstance(atom.value, s.PointRef):
                            viewed.add((atom.value.namespace, atom.value.name))
        by_name: dict[str, dict] = {"io": {}, "ui": {}}
        for ns, registry in (("io", self.host.points), ("ui", self.host.ui)):
            for key, rules in index.items():
                if key[0] == ns:
                    # Keyed by the registry's own name object where the point exists: the
                    # lookup of a change's name then matches by identity.
                    point = registry.get(key[1])
                    name = point.name if point is not None and point.name == key[1] else key[1]
                    by_name[ns][name] = (rules, key, key in viewed)  # (`index`'s list)
        return by_name

    def _resubscribe(self) -> None:
        for ns, registry in (("io", self.host.points), ("ui", self.host.ui)):
            patterns = subscription_patterns(self.named[ns])
            old = self.subs[ns]
            self.subs[ns] = registry.subscribe(*patterns, maxsize=100_000) if patterns else None
            if old is not None:
                old.close()

    def _declare_points(self, old: set[str]) -> None:
        if not self.points_ok:
            return
        points = self.host.points
        current = set()
        for rules in self.files.values():
            for c in rules:
                name = f"{POINT_PREFIX}.{_sanitize(c.rule.file)}.{c.rule.line}"
                current.add(name)
                point = points.get(name)
                if point is None:
                    point = points.declare(name, None, type=float, quiet=True)
                c.point = point
        for name in old - current:
            if name in points:
                points.remove(name)

    # -- compiling ---------------------------------------------------------------------------
    def _offsets(self, atom: s.SunEvent) -> tuple[int, int]:
        base_rise = self.settings["sunrise_offset"]
        base_set = self.settings["sunset_offset"]
        if atom.kind == "day":
            return base_rise + atom.offset, base_set
        return base_rise, base_set + atom.offset

    def compile(self, rule: s.Rule) -> Compiled:
        keys: set[tuple[Any, ...]] = set()
        transient = [False]
        fn = self._compile(rule.event, keys, transient)
        event = rule.event
        return Compiled(
            rule,
            fn,
            tuple(keys),
            transient[0],
            id=rule.id or f"{rule.file}:{rule.line}",
            texts=tuple(rule.text[a.start : a.end] for a in rule.actions),
            simple=isinstance(event, s.PointEvent) and event.op is None and event.value is None,
            sync=all(a.__class__ in SYNC_ACTIONS for a in rule.actions),
        )

    def _value_fn(self, node: s.Value, keys: set) -> Callable[[], Any]:
        """A function giving a comparison operand, raising LookupError when unknown."""
        if isinstance(node, s.Literal):
            value = node.value
            return lambda: value
        if isinstance(node, s.PointRef):
            registry = self.host.points if node.namespace == "io" else self.host.ui
            name = node.name
            key = (node.namespace, name)
            keys.add(key)
            view = self.view

            def ref() -> Any:
                seen = view.get(key)
                if seen is None:
                    point = registry.get(name)
                    if point is None:
                        raise LookupError(name)
                    seen = (point.value, point.quality)
                if seen[1] is not GOOD:
                    raise LookupError(name)
                return seen[0]

            return ref
        raise LookupError("%event")

    def _compile(self, expr: s.Expr, keys: set, transient: list[bool]) -> Callable:
        if isinstance(expr, s.Not):
            inner = self._compile(expr.operand, keys, transient)

            def not_(t: Trigger) -> bool | None:
                v = inner(t)
                return None if v is None else not v

            return not_
        if isinstance(expr, s.And | s.Or):
            a = self._compile(expr.left, keys, transient)
            b = self._compile(expr.right, keys, transient)
            if isinstance(expr, s.And):

                def and_(t: Trigger) -> bool | None:
                    x = a(t)
                    if x is False:
                        return False
                    y = b(t)
                    if y is False:
                        return False
                    return None if x is None or y is None else True

                return and_

            def or_(t: Trigger) -> bool | None:
                x = a(t)
                if x is True:
                    return True
                y = b(t)
                if y is True:
                    return True
                return None if x is None or y is None else False

            return or_
        if isinstance(expr, s.PointEvent):
            ns, name = expr.namespace, expr.name
            keys.add((ns, name))
            if expr.op is None:
                transient[0] = True
                if expr.value is None:
                    return lambda t: t is not None and t[0] == ns and t[1] == name
                want = self._value_fn(expr.value, keys)

                def user(t: Trigger) -> bool | None:
                    if t is None or t[0] != ns or t[1] != name:
                        return False
                    try:
                        return compare(t[2], "=", want())
                    except LookupError:
                        return None

                return user
            registry = self.host.points if ns == "io" else self.host.ui
            op = expr.op
            rhs = self._value_fn(expr.value, keys)
            key = (ns, name)
            view = self.view

            def condition(t: Trigger) -> bool | None:
                seen = view.get(key)
                if seen is None:
                    point = registry.get(name)
                    if point is None:
                        return None
                    seen = (point.value, point.quality)
                if seen[1] is not GOOD:
                    return None
                try:
                    return compare(seen[0], op, rhs())
                except LookupError:
                    return None

            return condition
        if isinstance(expr, s.TimeEvent):
            transient[0] = True
            key = expr.key
            keys.add(("time", key))
            return lambda t: t is not None and t[0] == "time" and t[1] == key
        if isinstance(expr, s.TimerEvent):
            transient[0] = True
            name = expr.name
            keys.add(("timer", name))
            return lambda t: t is not None and t[0] == "timer" and t[1] == name
        if isinstance(expr, s.SystemEvent):
            transient[0] = True
            kind = expr.kind
            keys.add((kind,))
            return lambda t: t is not None and t[0] == kind
        if isinstance(expr, s.VscpEvent):
            transient[0] = True
            keys.add(("vscp",))
            filt, mask = expr.filter, expr.mask
            return lambda t: t is not None and t[0] == "vscp" and vscp_matches(t[1], filt, mask)
        if isinstance(expr, s.SunEvent):
            keys.add(("sun",))
            offsets = self._offsets(expr)
            kind = expr.kind

            def sun(t: Trigger) -> bool | None:
                day = self.sun_state.get(offsets)
                if day is None:
                    return None
                return day if kind == "day" else not day

            return sun
        raise TypeError(f"unknown event node {expr!r}")

    # -- triggers ----------------------------------------------------------------------------
    def on_change(self, ns: str, event: tuple) -> None:
        """One change from a registry subscription."""
        self.on_changes(ns, (event,))

    def on_changes(self, ns: str, events: Any) -> None:
        """Changes drained from a registry subscription, in order. The hottest loop of the
        engine: one lookup per change finds all it needs (`by_name`), rules made of one
        ``IO name`` skip evaluation, the firings share one clock reading."""
        if self.deferred is not None:  # (called from within a drain: its writes wait)
            self._on_changes(ns, events)
            return
        self.deferred = ([], [])
        self.drain_stamp = self.registries_stamp()
        try:
            self._on_changes(ns, events)
        finally:
            try:
                self.flush_writes()
            finally:
                self.deferred = None
                self.deferred_points.clear()
                self.drain_stamp = None

    def _on_changes(self, ns: str, events: Any) -> None:
        entries = self.by_name[ns]
        view, bad, causes = self.view, self.bad, self.causes
        now = self.host.time()
        for name, value, old, _t, quality in events:
            entry = entries.get(name)
            if entry is None:  # (a change queued before a reload removed its rules)
                continue
            rules, key, viewed = entry
            if viewed:  # conditions see the values as of this change
                view[key] = (value, quality)
            depth, chain = 0, ()
            if causes:
                cause = causes.pop(key, None)
                if cause is not None and time.monotonic() - cause[1] < CAUSE_WINDOW:
                    depth, chain = cause[0], cause[2]
            trigger: Trigger = (ns, name, value)
            if quality is not GOOD:
                bad.add(key)
                trigger = None
            elif bad and key in bad:
                bad.discard(key)
                if value == old:  # back to good with the same value: not an event
                    trigger = None
            for c in rules:
                if not c.simple:
                    self.flush_writes()  # (conditions read the registry)
                    self.consider(c, trigger, depth, chain, now)
                # (`consider` for a rule whose expression is only this change, and `fire`
                # cut short for a firing no rule caused, of a rule not running: no runaway)
                elif (
                    trigger is not None
                    and c.disabled is None
                    and (depth or c.running or not self._fire_now(c, trigger, 1, (), now))
                ):
                    self.fire(c, trigger, depth, chain, now)

    def dispatch(self, key: tuple[Any, ...], trigger: Trigger) -> None:
        for c in self.index.get(key, ()):
            self.consider(c, trigger, 0, ())
        self.flush_fired()

    def on_vscp(self, event: Any) -> None:
        rules = self.index.get(("vscp",))
        if rules:
            trigger = ("vscp", event)
            for c in rules:
                self.consider(c, trigger, 0, ())
            self.flush_fired()

    def consider(
        self, c: Compiled, trigger: Trigger, depth: int, chain: tuple, now: float | None = None
    ) -> None:
        if c.disabled is not None:
            return
        new = c.eval(trigger)
        if new is True and c.state is False:
            self.fire(c, trigger, depth, chain, now)
        state = c.eval(None) if c.has_transient and trigger is not None else new
        if state is not None:
            c.state = state

    # -- firing ------------------------------------------------------------------------------
    def fire(
        self, c: Compiled, trigger: Trigger, depth: int, chain: tuple, now: float | None = None
    ) -> None:
        """Fire `c` for `trigger`, caused by the rules of `chain` (`depth` of them in a row),
        at `now` (the host's time when None)."""
        depth += 1
        if chain:
            chain = (*chain[-(self.runaway_depth + 1) :], c.id)
        if depth > self.runaway_depth:
            self._runaway(c, chain or (c.id,))
            return
        if now is None:
            now = self.host.time()
        if not c.running and self._fire_now(c, trigger, depth, chain, now):
            return  # (`_start` without a Firing made)
        firing = Firing(c, trigger, depth, now, chain)
        if c.running:
            mode = self.mode
            if mode == "single":
                return self._skip(c, firing, "still running (mode single)")
            if mode == "queued":
                if len(c.waiting) >= self.max_queued:
                    return self._skip(c, firing, f"{self.max_queued} firings already queued")
                if not c.waiting:
                    c.waiting = deque()
                c.waiting.append(firing)
                return
            if mode == "restart":
                for scope in list(c.scopes):
                    scope.cancel()
            elif mode == "parallel" and c.running >= self.max_parallel:
                return self._skip(c, firing, f"{self.max_parallel} runs at once already")
        self._start(firing)

    def _start(self, firing: Firing) -> None:
        c = firing.rule
        if not c.running and self._fire_now(
            c, firing.trigger, firing.depth, firing.chain, firing.time
        ):
            return
        c.fired += 1
        self.firings += 1
        c.running += 1
        self.active += 1
        if len(self.ready) >= MAX_READY:
            self.active -= 1
            c.running -= 1
            self._skip(c, firing, f"{MAX_READY} firings of all rules already wait to run")
            return
        self.ready.append(firing)
        if self.idle:
            self.idle.pop().set()

    def _skip(self, c: Compiled, firing: Firing, why: str) -> None:
        c.skipped += 1
        self.rlog.warning(
            f"skip {c.id}",
            "events: %s (%s) not run: %s (%d skipped so far)",
            c.id,
            c.rule.text,
            why,
            c.skipped,
        )
        self._trace(c, firing, [], f"skipped: {why}")

    def _runaway(self, c: Compiled, chain: tuple) -> None:
        self.runaways += 1
        loop = " -> ".join(dict.fromkeys(chain))
        c.disabled = (
            f"stopped as a runaway: it fired {self.runaway_depth} times in a row, each "
            f"caused by a write of the last ({loop}); fix the rule and save its file"
        )
        for scope in list(c.scopes):
            scope.cancel()
        log.error("events: %s: %s", c.rule.where(), c.disabled)
        self._trace(c, Firing(c, None, 0, self.host.time()), [], c.disabled)

    def _resolve(self, c: Compiled) -> tuple | None:
        """`c`'s actions with their points looked up, for `_fire_now`, which then looks up no
        name per firing. One flat tuple of operations (few objects to reach per firing):
        ``(action index, first target of its action, registry, name, point, named, source
        point, literal, %event node)`` per write target (the value is the source point's,
        else the %event part's, else the literal; `named`: a rule names the point written),
        ``(action index, True, None, ...)`` for an action `perform_now` runs (timers, logs).

        None if a point written or read does not exist: the firing then goes through a
        worker, whose error names the point. Valid until a point is declared or removed in
        either registry (their `generation` counters make the `stamp`) or a reload."""
        plan: list[tuple] = []
        for n, action in enumerate(c.rule.actions):
            if action.__class__ is not s.WriteAction:
                plan.append((n, True, None, None, None, False, None, None, None))
                continue
            ns = action.namespace  # type: ignore[attr-defined]
            registry = self.host.points if ns == "io" else self.host.ui
            node = action.value  # type: ignore[attr-defined]
            source, literal, event = None, None, None
            if isinstance(node, s.Literal):
                literal = node.value
            elif isinstance(node, s.PointRef):
                source = (self.host.points if node.namespace == "io" else self.host.ui).get(
                    node.name
                )
                if source is None and node.namespace == "io":
                    return None
            else:
                event = node
            first = True
            for name in action.names:  # type: ignore[attr-defined]
                point = registry.get(name)
                if point is None:
                    return None
                named = name in self.named[ns]
                plan.append((n, first, registry, name, point, named, source, literal, event))
                first = False
        return tuple(plan)

    def _fire_now(
        self, c: Compiled, trigger: Trigger, depth: int, chain: tuple, now: float
    ) -> bool:
        """Run a firing of `c` at once if every action completes without waiting (writes to
        writable points no I/O server owns, UI variables that exist, timers, logs), else
        return False having done nothing. `_run` without a task: no await, so nothing can
        cancel it. (One function, not a check and a run: the hottest path of the engine.)"""
        if not c.sync:
            return False
        points = self.registries[0]
        stamp = self.drain_stamp
        if stamp is None:
            stamp = self.registries_stamp()
        if c.stamp != stamp:
            c.plan = self._resolve(c)
            c.stamp = stamp
        plan = c.plan
        if plan is None:
            return False
        for op in plan:
            point = op[4]
            if point is not None and (point.owner is not None or not point.writable):
                return False
        c.fired += 1
        self.firings += 1
        outcomes: list[str] | None = None  # (every action ok)
        failed = -1
        firing: Firing | None = None  # (made only for actions that need one)
        value: Any = None
        for n, first, registry, name, point, named, source, literal, event in plan:
            if n == failed:
                continue  # (a target of an action that failed already)
            try:
                if first:
                    if registry is None or event is not None:
                        self.flush_writes()  # (what these read or do sees every write)
                        if firing is None:
                            firing = Firing(c, trigger, depth, now, chain)
                        if registry is None:
                            self.perform_now(c, c.rule.actions[n], firing)
                            continue
                        value = self.value(event, firing)
                    elif source is not None:
                        if source in self.deferred_points:
                            self.flush_writes()
                        value = source.value
                    else:
                        value = literal
                type_ = point.type
                converted = value
                if value is not None and type_ is not None and value.__class__ is not type_:
                    converted = convert(name, value, type_)
                if named:
                    self.causes[(registry.kind, name)] = (
                        depth,
                        time.monotonic(),
                        chain or (c.id,),
                    )
                deferred = self.deferred
                cls = converted.__class__
                if deferred is not None and (
                    (cls is int and INT_MIN <= converted <= INT_MAX)  # (`_accepted`, inline
                    or (cls is float and converted - converted == 0.0)  # for numbers)
                    or _accepted(converted, point, registry)
                ):
                    deferred[registry is not points].append((point, converted))
                    self.deferred_points[point] = None
                else:
                    if deferred is not None and (deferred[0] or deferred[1]):
                        self.flush_writes()
                    try:
                        registry.update_many(((point, converted),))
                    finally:
                        if self.drain_stamp is not None:  # (a listener may declare points)
                            self.drain_stamp = self.registries_stamp()
            except Exception as exc:  # noqa: BLE001 - one failed action never stops the others
                failed = n
                message = str(exc) or type(exc).__name__
                if outcomes is None:
                    outcomes = ["ok"] * len(c.texts)
                outcomes[n] = f"error: {message}"
                action = c.rule.actions[n]
                self.rlog.error(
                    f"action {c.id}:{action.start}",
                    "events: %s: %s failed: %s",
                    c.rule.where(action),
                    c.texts[n],
                    message,
                )
        # (`_trace_now`, inline: one call less on every firing)
        traces = c.traces
        if not traces:
            traces = c.traces = Traces(self.trace_size, c.texts)
        traces.append((now, trigger, outcomes, "done"))
        if not c.unstored:
            self.unstored.append(c)
        c.unstored += 1
        self.fired_points[c] = now
        return True

    def flush_writes(self) -> None:
        """Make the writes `deferred` so far: a batch per registry, each in order (the data
        points' first: the two registries' subscribers are told apart anyway)."""
        deferred = self.deferred
        if deferred is None or not (deferred[0] or deferred[1]):
            return
        self.deferred = ([], [])
        self.deferred_points.clear()
        for registry, batch in zip(self.registries, deferred, strict=True):
            if batch:
                try:
                    registry.update_many(batch)
                except PointTypeError as exc:  # (`_accepted` let through only what it stores)
                    self.rlog.error("deferred", "events: a rule's write was refused: %s", exc)
        if self.drain_stamp is not None:  # (a registry listener may have declared points)
            self.drain_stamp = self.registries_stamp()

    def registries_stamp(self) -> int:
        """A number that changes whenever a point is declared or removed in either registry
        (`Registry.generation` of both), for `Compiled.plan`."""
        points, ui = self.registries
        return points.generation << 32 | ui.generation

    def flush_fired(self) -> None:
        """Set the ``events.<file>.<line>`` points of the rules fired since the last call,
        as one batch (one registry call, not one per firing)."""
        if self.fired_points:
            fired, self.fired_points = self.fired_points, {}
            self.host.points.update_many(
                [(c.point, at) for c, at in fired.items() if c.point is not None]
            )

    async def _run(self, firing: Firing) -> None:
        c = firing.rule
        outcomes: list[str] = []
        status = "done"
        try:
            with anyio.CancelScope() as scope:
                if not c.scopes:
                    c.scopes = set()
                c.scopes.add(scope)
                try:
                    for action, text in zip(c.rule.actions, c.texts, strict=True):
                        try:
                            await self.perform(c, action, firing)
                            outcomes.append("ok")
                        except Exception as exc:  # noqa: BLE001 - one failed action never stops the others
                            message = str(exc) or type(exc).__name__
                            outcomes.append(f"error: {message}")
                            self.rlog.error(
                                f"action {c.id}:{action.start}",
                                "events: %s: %s failed: %s",
                                c.rule.where(action),
                                text,
                                message,
                            )
                finally:
                    c.scopes.discard(scope)
            if scope.cancel_called:
                status = "cancelled (restarted or stopped)"
        finally:
            c.running -= 1
            self.active -= 1
            self._trace(c, firing, outcomes, status)
            if c.point is not None:  # (harmless if a reload removed it meanwhile)
                self.fired_points[c] = firing.time
                self.flush_fired()
            if c.waiting and c.disabled is None:
                self._start(c.waiting.popleft())

    def _trace(self, c: Compiled, firing: Firing, outcomes: list[str] | None, status: str) -> None:
        """Keep a firing's trace: `outcomes` as in `Trace`, [] if no action ran."""
        self._trace_now(c, firing.time, firing.trigger, outcomes, status)

    def _trace_now(
        self,
        c: Compiled,
        at: float,
        trigger: Trigger,
        outcomes: list[str] | None,
        status: str = "done",
    ) -> None:
        if not c.traces:
            c.traces = Traces(self.trace_size, c.texts)
        c.traces.append((at, trigger, outcomes, status))
        if not c.unstored:
            self.unstored.append(c)
        c.unstored += 1

    async def perform(self, c: Compiled, action: s.Action, firing: Firing) -> None:
        if isinstance(action, s.WriteAction):
            value = self.value(action.value, firing)
            for name in action.names:
                await self.write(action.namespace, name, value, firing)
        elif isinstance(action, s.VscpAction):
            line = self.value(action.value, firing)
            await self.write("io", f"{action.instance}.event", str(line), firing)
        else:
            self.perform_now(c, action, firing)

    def perform_now(self, c: Compiled, action: s.Action, firing: Firing) -> None:
        """`perform` for an action `_fire_now` runs. A write to a writable point no I/O
        server owns is what `Registry.write` does for it, an `update` (whose value checks
        raise the same PointTypeError), without a coroutine and the checks made already."""
        if action.__class__ is s.WriteAction:
            value = self.value(action.value, firing)  # type: ignore[attr-defined]
            ns = action.namespace  # type: ignore[attr-defined]
            registry = self.host.points if ns == "io" else self.host.ui
            for name in action.names:  # type: ignore[attr-defined]
                point = registry[name]
                converted = convert(name, value, point.type)
                if name in self.named[ns]:
                    self.causes[(ns, name)] = (firing.depth, time.monotonic(), firing.ids())
                registry.update(point, converted)
        elif isinstance(action, s.TimerAction):
            self.set_timer(action.name, action.op, action.seconds)
        elif isinstance(action, s.LogAction):
            log.info("events: %s: %s", c.id, self.value(action.value, firing))
        else:
            raise TypeError(f"{action!r} does not complete at once")

    async def write(self, ns: str, name: str, value: Any, firing: Firing) -> None:
        registry, value = self._before_write(ns, name, value, firing)
        await registry.write(name, value)

    def _before_write(self, ns: str, name: str, value: Any, firing: Firing) -> tuple[Any, Any]:
        """The registry to write `name` in and the value converted to the point's type;
        remembers the firing as the cause of the change, if a rule names the point."""
        registry = self.host.points if ns == "io" else self.host.ui
        point = registry.get(name)
        if point is None and ns == "ui" and registry.declare_on_write(name) is None:
            point = registry.declare(name, None, writable=True, quiet=True)
        value = convert(name, value, point.type if point is not None else None)
        if (ns, name) in self.index:
            self.causes[(ns, name)] = (firing.depth, time.monotonic(), firing.ids())
        return registry, value

    def value(self, node: s.Value, firing: Firing) -> Any:
        if isinstance(node, s.Literal):
            return node.value
        if isinstance(node, s.PointRef):
            registry = self.host.points if node.namespace == "io" else self.host.ui
            point = registry.get(node.name)
            if point is None:
                if node.namespace == "ui":
                    return None
                raise UnknownPointError(registry._unknown(node.name))
            return point.value
        trigger = firing.trigger
        if trigger is None or trigger[0] != "vscp":
            raise LookupError("%event: this firing has no VSCP event")
        return event_part(trigger[1], node.part, node.index)

    # -- timers and schedules ----------------------------------------------------------------
    def set_timer(self, name: str, op: str, seconds: float) -> None:
        if op == "clear":
            self.timers.pop(name, None)
            self.store.clear_timer(name)
            return
        if op == "set" and name in self.timers:
            return  # SET is ignored while the timer runs (HSYCO)
        period = seconds if op == "repeat" else None
        self.timers[name] = [time.monotonic() + seconds, period]
        self.store.set_timer(name, self.host.time() + seconds, period)
        self.wake.set()

    def _timers_to_keep(self) -> dict[str, tuple[float, float | None]]:
        wall, mono = self.host.time(), time.monotonic()
        return {
            name: (wall + (deadline - mono), period)
            for name, (deadline, period) in self.timers.items()
        }

    def _schedules_to_keep(self) -> dict[str, tuple[str | None, float | None]]:
        return {key: (sched.last_key, sched.next_at) for key, sched in self.schedules.items()}

    def restore_timers(self) -> None:
        """Program timers kept from before a restart resume; those that expired while the
        host was down fire once now."""
        now_wall, now = self.host.time(), time.monotonic()
        for name, (deadline, period) in self.store.timers().items():
            self.timers[name] = [now + max(0.0, deadline - now_wall), period]

    def _expire_timers(self) -> float:
        now = time.monotonic()
        soonest = now + 3600.0
        for name, entry in list(self.timers.items()):
            deadline, period = entry
            if deadline <= now:
                if period:
                    entry[0] = deadline + period if deadline + period > now else now + period
                    self.store.set_timer(name, self.host.time() + (entry[0] - now), period)
                else:
                    del self.timers[name]
                    self.store.clear_timer(name)
                self.dispatch(("timer", name), ("timer", name))
            if name in self.timers:
                soonest = min(soonest, self.timers[name][0])
        return soonest - now

    def _plan(self, sched: Schedule, now: float) -> None:
        found = next_occurrence(sched.event, now, self.zone, sched.last_key)
        sched.next_at, sched.next_key = found if found else (None, None)
        self.store.save_schedule(sched.key, sched.last_key, sched.next_at)

    def _fire_schedule(self, sched: Schedule, key: str) -> None:
        sched.last_key = key
        self.dispatch(("time", sched.key), ("time", sched.key))

    def _catch_up(self, sched: Schedule, since: float, now: float, why: str) -> None:
        """Fire once the latest occurrence in (since, now] not fired yet, if it is at most
        `catch_up` seconds old."""
        missed = previous_occurrence(sched.event, now, since, self.zone, sched.last_key)
        if missed is None:
            return
        if now - missed[0] <= self.catch_up:
            log.info("events: TIME %s of %s missed %s: fired now", sched.key, missed[1], why)
            self._fire_schedule(sched, missed[1])
        else:
            log.warning(
                "events: TIME %s of %s missed %s, %.0f s ago (more than catch_up): not fired",
                sched.key,
                missed[1],
                why,
                now - missed[0],
            )
            sched.last_key = missed[1]

    def _run_schedules(self, now: float) -> float:
        soonest = now + 3600.0
        for sched in self.schedules.values():
            if sched.next_at is not None and sched.next_at <= now:
                key = sched.next_key
                assert key is not None
                self._fire_schedule(sched, key)
                self._plan(sched, now)
            if sched.next_at is not None:
                soonest = min(soonest, sched.next_at)
        return soonest - now

    def clock_jumped(self, before: float, now: float) -> None:
        """The wall clock moved from `before` to `now` other than by time passing: re-plan
        every schedule; fire once each time jumped over (forward, up to `catch_up`)."""
        log.warning("events: the clock jumped by %+.1f s; re-planning every schedule", now - before)
        for sched in self.schedules.values():
            if now > before:
                self._catch_up(sched, before, now, "by the jump")
            self._plan(sched, now)
        self.sun_next = 0.0
        self._update_sun()

    def _update_sun(self, quiet: bool = False) -> float:
        if self.sun is None or not self.sun_offsets:
            return 3600.0
        now = self.host.time()
        if now >= self.sun_next:
            changed = False
            for r_off, s_off in self.sun_offsets:
                day = self.sun.is_day(now, r_off, s_off)
                if self.sun_state.get((r_off, s_off)) != day:
                    self.sun_state[(r_off, s_off)] = day
                    changed = True
            self.sun_next = self.sun.next_change(now, self.sun_offsets)
            if changed and not quiet:
                self.dispatch(("sun",), None)
        return self.sun_next - now

    # -- running -----------------------------------------------------------------------------
    async def run(self, *, watch: bool = True) -> None:
        """Run the engine until cancelled: load, START, then serve triggers."""
        async with anyio.create_task_group() as tg:
            self.tg = tg
            try:
                self.restore_timers()
                await self.reload()
                # The schedules were just planned on this wall time: the clock watch starts
                # from it, so a jump before its first look is still seen as one.
                planned_on = (self.host.time(), time.monotonic())
                self.dispatch(("start",), ("start",))
                for n in range(WORKERS):
                    tg.start_soon(self._work, name=f"events worker {n}")
                tg.start_soon(self._read, "io")
                tg.start_soon(self._read, "ui")
                tg.start_soon(self._clock, planned_on)
                tg.start_soon(self._flush_traces)
                if watch:
                    tg.start_soon(self._watch)
                await anyio.sleep_forever()
            finally:
                self.flush_fired()
                self.flush_traces()  # synchronous: runs even while cancelled
                for ns in ("io", "ui"):
                    if self.subs[ns] is not None:
                        self.subs[ns].close()
                        self.subs[ns] = None
                self.store.close()

    async def _work(self) -> None:
        """Run firings from `ready`, one at a time: `WORKERS` of these run actions of
        different rules concurrently, without a task per firing."""
        ready = self.ready
        while True:
            while ready:
                await self._run(ready.popleft())
            wakeup = anyio.Event()
            self.idle.append(wakeup)
            await wakeup.wait()

    async def _read(self, ns: str) -> None:
        while True:
            sub = self.subs[ns]
            if sub is None:
                await anyio.sleep(0.2)
                continue
            await sub.wait()
            if sub is not self.subs[ns]:
                continue
            if sub.dropped:
                self.rlog.warning(
                    f"dropped {ns}",
                    "events: %d changes dropped so far: the engine fell behind",
                    sub.dropped,
                )
            self.on_changes(ns, sub.drain())
            self.flush_fired()
            await anyio.lowlevel.checkpoint()

    async def _clock(self, planned_on: tuple[float, float]) -> None:
        last_wall, last_mono = planned_on
        while True:
            now, mono = self.host.time(), time.monotonic()
            expected = last_wall + (mono - last_mono)
            if abs(now - expected) > JUMP_TOLERANCE:
                self.clock_jumped(expected, now)
            last_wall, last_mono = now, mono
            delay = min(1.0, self._run_schedules(now), self._expire_timers(), self._update_sun())
            self.wake = anyio.Event()
            with anyio.move_on_after(max(0.0, delay)):
                await self.wake.wait()

    async def _flush_traces(self) -> None:
        tick = 0
        while True:
            await anyio.sleep(1.0)
            tick += 1
            if self.store.problem is not None and tick % STORE_RETRY == 0:
                self.store.recover(self._timers_to_keep(), self._schedules_to_keep())
            dropped = self.dropped_traces
            rows = self._unstored_rows(MAX_TRACES_STORED)
            if self.dropped_traces > dropped:
                self.rlog.warning(
                    "traces dropped",
                    "events: %d traces not stored so far (rules "
                    "fired more than trace_size times a second)",
                    self.dropped_traces,
                )
            encoded: list[tuple[str, str, float, str]] = []
            for n in range(0, len(rows), TRACE_SLICE):
                encoded += _encode(rows[n : n + TRACE_SLICE])
                await anyio.lowlevel.checkpoint()
            if encoded:  # written in a worker thread: the event loop never waits on the disk
                await anyio.to_thread.run_sync(self._store_traces, encoded)

    def _unstored_rows(self, limit: int | None) -> list[tuple[str, str, float, Trace]]:
        """The traces to store next (about `limit`, whole rules), unmarking their rules."""
        rows: list[tuple[str, str, float, Trace]] = []
        unstored = self.unstored
        while unstored and (limit is None or len(rows) < limit):
            c = unstored.popleft()
            count, c.unstored = c.unstored, 0
            kept = len(c.traces)
            if count > kept:
                self.dropped_traces += count - kept
                count = kept
            text, texts = c.rule.text, c.texts
            rows.extend(
                (c.id, text, at, Trace(trigger, texts, outcomes, status))
                for at, trigger, outcomes, status in c.traces.last(count)
            )
        return rows

    def flush_traces(self) -> None:
        """Store the traces not stored yet, now (at stop, and for tests)."""
        rows = self._unstored_rows(None)
        if rows:
            self._store_traces(_encode(rows))

    def _store_traces(self, rows: list) -> None:
        try:
            self.store.add_traces(rows, self.trace_size)
        except sqlite3.Error as exc:
            self.rlog.error("traces", "events: cannot store traces: %s", exc)

    async def _watch(self) -> None:
        from watchfiles import awatch

        dirs = {self.base_dir}
        for pattern in self.settings["files"]:
            head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            d = (self.base_dir / head).parent if not head.endswith("/") else self.base_dir / head
            while not d.exists() and d != d.parent:
                d = d.parent
            dirs.add(d)
        watched = [str(d) for d in dirs if d.exists()]
        patterns = [str(self.base_dir / p) for p in self.settings["files"]]

        def rules_file(change: Any, path: str) -> bool:
            # Only the rule files: a data directory beside the config (loggers.db written
            # every second) must not wake the reloader.
            return any(fnmatch.fnmatch(path, p) for p in patterns)

        # rust_timeout bounds how long the watcher's thread takes to notice the host stop.
        async for _changes in awatch(
            *watched,
            watch_filter=rules_file,
            debounce=200,
            step=50,
            recursive=True,
            rust_timeout=500,
        ):
            await self.reload()


def _accepted(value: Any, point: Any, registry: Any) -> bool:
    """Whether `Registry.update_many` surely stores `value` (already of the point's type):
    only such a write is deferred, so one it refuses still fails as that firing's action."""
    cls = value.__class__
    if value is None or cls is bool:
        return True
    if cls is int:
        return INT_MIN <= value <= INT_MAX
    if cls is float:
        return value - value == 0.0 or point.nonfinite
    if cls is str:
        return len(value) <= registry.max_string and value.isascii()
    return False


def _encode(rows: list[tuple[str, str, float, Trace]]) -> list[tuple[str, str, float, str]]:
    return [(rule, text, at, trace.json()) for rule, text, at, trace in rows]


def describe_trigger(trigger: Trigger) -> str:
    if trigger is None:
        return "a condition became true"
    kind = trigger[0]
    if kind in ("io", "ui"):
        return f"{kind.upper()} {trigger[1]} = {describe_value(trigger[2])}"
    if kind == "vscp":
        return f"VSCP {event_part(trigger[1], '', None)}"
    if kind in ("time", "timer"):
        return f"{kind.upper()} {trigger[1]}"
    return kind.upper()
