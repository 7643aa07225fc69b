"""``[plugins.web]`` checked beyond its JSON Schema: the listen address, the allow-list, the
write policy, the certificate pair, and the rule that a server without users stays on
loopback."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ioplex.points import check_pattern
from ioplex.serving import AllowList, RemoteWrites, parse_listen

WHERE = "plugins.web"


@dataclass(frozen=True)
class User:
    name: str
    password: str
    role: str

    def __repr__(self) -> str:  # never the password
        return f"User({self.name!r}, role={self.role!r})"


@dataclass(frozen=True)
class WebSettings:
    bind_host: str
    port: int
    users: dict[str, User]
    allowed: AllowList
    writes: RemoteWrites
    certificate: Path | None
    key: Path | None
    metrics: bool
    metrics_points: tuple[str, ...]
    max_connections: int
    max_watchers: int
    https_always: bool = False

    @property
    def loopback(self) -> bool:
        return is_loopback(self.bind_host)

    @property
    def tls(self) -> bool:
        """HTTPS everywhere but loopback (or whenever a certificate is configured)."""
        return not self.loopback or self.certificate is not None or self.https_always


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def parse(table: dict[str, Any], base_dir: Path) -> WebSettings:
    """The settings, or ValueError ``"<config path>: <what is wrong>"`` (secrets never shown)."""
    try:
        bind_host, port = parse_listen(table["listen"])
    except ValueError as exc:
        raise ValueError(f"{WHERE}.listen: {exc}") from None
    users: dict[str, User] = {}
    for i, entry in enumerate(table["users"]):
        if entry["name"] in users:
            raise ValueError(f"{WHERE}.users[{i}].name: {entry['name']!r} is listed twice")
        users[entry["name"]] = User(entry["name"], entry["password"], entry.get("role", "read"))
    if not users and not is_loopback(bind_host):
        raise ValueError(
            f"{WHERE}.listen: {table['listen']!r} is not a loopback address; without "
            f"{WHERE}.users the server is read-only for this machine only (add users, or "
            "listen on 127.0.0.1 / [::1])"
        )
    allowed = AllowList.parse(table["allow"], f"{WHERE}.allow")
    writes = RemoteWrites(table["control"], f"{WHERE}.control")
    patterns = tuple(table["metrics_points"])
    for i, pattern in enumerate(patterns):
        try:
            check_pattern(pattern)
        except ValueError as exc:
            raise ValueError(f"{WHERE}.metrics_points[{i}]: {exc}") from None
    cert, key = table["certificate"], table["key"]
    if bool(cert) != bool(key):
        missing, given = ("key", "certificate") if cert else ("certificate", "key")
        raise ValueError(f"{WHERE}.{missing}: required when {given} is set")
    certificate = base_dir / os.path.expanduser(cert) if cert else None
    keyfile = base_dir / os.path.expanduser(key) if key else None
    for name, path in (("certificate", certificate), ("key", keyfile)):
        if path is not None and not path.is_file():
            raise ValueError(f"{WHERE}.{name}: {str(path)!r} is not a readable file")
    return WebSettings(
        bind_host=bind_host,
        port=port,
        users=users,
        allowed=allowed,
        writes=writes,
        certificate=certificate,
        key=keyfile,
        metrics=table["metrics"],
        metrics_points=patterns,
        max_connections=table["max_connections"],
        max_watchers=table["max_watchers"],
        https_always=table["https"] == "always",
    )
