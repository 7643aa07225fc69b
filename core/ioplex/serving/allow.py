"""Allow-lists of client addresses, and the network prefix a client is counted under."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

IPV6_PREFIX = 64
"""Clients are counted per /64 over IPv6: one subscriber line or host holds a whole /64, so
counting single addresses would let it try 2**64 times."""


def parse_address(text: str | None) -> Address | None:
    """A client address as a socket reports it, or None when it is not an IP address.

    An IPv4 address mapped into IPv6 (``::ffff:192.0.2.1``, from a dual-stack socket) is
    taken as the IPv4 address, and an IPv6 zone (``%eth0``) is dropped.
    """
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_prefix(text: str | None) -> str:
    """The key a client is counted under: its IPv4 address (/32) or its IPv6 /64."""
    address = parse_address(text)
    if address is None:
        return text or "?"
    if address.version == 6:
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


class AllowList:
    """The client addresses a server accepts: addresses, networks, or ``"*"`` for any.

    ::

        allow = AllowList.parse(["127.0.0.1", "10.0.0.0/8"], "plugins.x.allow")
        allow.allows("10.1.2.3")        # True
    """

    def __init__(self, networks: Iterable[Network] | None) -> None:
        self.networks: tuple[Network, ...] | None = None if networks is None else tuple(networks)
        """The allowed networks; None when any address is allowed."""

    @classmethod
    def parse(cls, entries: str | Iterable[str], where: str) -> AllowList:
        """From config entries (one string or a list); ValueError naming `where` and the
        entry. An empty list or ``"*"`` anywhere allows any address."""
        if isinstance(entries, str):
            entries = [entries]
        networks: list[Network] = []
        for i, entry in enumerate(entries):
            text = entry.strip() if isinstance(entry, str) else entry
            if text == "*":
                return cls(None)
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except (ValueError, TypeError):
                raise ValueError(
                    f"{where}[{i}]: {entry!r} is not an IP address or network "
                    '(e.g. "192.168.1.10", "10.0.0.0/8", "::1", or "*" for any)'
                ) from None
        return cls(networks or None)

    @property
    def any(self) -> bool:
        return self.networks is None

    def allows(self, client: str | None) -> bool:
        """Whether the client address (as the socket reports it) is allowed."""
        if self.networks is None:
            return True
        address = parse_address(client)
        return address is not None and any(address in net for net in self.networks)

    def __repr__(self) -> str:
        return (
            "AllowList(*)"
            if self.networks is None
            else f"AllowList({list(map(str, self.networks))})"
        )
