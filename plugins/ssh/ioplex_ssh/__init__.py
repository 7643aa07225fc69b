"""ioplex plugin `ssh`: remote commands and SCP transfers driven by data points, over SSH.

One SSH-2 connection per I/O server instance (asyncssh), a new session per command,
commands run one at a time in the order written. See README.md for the points and options.
"""

from __future__ import annotations

from typing import Any

import ioplex

from .driver import SSHDriver

__all__ = ["SSHDriver", "register_ioserver_types"]


@ioplex.hookimpl
def register_ioserver_types(register: Any) -> None:
    register("ssh", SSHDriver, ioplex.load_schema(__package__),
             "remote commands and SCP file transfers over SSH")
