"""Opening the SSH connection of an ssh I/O server, and what its failures mean.

Authentication is by private key (the ``key`` option, or a ``password`` that names a key
file, as HSYCO allows), then keyboard-interactive (answering the password prompt), then
password. Nothing from the host's environment is used: no ``~/.ssh/config``, no default
keys, no agent, so a configuration behaves the same on every machine.

Failures split in three. An unreadable key file, a wrong passphrase and a refused host key
raise `ioplex.FatalError`: only the operator can fix them. A refused login raises
`AuthRefused`: the account may be locked for a while, the password rotated on the server or
PAM not ready at boot, so it is retried, slowly. Everything else (refused, unreachable, timed
out) raises `ConnectFailed` and is retried with backoff. No message contains the password.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncssh
from ioplex import FatalError, IOServer

from .hostkeys import HostKeyCheck

KEEPALIVE_COUNT_MAX = 3
"""Unanswered keepalives after which the connection counts as lost."""

ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
"""Ciphers in order of preference. AES-GCM first: it runs in OpenSSL with AES-NI and is about
twice as fast as asyncssh's ChaCha20-Poly1305 for bulk SCP; the rest keep old servers
reachable."""

PREFERRED_AUTH = "publickey,keyboard-interactive,password"


KEY_FILE_SUFFIXES = (".pem", ".key")
"""A `password` ending so names a key file (HSYCO's PEM option): if the file is missing that
is said, rather than sending the file name to the server as a password."""


class ConnectFailed(Exception):
    """The connection could not be opened, for a reason that retrying may fix."""


class AuthRefused(ConnectFailed):
    """The server refused the login; retried slowly (``options.auth_retry``)."""


def quiet_asyncssh(log_level: int) -> None:
    """asyncssh logs every channel and command at INFO; keep it to warnings unless the host
    itself runs at DEBUG."""
    logging.getLogger("asyncssh").setLevel(
        logging.DEBUG if log_level <= logging.DEBUG else logging.WARNING
    )


@dataclass(frozen=True)
class Credentials:
    """Who to log in as. `password` is a secret: never put it in a message."""

    user: str
    password: str
    user_from: str
    """Where `user` comes from, for messages: a config path or a point name."""
    password_from: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=***)"


class _Client(asyncssh.SSHClient):
    """asyncssh's per-connection callbacks: host key decisions and loss notification."""

    def __init__(self, hostkeys: HostKeyCheck, on_lost: Callable[[Exception | None], None]):
        self._hostkeys = hostkeys
        self._on_lost = on_lost

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return self._hostkeys.decide(host, addr, port, key)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(exc)


class Connector:
    """Opens connections for one I/O server instance with its settings and options."""

    def __init__(self, ioserver: IOServer, on_lost: Callable[[Exception | None], None]) -> None:
        settings, options = ioserver.settings, ioserver.options
        self.where = f"ioservers.{ioserver.name}"
        self.address: str = settings["address"]
        self.port: int = settings["port"]
        self.data_dir = ioserver.data_dir
        self.options = options
        self.on_lost = on_lost
        known_hosts = options["known_hosts"]
        path = self._local(known_hosts) if known_hosts else self.data_dir / "ssh" / "known_hosts"
        self.hostkeys = HostKeyCheck(
            path,
            options["trust_on_first_use"],
            self.address,
            self.port,
            self.where,
            on_pinned=lambda message: ioserver.log.warning(
                "ssh I/O server %r: %s", ioserver.name, message
            ),
        )
        self.protected = [path]
        """Local files the connection depends on (known_hosts, key files): never transferred."""
        if options["key"]:
            self.protected.append(self._local(options["key"]))

    @property
    def server(self) -> str:
        return f"{self.address}:{self.port}"

    def _local(self, name: str) -> Path:
        path = Path(os.path.expanduser(name))
        return path if path.is_absolute() else self.data_dir / path

    # -- credentials ----------------------------------------------------------------------
    def _read_key(self, path: Path, what: str) -> asyncssh.SSHKey:
        passphrase = self.options["passphrase"] or None
        try:
            return asyncssh.read_private_key(str(path), passphrase)
        except OSError as exc:
            raise FatalError(f"cannot read the private key file {what}: {exc.strerror}") from None
        except asyncssh.KeyEncryptionError:
            raise FatalError(
                f"cannot decrypt the private key file {what}: wrong passphrase "
                f"({self.where}.options.passphrase)"
            ) from None
        except asyncssh.KeyImportError as exc:
            raise FatalError(f"cannot use the private key file {what}: {exc}") from None

    def _password_key(self, password: str, origin: str) -> asyncssh.SSHKey | None:
        """The key in the file `password` names, if it names a private key file.

        HSYCO lets the password setting name a PEM file. A password that happens to be the
        name of a file that holds no private key stays a password.
        """
        if not password or len(password) > 4096 or "\n" in password or "\0" in password:
            return None
        path = self._local(password)
        try:
            with path.open("rb") as file:
                head = file.read(64 * 1024)
        except (OSError, ValueError) as exc:
            if password.lower().endswith(KEY_FILE_SUFFIXES) and " " not in password:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise FatalError(
                    f"{origin} names the private key file {str(path)!r}, which cannot be read "
                    f"({why}); relative names are in the data directory {str(self.data_dir)!r}"
                ) from None
            return None
        if b"-----BEGIN" not in head or b"PRIVATE KEY-----" not in head:
            return None
        return self._read_key(path, f"named by {origin}")

    def _auth_args(self, creds: Credentials) -> tuple[dict[str, Any], str]:
        """asyncssh's authentication arguments, and the methods they allow (for messages).

        Blocking (it reads key files, and decrypting one runs a deliberately slow KDF):
        call it in a worker thread.
        """
        keys: list[asyncssh.SSHKey] = []
        methods: list[str] = []
        if self.options["key"]:
            path = self._local(self.options["key"])
            keys.append(self._read_key(path, f"{str(path)!r} ({self.where}.options.key)"))
            methods.append(f"public key ({self.where}.options.key)")
        password: str | None = creds.password or None
        named = self._password_key(creds.password, creds.password_from)
        if named is not None:
            keys.append(named)
            methods.append(f"public key (the file named by {creds.password_from})")
            password = None
        elif password is not None:
            methods.append(f"keyboard-interactive and password ({creds.password_from})")
        args = {
            "username": creds.user,
            "password": password,
            "client_keys": keys or None,  # None: no default keys and no agent
            "agent_path": None,
            "preferred_auth": PREFERRED_AUTH,
            "gss_host": None,
        }
        return args, ", ".join(methods) or "nothing: no password or key is configured"

    # -- connecting -----------------------------------------------------------------------
    async def open(self, creds: Credentials) -> asyncssh.SSHClientConnection:
        """Open and authenticate a connection, or raise FatalError / AuthRefused /
        ConnectFailed. Keepalives run in both connection modes: an on-demand connection
        idles too, and a frozen server must not keep it looking alive."""
        auth, methods = await anyio.to_thread.run_sync(self._auth_args, creds)
        try:
            known_hosts = self.hostkeys.known_hosts()
        except (OSError, ValueError) as exc:
            raise FatalError(str(exc)) from None
        timeout = float(self.options["connect_timeout"])
        interval = float(self.options["keepalive"])
        try:
            with anyio.fail_after(timeout + 1):  # asyncssh's own timeout should fire first
                conn, _ = await asyncssh.create_connection(
                    lambda: _Client(self.hostkeys, self.on_lost),
                    self.address,
                    self.port,
                    known_hosts=known_hosts,
                    config=None,
                    connect_timeout=timeout,
                    login_timeout=timeout,
                    keepalive_interval=interval,
                    keepalive_count_max=KEEPALIVE_COUNT_MAX,
                    encryption_algs=ENCRYPTION_ALGS,
                    **auth,
                )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise FatalError(self.hostkeys.refusal(exc.reason)) from None
        except asyncssh.PermissionDenied as exc:
            raise AuthRefused(
                f"authentication as user {creds.user!r} ({creds.user_from}) at {self.server} "
                f"failed: {exc.reason}; tried {methods}. Check the user and the credentials "
                "(not shown), and that the server allows these methods"
            ) from None
        except TimeoutError:
            raise ConnectFailed(
                f"cannot connect to {self.server}: no answer within {timeout:g} s "
                f"({self.where}.options.connect_timeout)"
            ) from None
        except asyncssh.Error as exc:
            raise ConnectFailed(f"cannot connect to {self.server}: {exc.reason}") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.server}: {exc.strerror or exc}") from None
        return conn


async def close(conn: asyncssh.SSHClientConnection, timeout: float = 2.0) -> None:
    """Close `conn` and wait (bounded, shielded) until it is closed."""
    conn.close()
    with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
        await conn.wait_closed()
