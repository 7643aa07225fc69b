"""Data logger replication: feeding local loggers from the remote's, via the kernel.

For each remote logger id in the ``dataloggers`` option, the local logger ``<name>.<id>``
(or ``<id>``, per ``dataloggersnameprefix``) is registered with the kernel as fed by this
instance. The kernel then calls the driver's `replicate` hook every
``dataloggerspollinterval`` seconds with its persistent high-water mark and stores the rows
idempotently, so there is no gap and no duplicate across restarts and outages, as long as the
remote still holds the rows. The local logger is defined like any other (``[loggers.<id>]``),
with its own levels and retention.
"""

from __future__ import annotations

from typing import Any

from ioplex import FatalError, IOServer


def remote_ids(option: str | list[str]) -> list[str]:
    """``"a; b;c"`` or ``["a", "b"]`` → ``["a", "b", "c"]`` (HSYCO separates by ";")."""
    items = option.split(";") if isinstance(option, str) else option
    ids: list[str] = []
    for item in items:
        item = item.strip()
        if item and item not in ids:
            ids.append(item)
    return ids


class Feeds:
    """The local loggers this instance feeds, by remote logger id."""

    def __init__(self, ioserver: IOServer, options: dict[str, Any], where: str) -> None:
        self.local: dict[str, str] = {}
        ids = remote_ids(options["dataloggers"])
        if not ids:
            return
        loggers = getattr(ioserver.host, "loggers", None)
        if loggers is None or not hasattr(loggers, "add_feed"):
            raise FatalError(f"{where}.options.dataloggers: this ioplex has no data loggers "
                             "to replicate into (ioplex with host.loggers is needed)")
        prefix = options["dataloggersnameprefix"]
        for remote_id in ids:
            local_id = f"{ioserver.name}.{remote_id}" if prefix else remote_id
            try:
                loggers.add_feed(local_id, ioserver.name, remote_id,
                                 options["dataloggerspollinterval"])
            except Exception as exc:  # an undefined local logger, a bad interval
                raise FatalError(f"{where}.options.dataloggers: {remote_id!r}: {exc}") from None
            self.local[remote_id] = local_id
