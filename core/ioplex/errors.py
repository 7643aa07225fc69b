"""The exceptions ioplex raises and the ones drivers raise to steer the supervisor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class IoplexError(Exception):
    """Base class of every error ioplex raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration: where (a dotted path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(IoplexError):
    """The configuration is invalid. Carries *every* problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + str(p) for p in self.problems)


class FatalError(IoplexError):
    """Raised by a driver when retrying cannot help: bad configuration or credentials.

    The supervisor reports it once and leaves that I/O server stopped; the others keep running.
    """


class Refused(IoplexError):
    """Raised by a driver when the peer refuses this host (credentials, an address not
    allowed): retrying soon cannot help, but the other side may be fixed while the host runs
    (a password rotated, an account unlocked, a server restarted with its old settings).

    The supervisor retries slowly, every `[host] restart_max_delay` seconds, and logs it once
    per ten minutes, instead of stopping the instance for good: it heals without a restart.
    """


class PointError(IoplexError):
    """Base class for errors about one point."""


class PointNameError(PointError, ValueError):
    """A point name or pattern is malformed, or a name is declared twice."""


class UnknownPointError(PointError, KeyError):
    """No point has this name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ReadOnlyPointError(PointError):
    """The point exists but cannot be written."""


class PointTypeError(PointError, TypeError):
    """The value's type does not fit the point."""


class WriteError(PointError):
    """The owning I/O server refused or failed a write."""
