"""Process limits a server host needs raised."""

from __future__ import annotations

import logging

log = logging.getLogger("ioplex.serving")


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the open-file soft limit to the hard limit; return (soft, hard) after it.

    Many distributions start services with a soft limit of 1,024 (or 256 on some systems)
    and a much higher hard one: every connection, database and log file counts, so a host
    serving many clients meets EMFILE long before it runs out of anything real. None where
    the platform has no such limit.
    """
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # e.g. a container that forbids it
        log.debug("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft, hard
    return target, hard
