"""Reading and validating the host configuration.

Validation happens before anything starts and reports *every* problem, each with its dotted
path and the offending value: first the host schema (schemas/host.schema.json), then each
I/O server instance against its type's schema and each ``[plugins.<name>]`` table against
the plugin's settings schema. Defaults are filled in from the schemas. Secrets may be written
as ``{env = "VAR"}`` or ``{file = "path"}``; they are resolved first and never shown in
errors.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError

from .errors import ConfigError, IoplexError, Problem
from .points import name_problem, printable

HOST_SCHEMA: dict[str, Any] = json.loads(
    files("ioplex").joinpath("host.schema.json").read_text(encoding="utf-8")
)

ConfigSource = str | os.PathLike[str] | Mapping[str, Any]


# --- the validated configuration ------------------------------------------------------------


@dataclass(frozen=True)
class HostSettings:
    name: str
    data_dir: Path
    allow_set_clock: bool
    clock: str
    restart_delay: float
    restart_max_delay: float
    restart_reset_after: float
    max_string: int = 65536
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None
    """The IANA zone name from ``[host] timezone``; None means the system's (see `zone`)."""

    @property
    def zone(self) -> ZoneInfo | None:
        """The site's time zone; None stands for the system's local zone."""
        return ZoneInfo(self.timezone) if self.timezone else None


@dataclass(frozen=True)
class IOServerConfig:
    """One ``[ioservers.<name>]`` table after validation."""

    name: str
    type: str
    settings: dict[str, Any]
    """Everything in the table but ``plugin`` and ``options``, defaults filled in."""
    options: dict[str, Any]


@dataclass(frozen=True)
class Config:
    host: HostSettings
    ioservers: dict[str, IOServerConfig]
    plugins: dict[str, dict[str, Any]]
    loggers: dict[str, dict[str, Any]]
    source: str | None = None
    base_dir: Path = field(default_factory=Path.cwd)


# --- reading ----------------------------------------------------------------------------------


def read(source: ConfigSource) -> tuple[dict[str, Any], str | None, Path]:
    """Parse a TOML file (or take a mapping); return (data, source name, base directory)."""
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), None, Path.cwd()
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read config: {exc.strerror}")], str(path)) from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; a ValueError, not an OSError
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [Problem("", f"invalid TOML: not UTF-8 at byte {exc.start} (line {line})")], str(path)
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem("", f"invalid TOML: {exc}")], str(path)) from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; nesting
        reason = str(exc).partition("; use sys.set_int_max_str_digits")[0]
        raise ConfigError([Problem("", f"invalid TOML: {reason}")], str(path)) from None
    return data, str(path), path.resolve().parent


SECRET_FORMS = '{ env = "VAR" }, { env = "VAR", default = "value" } or { file = "path" }'


