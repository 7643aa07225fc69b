"""Data logger replication: feeding local loggers from the remote's, via the kernel.

For each remote logger id in the ``dataloggers`` option, the local logger ``<name>.<id>``
(or ``<id>``, per ``dataloggersnameprefix``) is registered with the kernel as fed by this
instance. The kernel then calls the driver's `replicate` hook every
``dataloggerspollinterval`` seconds with its persistent high-water mark and stores the rows
idempotently, so there is no gap and no duplicate across restarts and outages, as long as the
remote still holds the rows. The local logger is defined like any other (``[loggers.<id>]``),
with its own levels and retention; `check_feeds` reports a missing one at validation time
(``ioplex check``), not when the mirror runs.

A replaced or restored remote database is noticed by its identity (the ``store`` of the
samples answer, returned to the kernel as `ioplex.ReplicatedRows`): the kernel then copies it
again from its beginning, skipping what it already holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ioplex import FatalError, IoplexError, IOServer, Point, Problem

TYPE = "hsyco_remote"


def remote_ids(option: str | list[str]) -> list[str]:
    """``"a; b;c"`` or ``["a", "b"]`` → ``["a", "b", "c"]`` (HSYCO separates by ";")."""
    items = option.split(";") if isinstance(option, str) else option
    ids: list[str] = []
    for item in items:
        item = item.strip()
        if item and item not in ids:
            ids.append(item)
    return ids


def local_ids(name: str, options: dict[str, Any]) -> dict[str, str]:
    """Remote logger id → local logger id, per ``dataloggersnameprefix``."""
    prefix = options["dataloggersnameprefix"]
    return {r: f"{name}.{r}" if prefix else r for r in remote_ids(options["dataloggers"])}


def check_feeds(loggers: dict[str, Any], ioservers: dict[str, Any]) -> list[Problem]:
    """Every remote logger an hsyco_remote instance replicates has its local
    ``[loggers.<id>]`` table (run by the plugin's check_config)."""
    problems = []
    for name, io in ioservers.items():
        if io.type != TYPE:
            continue
        for remote_id, local_id in local_ids(name, io.options).items():
            if local_id not in loggers:
                key = (
                    local_id
                    if local_id.replace("_", "").replace("-", "").isalnum()
                    else f'"{local_id}"'
                )
                problems.append(
                    Problem(
                        f"ioservers.{name}.options.dataloggers",
                        f"{remote_id!r} is replicated into the local data logger {local_id!r}, "
                        f"which is not defined: add a [loggers.{key}] table (its own points = [], "
                        "levels and retention)",
                    )
                )
    return problems


def record_aligned(host: Any, points: Iterable[Point]) -> int:
    """Record the values of a quiet alignment in the local loggers that record them.

    ``startupevents = false`` gates events, not history: an alignment made without events
    would otherwise never reach the loggers (a value that never changes would be recorded
    only as "bad" at stop). Each sample is recorded explicitly with `DataLogger.record`,
    as if the point had changed, so nobody else sees an event. Returns the samples queued.
    """
    loggers = getattr(host, "loggers", None)
    if not loggers:
        return 0
    names = {p.name for p in points}
    if not names:
        return 0
    recorded = 0
    for logger in loggers.values():
        if not logger.points:
            continue
        for point in host.points.match(*logger.points):
            if point.name in names:
                logger.record(point.name, point.value, quality=point.quality)
                recorded += 1
    return recorded


class Feeds:
    """The local loggers this instance feeds, by remote logger id."""

    def __init__(self, ioserver: IOServer, options: dict[str, Any], where: str) -> None:
        self.local: dict[str, str] = {}
        ids = remote_ids(options["dataloggers"])
        if not ids:
            return
        loggers = getattr(ioserver.host, "loggers", None)
        if loggers is None or not hasattr(loggers, "add_feed"):
            raise FatalError(
                f"{where}.options.dataloggers: this ioplex has no data loggers "
                "to replicate into (ioplex with host.loggers is needed)"
            )
        for remote_id, local_id in local_ids(ioserver.name, options).items():
            try:
                loggers.add_feed(
                    local_id, ioserver.name, remote_id, options["dataloggerspollinterval"]
                )
            except (IoplexError, ValueError) as exc:  # an undefined local logger
                raise FatalError(f"{where}.options.dataloggers: {remote_id!r}: {exc}") from None
            self.local[remote_id] = local_id
