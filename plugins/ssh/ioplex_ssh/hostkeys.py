"""Deciding whether to trust an SSH server's host key, from an OpenSSH known_hosts file.

No key is ever accepted silently: a server with no entry in the file is refused unless
trust-on-first-use is on (then its key is pinned into the file), and a server whose key
differs from the pinned one is always refused. The refusal says how to accept the key and
shows its fingerprint, so an operator can check it out of band. asyncssh does the matching
(hashed names, patterns, markers), but only as OpenSSH does it: for a port other than 22
only ``[host]:port`` entries count (asyncssh would fall back to plain ``host`` entries, which
OpenSSH never does). This module adds that, the pinning and the messages asyncssh cannot give,
because its own error does not carry the offered key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

DEFAULT_PORT = 22


def host_pattern(address: str, port: int) -> str:
    """How known_hosts names `address`:`port` (``[host]:port`` unless the port is 22)."""
    return address if port == DEFAULT_PORT else f"[{address}]:{port}"


def key_line(address: str, port: int, key: asyncssh.SSHKey) -> str:
    """The known_hosts line that trusts `key` for `address`:`port`."""
    public = key.export_public_key("openssh").decode("ascii").split()
    return f"{host_pattern(address, port)} {public[0]} {public[1]}"


@dataclass
class Verdict:
    """What happened to the key a server offered during one connection attempt."""

    key: asyncssh.SSHKey
    outcome: str
    """``pinned`` (trusted on first use), ``unknown`` or ``changed`` (both refused)."""
    trusted: list[asyncssh.SSHKey]
    """The keys known_hosts holds for this server."""


class HostKeyCheck:
    """The host key policy of one I/O server instance.

    `known_hosts()` is handed to asyncssh, which accepts the keys it lists by itself and
    asks `decide` about any other key.
    """

    def __init__(
        self,
        path: Path,
        trust_on_first_use: bool,
        address: str,
        port: int,
        where: str,
        on_pinned: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.path = path
        self.on_pinned = on_pinned
        """Told (a log line) when a key is trusted on first use."""
        self.trust_on_first_use = trust_on_first_use
        self.address = address
        self.port = port
        self.where = where
        """The config path of the instance, for messages (``ioservers.ssh``)."""
        self.verdict: Verdict | None = None
        self._entries: asyncssh.SSHKnownHosts | None = None

    def known_hosts(self) -> Callable[[str, str, int | None], Any]:
        """The file's entries, read afresh for each connection attempt (absent file: none),
        as the matching function asyncssh takes for ``known_hosts``."""
        self.verdict = None
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise OSError(
                f"cannot read known_hosts file {str(self.path)!r} "
                f"({self.where}.options.known_hosts): {exc.strerror}"
            ) from None
        try:
            self._entries = asyncssh.import_known_hosts(text)
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise ValueError(
                f"known_hosts file {str(self.path)!r} ({self.where}.options.known_hosts) "
                f"is not in OpenSSH format: {exc}"
            ) from None
        return self.match

    def match(self, host: str, addr: str, port: int | None) -> tuple[list[Any], ...]:
        """The (host keys, CA keys, revoked keys) known_hosts lists for the server, matched
        as OpenSSH does: a port other than 22 matches only ``[host]:port`` entries."""
        entries = self._entries if self._entries is not None else asyncssh.import_known_hosts("")
        if port in (None, DEFAULT_PORT):
            found = entries.match(host, addr, None)[:3]
        else:
            # asyncssh wraps names as [name]:port itself but then retries without the port;
            # matching the wrapped names with no port leaves that fallback out
            found = tuple([] for _ in range(3))
            for name in dict.fromkeys(n for n in (host, addr) if n):
                for got, more in zip(
                    found, entries.match(f"[{name}]:{port}", "", None)[:3], strict=False
                ):
                    got.extend(more)
        return tuple(_unique(keys) for keys in found)

    def decide(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Called by asyncssh for a key known_hosts does not list: pin it or refuse it."""
        trusted = self.match(host, addr, port)[0]
        if trusted:
            self.verdict = Verdict(key, "changed", trusted)
            return False
        if not self.trust_on_first_use:
            self.verdict = Verdict(key, "unknown", trusted)
            return False
        self._pin(key)
        self.verdict = Verdict(key, "pinned", trusted)
        self.on_pinned(
            f"trusted the host key of {self.address}:{self.port} on first use: "
            f"{key.algorithm.decode()} {key.get_fingerprint('sha256')}, pinned in "
            f"{str(self.path)!r} ({self.where}.options.trust_on_first_use)"
        )
        return True

    def _pin(self, key: asyncssh.SSHKey) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = key_line(self.address, self.port, key) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size:
                with open(self.path, "rb") as existing:
                    existing.seek(-1, os.SEEK_END)
                    if existing.read(1) != b"\n":
                        line = "\n" + line
            os.write(fd, line.encode("ascii"))
        finally:
            os.close(fd)

    def refusal(self, reason: str) -> str:
        """The message for a refused key: what was offered, what is trusted, how to accept."""
        server = f"{self.address}:{self.port}"
        option = f"{self.where}.options"
        verdict = self.verdict
        if verdict is None:  # asyncssh refused for its own reasons (a revoked key, a bad CA)
            return f"host key of {server} refused: {reason} (known_hosts file {str(self.path)!r})"
        offered = f"{verdict.key.algorithm.decode()} {verdict.key.get_fingerprint('sha256')}"
        line = key_line(self.address, self.port, verdict.key)
        if verdict.outcome == "changed":
            pinned = ", ".join(
                f"{k.algorithm.decode()} {k.get_fingerprint('sha256')}" for k in verdict.trusted
            )
            return (
                f"host key of {server} HAS CHANGED: {str(self.path)!r} trusts {pinned}, but the "
                f"server offered {offered}. This can be an attack, or the server was reinstalled. "
                f"If the change is expected, replace the old entry: run "
                f"`ssh-keygen -R '{host_pattern(self.address, self.port)}' -f {self.path}` and add "
                f"the line `{line}` to that file (or set {option}.trust_on_first_use = true once)"
            )
        return (
            f"host key of {server} is not trusted: known_hosts file {str(self.path)!r} has no "
            f"entry for it; the server offered {offered}. To accept it, check that fingerprint "
            f"with the server's administrator, then add the line `{line}` to that file, or set "
            f"{option}.trust_on_first_use = true to pin the key on the next connection"
        )


def _unique(keys: list[Any]) -> list[Any]:
    """`keys` without repeats (a host name and an address can match the same line)."""
    seen: set[bytes] = set()
    unique = []
    for key in keys:
        data = key.public_data if hasattr(key, "public_data") else repr(key).encode()
        if data not in seen:
            seen.add(data)
            unique.append(key)
    return unique
