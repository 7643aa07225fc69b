"""Commands from the configuration: polled read-only points and on/off switches.

``[[ioservers.<name>.options.commands]]`` rows, in the style of Home Assistant's
``command_line`` sensors and switches and Mango's SSH data source: each row is a point
``<name>.<id>`` whose value comes from a command run every `interval` seconds in the
instance's one sequential queue, its output turned into a typed value by a parse rule. A row
with ``command_on``/``command_off`` is a writable switch whose state comes from
``command_state``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ioplex import Problem

PARSE_TYPES = {"text": str, "number": float, "int": int, "bool": bool, "json": None, "regex": str}
"""The parse rules and the type of the point each gives (json: whatever the key holds)."""

RESERVED = ("connection", "exec", "out", "err", "get", "put", "user", "password")
"""Ids of the built-in points; a command row may not take them (nor ``exec.*``)."""

TRUE_WORDS = frozenset({"1", "true", "on", "yes", "enabled", "active", "up"})
FALSE_WORDS = frozenset({"0", "false", "off", "no", "disabled", "inactive", "down"})

MAX_PARSED_TEXT = 4096
"""Characters of a text value kept for a polled point."""


class ParseError(ValueError):
    """The output of a command does not give a value under its parse rule."""


@dataclass(frozen=True)
class CommandSpec:
    """One validated ``options.commands`` row."""

    id: str
    where: str
    """Its config path, ``ioservers.ssh.options.commands[3]``, for messages."""
    command: str
    """What is polled: the row's command, or a switch's command_state ("" for none: the
    switch then reads back what was last switched)."""
    interval: float
    timeout: float | None
    parse: str
    key: tuple[str | int, ...]
    regex: re.Pattern[str] | None
    unit: str
    description: str
    command_on: str
    command_off: str

    @property
    def switch(self) -> bool:
        return bool(self.command_on)

    @property
    def type(self) -> type | None:
        return bool if self.switch else PARSE_TYPES[self.parse]

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"command": self.command}
        if self.unit:
            meta["unit"] = self.unit
        if self.description:
            meta["description"] = self.description
        return meta

    def value(self, output: str) -> Any:
        """The point value that `output` (the command's stdout) gives, or raise ParseError."""
        return parse_output(
            output,
            "bool" if self.switch and self.parse == "text" else self.parse,
            self.key,
            self.regex,
        )


def _key_path(text: str) -> tuple[str | int, ...]:
    """``"a.b.0"`` → ``("a", "b", 0)``: dotted keys, integers index lists."""
    if not text:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in text.split("."))


def parse_specs(rows: list[dict[str, Any]], where: str) -> tuple[list[CommandSpec], list[Problem]]:
    """Check `rows` (the schema already passed); return the good specs and the problems."""
    specs: list[CommandSpec] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        path = f"{where}.options.commands[{i}]"
        id_ = row["id"]
        bad = len(problems)
        if id_ in RESERVED or id_.startswith("exec."):
            problems.append(
                Problem(
                    f"{path}.id",
                    f"{id_!r} is a built-in point of the ssh "
                    f"I/O server ({', '.join(RESERVED)}, exec.*)",
                )
            )
        if id_ in seen:
            problems.append(Problem(f"{path}.id", f"{id_!r} is used by an earlier row"))
        seen.add(id_)
        on, off, state = (
            row.get("command_on", ""),
            row.get("command_off", ""),
            row.get("command_state", ""),
        )
        command = row.get("command", "")
        if bool(on) != bool(off):
            problems.append(Problem(path, "a switch needs both command_on and command_off"))
        if on and command:
            problems.append(
                Problem(
                    f"{path}.command", "a switch reads its state from command_state, not command"
                )
            )
        if not on and state:
            problems.append(
                Problem(
                    f"{path}.command_state",
                    "only a switch (command_on and command_off) has command_state",
                )
            )
        if not on and not command:
            problems.append(
                Problem(
                    path, "needs command (a polled value) or command_on and command_off (a switch)"
                )
            )
        parse = row.get("parse", "text")
        if on and parse not in ("text", "bool", "regex", "json"):
            problems.append(
                Problem(
                    f"{path}.parse",
                    f"a switch's state is a bool; parse {parse!r} does not give one",
                )
            )
        key_text = row.get("key", "")
        if key_text and parse != "json":
            problems.append(Problem(f"{path}.key", 'key is for parse = "json"'))
        pattern_text = row.get("regex", "")
        pattern: re.Pattern[str] | None = None
        if parse == "regex":
            if not pattern_text:
                problems.append(
                    Problem(f"{path}.regex", 'parse = "regex" needs a regex with one group')
                )
            else:
                try:
                    pattern = re.compile(pattern_text)
                except re.error as exc:
                    problems.append(Problem(f"{path}.regex", f"not a regular expression: {exc}"))
                else:
                    if pattern.groups != 1:
                        problems.append(
                            Problem(
                                f"{path}.regex", f"needs exactly one group, has {pattern.groups}"
                            )
                        )
        elif pattern_text:
            problems.append(Problem(f"{path}.regex", 'regex is for parse = "regex"'))
        if len(problems) > bad:
            continue
        specs.append(
            CommandSpec(
                id=id_,
                where=path,
                command=state if on else command,
                interval=float(row["interval"]),
                timeout=float(row["timeout"]) if "timeout" in row else None,
                parse=parse,
                key=_key_path(key_text),
                regex=pattern,
                unit=row.get("unit", ""),
                description=row.get("description", ""),
                command_on=on,
                command_off=off,
            )
        )
    return specs, problems


def parse_output(
    output: str, parse: str, key: tuple[str | int, ...] = (), regex: re.Pattern[str] | None = None
) -> Any:
    """Turn a command's stdout into a value: the documented parse rules, ParseError else."""
    text = output.strip()
    if parse == "text":
        return text[:MAX_PARSED_TEXT]
    if parse == "number":
        try:
            number = float(text)
        except ValueError:
            raise ParseError(f"not a number: {_cut(text)!r}") from None
        if not math.isfinite(number):
            raise ParseError(f"not a finite number: {_cut(text)!r}")
        return number
    if parse == "int":
        if len(text) > 20 or not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ParseError(f"not an integer: {_cut(text)!r}")
        value = int(text)
        if not -(2**63) <= value < 2**63:
            raise ParseError(f"integer out of 64-bit range: {_cut(text)!r}")
        return value
    if parse == "bool":
        word = text.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ParseError(f"not a boolean (true/false, on/off, 1/0, yes/no): {_cut(text)!r}")
    if parse == "json":
        return _json_value(text, key)
    if parse == "regex":
        assert regex is not None
        found = regex.search(output)
        if found is None or found.group(1) is None:
            raise ParseError(f"{regex.pattern!r} does not match {_cut(text)!r}")
        return found.group(1)[:MAX_PARSED_TEXT]
    raise ParseError(f"unknown parse rule {parse!r}")


def _json_value(text: str, key: tuple[str | int, ...]) -> Any:
    try:
        value: Any = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not JSON: {exc}") from None
    for step in key:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            raise ParseError(f"no key {'.'.join(map(str, key))!r} in the JSON output") from None
    if isinstance(value, (dict, list)):
        raise ParseError(
            f"key {'.'.join(map(str, key)) or '(top)'!r} holds a "
            f"{type(value).__name__}, not a value"
        )
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ParseError("integer out of 64-bit range")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParseError("not a finite number")
    if isinstance(value, str):
        value = value[:MAX_PARSED_TEXT]
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
