"""Finding, reading and checking events files: everything a reload must get right before
the engine swaps rules.

A file with any problem (syntax, an unknown point's instance, a value a point can never take,
DAY without a site position) is rejected whole, with every problem at file:line:column.
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ioplex import PointTypeError

from . import syntax as s
from .language import Diagnostic, RulesError, parse_lines
from .values import convert

MAX_FILE_BYTES = 16 * 1024 * 1024
"""The largest events file read (a bigger one is an error, not a memory spike)."""


def find_files(patterns: Iterable[str], base_dir: Path) -> list[Path]:
    """Every file matching the glob patterns (relative to `base_dir`), sorted, no repeats."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        full = os.path.join(base_dir, os.path.expanduser(pattern))
        for name in sorted(glob.glob(full, recursive=True)):
            path = Path(name)
            if path.is_file():
                found.setdefault(path.resolve(), None)
    return list(found)


def display_name(path: Path, base_dir: Path) -> str:
    try:
        relative = os.path.relpath(path, base_dir)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def read_rules(path: Path, base_dir: Path) -> list[s.Rule]:
    """Parse one events file; raise `RulesError` with every syntax problem."""
    rules, problems = parse_file(path, base_dir)
    if problems:
        raise RulesError(problems)
    return rules


def parse_file(path: Path, base_dir: Path) -> tuple[list[s.Rule], list[Diagnostic]]:
    """The rules of one events file that parse, and the problems of the rest."""
    name = display_name(path, base_dir)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return [], [Diagnostic(name, 0, 0, f"cannot read: {exc.strerror or exc}")]
    if len(data) > MAX_FILE_BYTES:
        return [], [Diagnostic(name, 0, 0, f"larger than {MAX_FILE_BYTES} bytes")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [Diagnostic(name, line, 1, f"not UTF-8 (byte {data[exc.start]:#04x})")]
    return parse_lines(text, name)  # (each rule's id is name:line)


@dataclass
class Context:
    """What references are checked against."""

    instances: Collection[str]
    """The host's I/O server instance names."""
    points: Mapping[str, Any] | None = None
    """The data points when the host runs (None for ``ioplex events check``)."""
    has_site: bool = False
    """Whether ``[host] latitude`` and ``longitude`` are set (DAY and NIGHT need them)."""


def _point_problem(name: str, ctx: Context) -> str | None:
    if ctx.points is not None and name in ctx.points:
        return None
    instance = name.partition(".")[0]
    if "." in name and instance in ctx.instances:
        return None  # it may be declared later (discovery, a command family)
    msg = f"unknown point {name!r}: there is no I/O server {instance!r}"
    close = difflib.get_close_matches(instance, list(ctx.instances), n=1)
    if close:
        msg += f"; did you mean {close[0] + name[len(instance) :]!r}?"
    elif ctx.points is not None and len(ctx.points) <= 20000:
        near = difflib.get_close_matches(name, list(ctx.points), n=1)
        if near:
            msg += f"; did you mean {near[0]!r}?"
    return msg


def check_rule(rule: s.Rule, ctx: Context) -> list[Diagnostic]:
    """Reference and type problems of one parsed rule."""
    problems: list[Diagnostic] = []

    def add(node: s.Node, message: str) -> None:
        problems.append(Diagnostic(rule.file, rule.line, node.column, message))

    def check_value(node: s.Value) -> None:
        if isinstance(node, s.PointRef) and node.namespace == "io":
            msg = _point_problem(node.name, ctx)
            if msg:
                add(node, msg)

    for atom in s.atoms(rule.event):
        if isinstance(atom, s.PointEvent):
            if atom.namespace == "io":
                msg = _point_problem(atom.name, ctx)
                if msg:
                    add(atom, msg)
            if atom.value is not None:
                check_value(atom.value)
                if isinstance(atom.value, s.EventRef):
                    add(atom.value, "%event is only known in actions")
        elif isinstance(atom, s.SunEvent) and not ctx.has_site:
            add(
                atom,
                f"{atom.kind.upper()} needs the site's position: set [host] latitude and longitude",
            )
    vscp_trigger = any(isinstance(a, s.VscpEvent) for a in s.atoms(rule.event))
    for action in rule.actions:
        for value in s.values(action):
            check_value(value)
            if isinstance(value, s.EventRef) and not vscp_trigger:
                add(value, "%event needs a VSCP event in the rule's trigger")
        if isinstance(action, s.WriteAction) and action.namespace == "io":
            for name in action.names:
                msg = _point_problem(name, ctx)
                if msg:
                    add(action, msg)
                    continue
                point = ctx.points.get(name) if ctx.points is not None else None
                if point is None:
                    continue
                if not point.writable:
                    add(action, f"{name} is read-only")
                elif isinstance(action.value, s.Literal):
                    try:
                        convert(name, action.value.value, point.type)
                    except PointTypeError as exc:
                        add(action.value, str(exc))
        elif isinstance(action, s.VscpAction) and action.instance not in ctx.instances:
            close = difflib.get_close_matches(action.instance, list(ctx.instances), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            add(action, f"VSCP SEND names no I/O server {action.instance!r}{hint}")
    return problems


def load_file(path: Path, base_dir: Path, ctx: Context) -> list[s.Rule]:
    """Parse and check one events file; raise `RulesError` listing every problem."""
    rules, problems = parse_file(path, base_dir)
    problems += [p for rule in rules for p in check_rule(rule, ctx)]
    if problems:
        problems.sort(key=lambda d: (d.line, d.column))
        raise RulesError(problems)
    return rules
