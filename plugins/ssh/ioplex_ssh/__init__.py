"""ioplex plugin `ssh`: remote commands and SCP transfers driven by data points, over SSH.

One SSH-2 connection per I/O server instance (asyncssh), a new session per command,
commands run one at a time in the order written. See README.md for the points and options.
"""

from __future__ import annotations

import posixpath
from typing import Any

import ioplex

from .driver import CommandResult, SSHDriver
from .polled import parse_specs

__all__ = ["CommandResult", "SSHDriver", "register_ioserver_types", "run"]


@ioplex.hookimpl
def register_ioserver_types(register: Any) -> None:
    register(
        "ssh",
        SSHDriver,
        ioplex.load_schema(__package__),
        "remote commands and SCP file transfers over SSH",
    )


@ioplex.hookimpl
def check_config(ioservers: dict[str, Any]) -> list[ioplex.Problem]:
    """Command rows (parse rules, regexes, switches, ids) and the transfer area."""
    problems: list[ioplex.Problem] = []
    for name, io in ioservers.items():
        where = f"ioservers.{name}"
        problems += parse_specs(io.options["commands"], where)[1]
        files_dir = io.options["files_dir"]
        if posixpath.normpath(files_dir) in (".", "/") or files_dir.startswith(".."):
            problems.append(
                ioplex.Problem(
                    f"{where}.options.files_dir",
                    f"{files_dir!r} would open the data directory (the host's keys, known_hosts "
                    "and databases) or what lies around it to get and put; use a directory of "
                    'its own, such as the default "files"',
                )
            )
    return problems


async def run(
    host: ioplex.Host, ioserver: str, command: str, timeout: float | None = None
) -> CommandResult:
    """Run `command` on the ssh I/O server `ioserver` and return its own result.

    The command takes its turn in the instance's queue like a write to ``<name>.exec``, but
    its result comes back to this caller only (exit status, stdout, stderr, duration), so
    concurrent callers never confuse each other's results; the exec/out/err points are not
    touched. `timeout` (seconds, default ``options.timeout``) bounds the run and the wait for
    a connection. Raises `ioplex.WriteError` when the command cannot be queued.
    """
    io = host.ioservers.get(ioserver)
    if io is None or not isinstance(io.driver, SSHDriver):
        raise ioplex.WriteError(f"{ioserver!r} is not an ssh I/O server of this host")
    return await io.driver.run(command, timeout)
