"""Support for plugin test suites that run real servers (sshd, Mosquitto, PostgreSQL, a
browser...): the Debian package is installed on demand, so a suite runs on a fresh machine
with nothing but root and the package archive.

::

    from ioplex.testing import ensure_debian_package, free_port

    mosquitto = ensure_debian_package("mosquitto", "/usr/sbin/mosquitto")

`small_disk` and `fill_disk` give a test a real full disk (a tmpfs of its own).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLICY_RC = Path("/usr/sbin/policy-rc.d")
"""Debian's hook that decides whether a package's install script may start its service."""
INSTALL_TIMEOUT = 900.0


class PackageUnavailable(RuntimeError):
    """A package a test needs is missing and cannot be installed here (not root, no archive,
    or the package does not provide the program)."""


def _find(binary: str | Path) -> Path | None:
    path = Path(binary)
    if path.is_absolute():
        return path if path.exists() else None
    found = shutil.which(str(binary))
    return Path(found) if found else None


def ensure_debian_package(package: str | list[str], binary: str | Path) -> Path:
    """The path of `binary` (absolute, or a name looked up on PATH), installing the Debian
    `package` (or packages) with apt-get first when it is missing.

    The install runs with a temporary ``policy-rc.d`` that forbids starting services, so a
    package's scripts never start a system-wide daemon on every address of the machine; the
    test starts its own instance, on loopback, in a directory of its own. Raises
    `PackageUnavailable` with what to do when the program cannot be had.
    """
    found = _find(binary)
    if found is not None:
        return found
    packages = [package] if isinstance(package, str) else list(package)
    if os.geteuid() != 0:
        raise PackageUnavailable(
            f"{binary} is missing and this process is not root: run "
            f"`apt-get install -y {' '.join(packages)}` as root first"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    guard = None if POLICY_RC.exists() else POLICY_RC
    if guard is not None:
        guard.write_text("#!/bin/sh\n# written by ioplex.testing during an install\nexit 101\n")
        guard.chmod(0o755)
    try:
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300",
             "--no-install-recommends", *packages],
        ):  # fmt: skip
            try:
                done = subprocess.run(
                    command, check=False, env=env, capture_output=True, text=True,
                    timeout=INSTALL_TIMEOUT,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise PackageUnavailable(f"cannot install {' '.join(packages)}: {exc}") from None
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
                raise PackageUnavailable(
                    f"cannot install {' '.join(packages)}: `{' '.join(command)}` exited with "
                    f"{done.returncode}: " + " / ".join(tail)
                )
    finally:
        if guard is not None:
            guard.unlink(missing_ok=True)
    found = _find(binary)
    if found is None:
        raise PackageUnavailable(f"{' '.join(packages)} is installed but {binary} is not there")
    return found


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports free on `host` at the time of the call (all held open
    until every one is chosen, so none is handed out twice)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` at the time of the call."""
    return free_ports(1, host)[0]


class DiskUnavailable(RuntimeError):
    """A small disk of its own could not be mounted here (not root, or no CAP_SYS_ADMIN)."""


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """Mount a tmpfs of `size` on the (existing, empty) directory `path` for the block, so a
    test can fill it (`fill_disk`) and see what a real full disk does: SQLite and file writes
    fail with ENOSPC, not with a simulated error. Raises `DiskUnavailable` when the machine
    does not allow mounting; unmounted at the end."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise DiskUnavailable(f"cannot mount a tmpfs on {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(path: Path) -> Path:
    """Fill the file system of directory `path` to the last byte; return the file doing it
    (delete it to free the space)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for block in (65536, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler
