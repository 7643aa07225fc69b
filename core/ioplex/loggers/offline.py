"""The data loggers of a configuration file without starting (or even building) its host: what
``ioplex logger list`` and ``ioplex logger export`` read.

Only ``[host] data_dir`` and ``timezone`` and the ``[loggers]`` tables are read and validated,
so an export works on a machine (or in a shell) that has none of the configuration's secrets
and none of its plugins installed: a secret elsewhere in the file (``{env = "KNX_PASSWORD"}``)
is never resolved. A secret in ``data_dir`` itself is resolved, since the database is found
through it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..config import HOST_SCHEMA, ConfigSource, join_path, read, resolve_secrets, validate
from ..errors import ConfigError, Problem
from .service import DataLoggers
from .settings import LoggerSettings, parse

HOST_KEYS = ("data_dir", "timezone")


def loggers_from_config(
    source: ConfigSource, environ: Mapping[str, str] | None = None
) -> DataLoggers:
    """The (not running) `DataLoggers` of a configuration: its settings, its database path
    and its time zones. Raises ConfigError listing every problem of the parts it reads."""
    data, source_name, base_dir = read(source)
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    host = data.get("host", {})
    tables = data.get("loggers", {})
    if not isinstance(host, dict):
        problems.append(Problem("host", f"expected a table, got {host!r}"))
        host = {}
    if not isinstance(tables, dict):
        problems.append(Problem("loggers", f"expected a table, got {tables!r}"))
        tables = {}
    wanted: dict[str, Any] = {k: host[k] for k in HOST_KEYS if k in host}
    wanted, found, secrets = resolve_secrets(wanted, base_dir, environ, "host")
    problems.extend(found)
    host_schema = HOST_SCHEMA["properties"]["host"]
    subset = {
        "type": "object",
        "properties": {k: host_schema["properties"][k] for k in HOST_KEYS},
    }
    if not found:
        problems.extend(validate(wanted, subset, "host", secrets))
    zone = wanted.get("timezone")
    if isinstance(zone, str) and zone != "UTC":
        _, found = parse("host", {"timezone": zone}, "host")
        problems.extend(Problem("host.timezone", p.message) for p in found)
    problems.extend(validate(tables, HOST_SCHEMA["properties"]["loggers"], "loggers"))
    if problems:
        raise ConfigError(problems, source_name)
    settings: dict[str, LoggerSettings] = {}
    for id, table in tables.items():
        parsed, found = parse(id, table, join_path("loggers", id), default_timezone=zone)
        problems.extend(found)
        if parsed is not None:
            settings[id] = parsed
    if problems:
        raise ConfigError(problems, source_name)
    data_dir = base_dir / os.path.expanduser(wanted["data_dir"])
    return DataLoggers(settings, data_dir=data_dir)
