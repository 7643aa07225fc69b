"""Listen addresses: ``host:port`` as operators write them in a config file."""

from __future__ import annotations

import ipaddress
import socket


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


def bind_tcp(host: str, port: int, where: str, backlog: int = 128) -> socket.socket:
    """A listening, non-blocking TCP socket on (`host`, `port`), for servers that accept
    their connections themselves (`accept_sockets`). OSError names `where` (the config path
    of the listen setting); EADDRINUSE there is retried slowly by the supervisor.

    The socket is made with ``IPPROTO_TCP`` explicitly: asyncio sets TCP_NODELAY on accepted
    sockets only when the protocol says TCP, and without it Nagle's algorithm adds ~40 ms to
    small answers.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {format_listen(host, port)} ({where}): {exc.strerror}"
        ) from None
    return sock
