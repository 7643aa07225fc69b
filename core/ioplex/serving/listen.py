"""Listen addresses: ``host:port`` as operators write them in a config file."""

from __future__ import annotations

import ipaddress


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8443"``, ``"[::1]:9598"``, ``"0.0.0.0:0"`` → (host, port).

    Port 0 asks the system for a free port. Raises ValueError saying what is wrong, without
    a config path: the caller knows where the text came from and prefixes it.
    """
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f'{text!r}: write an IPv6 address in brackets, e.g. "[::1]:9598"')
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f'{text!r} is not host:port (e.g. "127.0.0.1:9598", "0.0.0.0:443", '
            '"[::]:8443"; port 0 picks a free one)'
        )
    return host, int(port)


def format_listen(host: str, port: int) -> str:
    """The inverse of `parse_listen`: IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
