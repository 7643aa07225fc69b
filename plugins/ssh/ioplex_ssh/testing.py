"""A private OpenSSH server and a throwaway login, for tests and benchmarks of ssh I/O servers.

Testing against a real sshd catches what an in-process fake cannot (PAM, keyboard-interactive
prompts, the remote scp binary, exit statuses, host keys). This module runs one without
touching the machine's own sshd: its own config, host key, pid file and loopback ports in a
work directory, its own PAM service (``/etc/pam.d/ioplex-sshd-<random>``), run in the
foreground (``sshd -D -e -f <config>``) and admitting only a user created for the purpose,
with a random name and password. All of it is removed afterwards.

It needs root (to create the user and for sshd's privilege separation) and Debian's
openssh-server, which `ensure_sshd` installs with apt-get when it is missing::

    with private_sshd(tmp_path) as (server, user):
        ...  # server.port (every method), server.password_port, server.kbdint_port
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import asyncssh
from ioplex.testing import ensure_debian_package, free_ports

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
PAM_DIR = Path("/etc/pam.d")
PAM_STACK = """\
# PAM service of a private sshd run by ioplex_ssh.testing; removed when that sshd stops.
# Passwords are checked as usual; the session stack is empty, because the stock sshd one
# (pam_loginuid) fails in containers that may not set audit login ids.
@include common-auth
@include common-account
@include common-password
session required pam_permit.so
"""
START_TIMEOUT = 10.0


def ensure_sshd() -> Path:
    """The sshd binary, installing Debian's openssh-server first when it is missing."""
    return ensure_debian_package("openssh-server", SSHD)


def _run(*command: str, input: str | None = None) -> None:
    done = subprocess.run(
        command, check=False, input=input, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"`{command[0]}` failed ({done.returncode}): {done.stderr.strip()}")


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class SSHUser:
    """A local user created for a test session, with a random name and password."""

    name: str
    password: str
    home: Path
    uid: int
    key: asyncssh.SSHKey
    """An ed25519 key pair whose public key is in the user's authorized_keys."""
    key_path: Path
    """The private key, in OpenSSH format without passphrase."""
    authorized: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, workdir: Path, prefix: str = "ioplex") -> SSHUser:
        name = f"{prefix}{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        _run(
            "useradd", "--create-home", "--shell", "/bin/sh", "--comment", "ioplex ssh tests", name
        )
        try:
            _run("chpasswd", input=f"{name}:{password}\n")
            entry = pwd.getpwnam(name)
            key = asyncssh.generate_private_key("ssh-ed25519")
            key_path = workdir / f"{name}_ed25519"
            key.write_private_key(str(key_path))
            key_path.chmod(0o600)
            user = cls(name, password, Path(entry.pw_dir), entry.pw_uid, key, key_path)
            user.authorize(key.export_public_key().decode())
        except BaseException:
            _run("userdel", "--force", "--remove", name)
            raise
        return user

    def authorize(self, *public_keys: str) -> None:
        """Add OpenSSH public key lines to the user's authorized_keys."""
        self.authorized += [k.strip() for k in public_keys]
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text("".join(k + "\n" for k in self.authorized))
        keys.chmod(0o600)
        for path in (ssh_dir, keys):
            os.chown(path, self.uid, -1)

    def lock(self) -> None:
        """Lock the account's password (``usermod -L``), as an administrator or PAM might."""
        _run("usermod", "-L", self.name)

    def unlock(self) -> None:
        _run("usermod", "-U", self.name)

    def processes(self) -> list[int]:
        """The ids of the processes running as this user (what its sessions started)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == self.uid:
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def remove(self) -> None:
        """Kill what the user's sessions left running, then delete the user and its home."""
        _kill(self.processes())
        _run("userdel", "--force", "--remove", self.name)