def resolve_secrets(
    data: Any, base_dir: Path, environ: Mapping[str, str], path: str = ""
) -> tuple[Any, list[Problem], list[str]]:
    """Replace ``{env = "VAR"}`` (optionally with ``default``) and ``{file = "path"}`` tables
    by what they name.

    Returns (data, problems, secret values) so the secrets can be masked in messages.
    """
    problems: list[Problem] = []
    secrets: list[str] = []

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            keys = set(node)
            if "env" in keys and isinstance(node["env"], str) and keys <= {"env", "default"}:
                var = node["env"]
                if var in environ:
                    secrets.append(environ[var])
                    return environ[var]
                if "default" in node:
                    return node["default"]
                problems.append(
                    Problem(
                        where,
                        f'environment variable {var!r} is not set (add default = "..." '
                        "to the table to fall back to a value)",
                    )
                )
                return None
            if keys == {"file"} and isinstance(node["file"], str):
                file = base_dir / os.path.expanduser(node["file"])
                try:
                    value = file.read_text(encoding="utf-8").rstrip("\r\n")
                except OSError as exc:
                    problems.append(
                        Problem(where, f"cannot read secret file {str(file)!r}: {exc.strerror}")
                    )
                    return None
                secrets.append(value)
                return value
            if keys & {"env", "file"} and keys <= {"env", "file", "default"} | keys:
                extra = sorted(keys - {"env", "file", "default"})
                problems.append(
                    Problem(
                        where,
                        "not a valid secret table"
                        + (f" (unexpected key {', '.join(map(repr, extra))})" if extra else "")
                        + f"; write {SECRET_FORMS}",
                    )
                )
                return None
            return {k: walk(v, join_path(where, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        return node

    return walk(data, path), problems, [s for s in secrets if s]


# --- schema helpers ----------------------------------------------------------------------------

_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


def join_path(base: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    key = str(key)
    part = key if _KEY_RE.fullmatch(key) else json.dumps(key)
    return f"{base}.{part}" if base else part


def _fill_defaults(validator_class: type) -> type:
    """A validator that also sets each missing property's default (jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_Filler = _fill_defaults(Draft202012Validator)


def check_plugin_schema(schema: Any, where: str) -> None:
    """Raise IoplexError unless `schema` is a usable JSON Schema (2020-12) for a table."""
    if not isinstance(schema, dict):
        raise IoplexError(f"{where}: schema must be a JSON object, got {type(schema).__name__}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise IoplexError(f"{where}: invalid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        raise IoplexError(f"{where}: schema must be an object with additionalProperties: false")


def validate(
    instance: Any, schema: dict[str, Any], path: str, secrets: Iterable[str] = ()
) -> list[Problem]:
    """Validate `instance` in place, filling defaults when it is valid; return the problems."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    problems: list[Problem] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        problems.extend(_describe(error, path))
    if not problems:
        _Filler(schema).validate(instance)
    return [_mask(p, secrets) for p in problems]


def _describe(error: ValidationError, base: str) -> list[Problem]:
    where = base
    for key in error.absolute_path:
        where = join_path(where, key)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        what = "option" if where.endswith("options") else "key"
        problems = []
        for key in error.instance:
            if key in known or any(p.search(key) for p in patterns):
                continue
            hint = difflib.get_close_matches(key, known, n=1)
            if hint:
                msg = f"unknown {what} {key!r}; did you mean {hint[0]!r}?"
            elif known:
                msg = f"unknown {what} {key!r}; expected one of: {', '.join(known)}"
            else:
                msg = f"unknown {what} {key!r}; this table takes none"
            problems.append(Problem(join_path(where, key), msg))
        return problems
    if error.validator == "pattern" and isinstance(error.instance, str):
        words = _pattern_in_words(error.validator_value, error.instance)
        if words:
            return [Problem(where, words)]
    if error.schema.get("writeOnly") if isinstance(error.schema, dict) else False:
        return [Problem(where, f"invalid secret value (not shown): fails {error.validator!r}")]
    return [Problem(where, error.message)]


_NAME_PATTERN = "^[A-Za-z0-9_-]+$"
_POINT_ID_PATTERNS = {"^[^\\s.*?\\[\\]]+(\\.[^\\s.*?\\[\\]]+)*$"}


def _pattern_in_words(pattern: str, value: str) -> str | None:
    """Say in words why `value` fails one of the kernel's own patterns (None for others)."""
    shown = printable(value)
    if pattern == _NAME_PATTERN:
        return f"'{shown}' is not a valid name: use letters, digits, '_' and '-' only"
    if pattern in _POINT_ID_PATTERNS:
        why = name_problem(value, "name")
        return f"'{shown}' is not a valid point id: it {why or 'is malformed'}"
    return None


def _mask(problem: Problem, secrets: Iterable[str]) -> Problem:
    """Hide every secret that appears in the message as a whole value.

    Messages quote values (jsonschema with repr, ours with repr or JSON), so a secret is
    masked where it stands quoted, or where it is the whole message. A bare substring is left
    alone: masking ``one`` inside ``'LINE' is not one of [...]`` would mangle the message and,
    worse, tell the reader what the secret is.
    """
    message = problem.message
    for secret in secrets:
        if not secret:
            continue
        if message == secret:
            message = "***"
            continue
        for quoted in {repr(secret), json.dumps(secret), json.dumps(secret, ensure_ascii=False)}:
            if quoted in message:
                message = message.replace(quoted, "'***'")
    return Problem(problem.path, message) if message != problem.message else problem


def _writeonly_values(instance: Any, schema: Any) -> list[str]:
    """The values of properties marked writeOnly, to be masked in messages."""
    found: list[str] = []
    if isinstance(instance, dict) and isinstance(schema, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                if (
                    isinstance(sub, dict)
                    and sub.get("writeOnly")
                    and isinstance(instance[key], str)
                ):
                    found.append(instance[key])
                found.extend(_writeonly_values(instance[key], sub))
    return found


# --- the whole configuration -----------------------------------------------------------------

LoggerValidator = Callable[[dict[str, Any], "Config"], list[Problem]]


def load(
    source: ConfigSource,
    plugins: Any,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read and validate a configuration against the host schema and `plugins`' schemas.

    Raises ConfigError listing every problem; nothing is created or started.
    """
    data, source_name, base_dir = read(source)
    environ = os.environ if environ is None else environ
    data, problems, secrets = resolve_secrets(data, base_dir, environ)
    # Every section is checked in one pass, so one mistake never hides the others. A table
    # whose secret could not be resolved is not checked again against its schema.
    unresolved = {p.path for p in problems}
    # Every secret seen is masked in every problem at the end, whichever check quoted it (an
    # unknown type named by {env = ...}, a plugin's own check_config, a logger check).
    hidden = list(secrets)

    def keep(found: list[Problem]) -> list[Problem]:
        return [p for p in found if p.path not in unresolved]

    outline = validate(data, HOST_SCHEMA, "", secrets)
    problems.extend(keep(outline))
    tables = data if isinstance(data, dict) else {}
    declared = tables.get("ioservers", {})
    declared = declared if isinstance(declared, dict) else {}
    plugin_tables = tables.get("plugins", {})
    plugin_tables = plugin_tables if isinstance(plugin_tables, dict) else {}
    before_sections = len(problems)
    ioservers: dict[str, IOServerConfig] = {}
    seen: dict[str, str] = {}
    for name, table in declared.items():
        where = join_path("ioservers", name)
        if not isinstance(table, dict) or not isinstance(table.get("plugin"), str):
            continue  # reported by the host schema
        if name.lower() in seen:
            problems.append(
                Problem(
                    where,
                    f"duplicate I/O server name: {seen[name.lower()]!r} is already "
                    "defined (names are compared without case)",
                )
            )
            continue
        seen[name.lower()] = name
        type_name = table["plugin"]
        iotype = plugins.types.get(type_name)
        if iotype is None:
            problems.append(Problem(join_path(where, "plugin"), _unknown_type(type_name, plugins)))
            continue
        body = {k: v for k, v in table.items() if k != "plugin"}
        secrets_here = secrets + _writeonly_values(body, iotype.schema)
        hidden.extend(secrets_here[len(secrets) :])
        found = keep(validate(body, iotype.schema, where, secrets_here))
        if found:
            problems.extend(found)
            continue
        options = body.pop("options", {})
        ioservers[name] = IOServerConfig(name, type_name, body, options)

    plugin_settings: dict[str, dict[str, Any]] = {}
    for name in plugin_tables:
        if name not in plugins.info:
            hint = difflib.get_close_matches(name, list(plugins.info), n=1)
            problems.append(
                Problem(
                    join_path("plugins", name),
                    f"unknown plugin {name!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "; see `ioplex plugins`"),
                )
            )
    for name in plugins.info:
        table = plugin_tables.get(name, {})
        if not isinstance(table, dict):
            continue  # reported by the host schema
        schema = plugins.settings_schema(name)
        if schema is None:
            if table:
                problems.append(
                    Problem(join_path("plugins", name), f"plugin {name!r} takes no settings")
                )
            continue
        secrets_here = secrets + _writeonly_values(table, schema)
        hidden.extend(secrets_here[len(secrets) :])
        problems.extend(keep(validate(table, schema, join_path("plugins", name), secrets_here)))
        plugin_settings[name] = table

    if len(problems) == before_sections:  # the plugins' own tables are valid: check deeper
        loggers = tables.get("loggers", {})
        host_table = tables.get("host", {})
        problems.extend(
            plugins.check_config(
                plugin_settings,
                ioservers,
                base_dir,
                loggers if isinstance(loggers, dict) else {},
                host_table if isinstance(host_table, dict) else {},
            )
        )
    if outline or problems:
        raise ConfigError([_mask(p, hidden) for p in problems], source_name)

    h = data["host"]
    host = HostSettings(
        name=h["name"],
        data_dir=Path(os.path.normpath(base_dir / os.path.expanduser(h["data_dir"]))),
        allow_set_clock=h["allow_set_clock"],
        clock=h["clock"],
        restart_delay=float(h["restart_delay"]),
        restart_max_delay=float(h["restart_max_delay"]),
        restart_reset_after=float(h["restart_reset_after"]),
        max_string=int(h["max_string"]),
        latitude=h.get("latitude"),
        longitude=h.get("longitude"),
        timezone=h.get("timezone"),
    )
    if host.timezone:
        try:
            host.zone  # noqa: B018 - loading the zone is the check
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                Problem(
                    "host.timezone",
                    f"unknown time zone {host.timezone!r}; use an IANA name such as "
                    '"Europe/Rome" or "UTC"',
                )
            )
    config = Config(host, ioservers, plugin_settings, data["loggers"], source_name, base_dir)
    for check in LOGGER_VALIDATORS:
        problems.extend(check(data["loggers"], config))
    if problems:
        raise ConfigError([_mask(p, hidden) for p in problems], source_name)
    return config


LOGGER_VALIDATORS: list[LoggerValidator] = []
"""Checks of the ``[loggers]`` tables, run after the rest (registered by ioplex.loggers)."""


def _unknown_type(type_name: str, plugins: Any) -> str:
    known = sorted(plugins.types)
    hint = difflib.get_close_matches(type_name, known, n=1)
    msg = f"unknown I/O server type {type_name!r}"
    failed = [p for p in plugins.failed if p.name == type_name]
    if failed:
        return msg + f": plugin {type_name!r} failed to load ({failed[0].error})"
    if hint:
        return msg + f"; did you mean {hint[0]!r}?"
    return msg + f"; installed types: {', '.join(known) or 'none'} (see `ioplex plugins`)"
