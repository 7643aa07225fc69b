"""Telling systemd how the host is doing (``Type=notify`` units), without a dependency.

The protocol is a few ``KEY=value`` lines in one datagram to the unix socket named by
``NOTIFY_SOCKET`` (sd_notify(3)); libsystemd or a PyPI wrapper would add a dependency for
these few lines. Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import anyio

log = logging.getLogger("ioplex.systemd")


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. ``"READY=1"``); return whether a notify socket took it."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.debug("cannot notify systemd (%s): %s", address, exc)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Half the watchdog period systemd asked for (``WATCHDOG_USEC``), in seconds, or None.

    ``WATCHDOG_PID``, when set, must name this process (sd_watchdog_enabled(3)).
    """
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 2_000_000)
    except ValueError:
        return None


async def feed_watchdog(interval: float) -> None:
    """Send ``WATCHDOG=1`` every `interval` seconds until cancelled: the event loop is alive."""
    while True:
        notify("WATCHDOG=1")
        await anyio.sleep(interval)