class PrivateSSHD:
    """An sshd on three loopback ports of its own, admitting `user` only.

    ``port`` takes public key, password and keyboard-interactive logins; ``password_port``
    only password, ``kbdint_port`` only keyboard-interactive (PAM), so a test can tell which
    method a client used; on ``noscp_port`` sessions have no programs in their PATH (no
    ``scp``), only the SFTP subsystem. Ports and host key stay the same across `kill` and `start`, like a
    real server that crashed and came back.
    """

    def __init__(self, workdir: Path, user: str | None = None) -> None:
        self.workdir = workdir
        self.user = user
        # sshd names its PAM service after the program name it runs under: a link with a
        # name of our own gives this server a PAM stack of its own.
        self.pam_service = f"ioplex-sshd-{secrets.token_hex(4)}"
        self.program = workdir / self.pam_service
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key_path = workdir / "ssh_host_ed25519_key"
        self.host_key.write_private_key(str(self.host_key_path))
        self.host_key_path.chmod(0o600)
        self.port, self.password_port, self.kbdint_port, self.noscp_port = free_ports(4)
        self.config_path = workdir / "sshd_config"
        self.log_path = workdir / "sshd.log"
        self.config_path.write_text(self._config())
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        lines = [
            "ListenAddress 127.0.0.1",
            *(f"Port {p}" for p in self.ports),
            f"HostKey {self.host_key_path}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            "UsePAM yes",
            "PubkeyAuthentication yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication yes",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PermitRootLogin no",
            *([f"AllowUsers {self.user}"] if self.user else []),
            "UseDNS no",
            "PrintMotd no",
            "LogLevel INFO",
            "MaxSessions 10",
            "Subsystem sftp internal-sftp",
            f"Match LocalPort {self.password_port}",
            "    AuthenticationMethods password",
            f"Match LocalPort {self.kbdint_port}",
            "    AuthenticationMethods keyboard-interactive",
            # a server without scp (an appliance, an SFTP-only host): commands find no
            # programs at all, the sftp subsystem (internal) still works
            f"Match LocalPort {self.noscp_port}",
            "    SetEnv PATH=/nonexistent",
        ]
        return "\n".join(lines) + "\n"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.password_port, self.kbdint_port, self.noscp_port)

    def known_hosts(self) -> str:
        """known_hosts lines trusting this server's key on each of its ports."""
        public = self.host_key.export_public_key().decode().split()
        return "".join(f"[127.0.0.1]:{p} {public[0]} {public[1]}\n" for p in self.ports)

    def freeze(self) -> None:
        """SIGSTOP sshd and every session under it: a hung server whose sockets stay open."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        for pid in [self.process.pid, *_descendants(self.process.pid)]:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def start(self) -> None:
        """Start sshd and return once it listens on all its ports."""
        if self.process is not None and self.process.poll() is None:
            return
        if not self.program.is_symlink():
            self.program.symlink_to(ensure_sshd())
        (PAM_DIR / self.pam_service).write_text(PAM_STACK)
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        sshd = self.program
        check = subprocess.run(
            [str(sshd), "-t", "-f", str(self.config_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejects {self.config_path}: {check.stderr.strip()}")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(sshd), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = self.log(offset)
            if all(f"port {p}." in text for p in self.ports):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"sshd did not start listening; its log:\n{text[-2000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """Kill sshd and every session under it at once, as a crash would."""
        if self.process is None:
            return
        # a session may be forking (privilege separation hands over to a new child after
        # login) while /proc is read: stop the tree first, then kill until nothing is left
        self._signal(signal.SIGSTOP)
        for _ in range(50):
            pids = _descendants(self.process.pid)
            if not pids:
                break
            _kill(pids)
            time.sleep(0.01)
        _kill([self.process.pid])
        self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        """Kill sshd and remove its PAM service: nothing of it is left on the machine."""
        self.kill()
        (PAM_DIR / self.pam_service).unlink(missing_ok=True)

    def log(self, offset: int = 0) -> str:
        """What sshd logged (from byte `offset` on): logins, sessions, errors."""
        try:
            with open(self.log_path, "rb") as file:
                file.seek(offset)
                return file.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        """The log's current length, to read only what a test caused (`log(offset)`)."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def private_sshd(workdir: Path) -> Iterator[tuple[PrivateSSHD, SSHUser]]:
    """A running private sshd and the one user it admits; both gone afterwards."""
    if os.geteuid() != 0:
        raise RuntimeError(
            "a private sshd with a test user needs root (useradd, sshd privilege "
            "separation); run the ssh tests as root"
        )
    ensure_sshd()
    workdir.mkdir(parents=True, exist_ok=True)
    user = SSHUser.create(workdir)
    try:
        with PrivateSSHD(workdir, user.name) as server:
            yield server, user
    finally:
        user.remove()
