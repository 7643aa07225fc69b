"""ioplex plugin `postgres`: this host's data-logger history shipped to PostgreSQL.

``[plugins.postgres] dsn = {env = "IOPLEX_PG_DSN"}`` starts the shipping service
(`Shipper`): raw samples exactly once (the high-water mark per host and logger lives in
PostgreSQL and moves in the transaction that adds the rows), consolidated intervals upserted,
the raw table partitioned by time with an optional retention. Many hosts can ship into one
database; README.md describes the tables.
"""

from __future__ import annotations

import fnmatch
import weakref
from typing import Any

import ioplex
import psycopg
from ioplex.loggers import parse_duration

from .shipper import Shipper, ShippingError, StoreMismatch, describe_dsn

PLUGIN = "postgres"
_SHIPPERS: weakref.WeakKeyDictionary[Any, Shipper] = weakref.WeakKeyDictionary()


def shipper_of(host: Any) -> Shipper | None:
    """The shipper running in `host`, if any: its `status()` says where shipping stands."""
    return _SHIPPERS.get(host)


@ioplex.hookimpl
def plugin_settings_schema() -> dict[str, Any]:
    return ioplex.load_schema(__package__, "settings.schema.json")


@ioplex.hookimpl
def check_config(settings: dict[str, Any], loggers: dict[str, Any]) -> list[ioplex.Problem]:
    """The DSN's syntax (without showing it), the retention, and logger names that name no
    logger."""
    problems = []
    if settings["dsn"]:
        try:
            psycopg.conninfo.conninfo_to_dict(settings["dsn"])
        except psycopg.ProgrammingError:
            problems.append(
                ioplex.Problem(
                    "plugins.postgres.dsn",
                    "not a valid libpq connection string or URI (value not shown: it may hold a "
                    'password); expected e.g. "postgresql://user:password@host:5432/dbname" '
                    'or "host=... dbname=... user=..."',
                )
            )
    try:
        parse_duration(settings["retention"])
    except ValueError as exc:
        problems.append(ioplex.Problem("plugins.postgres.retention", str(exc)))
    for i, pattern in enumerate(settings["loggers"]):
        if not any(ch in pattern for ch in "*?[") and pattern not in (loggers or {}):
            near = [lid for lid in (loggers or {}) if fnmatch.fnmatchcase(lid, pattern + "*")]
            problems.append(
                ioplex.Problem(
                    f"plugins.postgres.loggers[{i}]",
                    f"{pattern!r} names no data logger; defined: "
                    f"{', '.join(sorted(loggers or {})) or 'none'}"
                    + (f"; did you mean {near[0]!r}?" if near else ""),
                )
            )
    return problems


@ioplex.hookimpl
async def serve(host: Any, settings: dict[str, Any]) -> None:
    """Ship for the life of the host (nothing when no dsn is set). Failures raise, so the
    host's supervisor retries with backoff and shows ``system.plugins.postgres``."""
    if not settings["dsn"]:
        return
    shipper = _SHIPPERS.get(host)
    if shipper is None or shipper.settings != settings:
        shipper = Shipper(host, settings)
        _SHIPPERS[host] = shipper
    await shipper.run()


__all__ = ["Shipper", "ShippingError", "StoreMismatch", "describe_dsn", "shipper_of"]
