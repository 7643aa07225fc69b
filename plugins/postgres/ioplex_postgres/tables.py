"""The PostgreSQL tables history is shipped into, and their partitions.

Every name starts with the configured prefix (``ioplex_`` by default):

- ``series``: one row per (host, logger, point), an id the other tables use instead of three
  strings per row;
- ``marks``: per (host, logger, level) how far shipping has gone: the high-water mark, moved
  in the same transaction as the rows it covers;
- ``raw``: the samples, partitioned by range of ``time`` (one partition per day, week or
  month, created when rows first need it), primary key (series, time, seq);
- ``minute`` .. ``month``: the consolidated intervals, primary key (series, time), upserted;
- views ``samples``, ``minutes``, ``hours``, ``days``, ``months`` with the names spelled out.

DDL runs under a transaction-scoped advisory lock, so hosts that start together, or create
the same partition at once, never collide.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from psycopg import sql

SCHEMA_VERSION = 1
LEVEL_VIEWS = {"minute": "minutes", "hour": "hours", "day": "days", "month": "months"}


def lock_key(prefix: str) -> int:
    """The advisory lock id guarding DDL on the tables of `prefix` (stable across hosts)."""
    return zlib.crc32(f"ioplex_postgres:{prefix}".encode()) - 2**31


class Names:
    """Identifiers of one installation's tables."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.prefix + name)

    def partition(self, start: datetime) -> str:
        return f"{self.prefix}raw_{start:%Y%m%d}"


def schema_statements(names: Names) -> list[sql.Composed]:
    """Create what is missing; idempotent."""
    n = names
    statements = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)").format(
            n("meta")
        ),
        sql.SQL("INSERT INTO {} VALUES ('schema_version', {}) ON CONFLICT DO NOTHING").format(
            n("meta"), sql.Literal(str(SCHEMA_VERSION))
        ),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, host text NOT NULL, "
            "logger text NOT NULL, point text NOT NULL, UNIQUE (host, logger, point))"
        ).format(n("series")),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "host text NOT NULL, logger text NOT NULL, level text NOT NULL, "
            "store text NOT NULL, seq bigint NOT NULL DEFAULT 0, "
            "horizon double precision NOT NULL DEFAULT 0, resume double precision, "
            "walking boolean NOT NULL DEFAULT false, "
            "rows bigint NOT NULL DEFAULT 0, updated timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (host, logger, level))"
        ).format(n("marks")),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "series bigint NOT NULL, seq bigint NOT NULL, time timestamptz NOT NULL, "
            "value double precision, quality smallint NOT NULL, "
            "PRIMARY KEY (series, time, seq)) PARTITION BY RANGE (time)"
        ).format(n("raw")),
        sql.SQL(
            "CREATE OR REPLACE VIEW {} AS SELECT s.host, s.logger, s.point, r.seq, r.time, "
            "r.value, r.quality FROM {} r JOIN {} s ON s.id = r.series"
        ).format(n("samples"), n("raw"), n("series")),
    ]
    for level, view in LEVEL_VIEWS.items():
        statements += [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "series bigint NOT NULL, time timestamptz NOT NULL, "
                '"end" timestamptz NOT NULL, count integer NOT NULL, '
                "min double precision, max double precision, avg double precision, "
                "delta double precision, PRIMARY KEY (series, time))"
            ).format(n(level)),
            sql.SQL(
                "CREATE OR REPLACE VIEW {} AS SELECT s.host, s.logger, s.point, t.time, "
                't."end", t.count, t.min, t.max, t.avg, t.delta '
                "FROM {} t JOIN {} s ON s.id = t.series"
            ).format(n(view), n(level), n("series")),
        ]
    return statements


def partition_start(t: float, unit: str) -> datetime:
    """The UTC start of the `unit` (day, week from Monday, month) holding time `t`."""
    day = datetime.fromtimestamp(t, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def partition_end(start: datetime, unit: str) -> datetime:
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def partitions_of(times: Iterable[float], unit: str) -> set[datetime]:
    """The starts of the partitions holding `times`: one calendar computation per partition
    crossed, not per time (samples come in time order, mostly)."""
    found: set[datetime] = set()
    low = high = 0.0
    for t in times:
        if not low <= t < high:
            start = partition_start(t, unit)
            found.add(start)
            low, high = start.timestamp(), partition_end(start, unit).timestamp()
    return found


def create_partition(names: Names, start: datetime, unit: str) -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
    ).format(
        sql.Identifier(names.partition(start)),
        names("raw"),
        sql.Literal(start),
        sql.Literal(partition_end(start, unit)),
    )


LIST_PARTITIONS = (
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
    "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass"
)
"""(name, bound expression) of every partition of the raw table (named by %s)."""
