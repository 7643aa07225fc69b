"""A private PostgreSQL server on loopback, for the tests and the benchmark.

It runs Debian's PostgreSQL 15 binaries (``/usr/lib/postgresql/15/bin``; `ensure_postgres`
installs the ``postgresql`` package with apt-get when they are missing) on a data directory of
its own, created with ``initdb`` in a fresh temporary directory, listening on a free port of
127.0.0.1 only (no Unix socket), with a random password (SCRAM) for the user ``ioplex``. The
machine's own clusters are never touched. PostgreSQL refuses to run as root: as root, every
command runs as the ``postgres`` system user the package creates (``runuser``)::

    with private_postgres() as pg:
        pg.dsn            # postgresql://ioplex:<password>@127.0.0.1:<port>/ioplex
        pg.stop(); pg.start()
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from ioplex.testing import ensure_debian_package, free_port

PG_VERSION = "15"
BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
SYSTEM_USER = "postgres"
USER = "ioplex"
DATABASE = "ioplex"


def ensure_postgres() -> Path:
    """The directory of the PostgreSQL server binaries, installing Debian's ``postgresql``
    first when they are missing (root only)."""
    return ensure_debian_package(f"postgresql-{PG_VERSION}", BIN / "initdb").parent


class PrivatePostgres:
    """One PostgreSQL server in its own directory; `start`, `stop`, `kill` as the tests need."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.bin = ensure_postgres()
        self.root = root
        self.data = root / "data"
        self.logfile = root / "postgres.log"
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(18)
        self._as_root = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str, timeout: float = 120) -> str:
        argv = [str(self.bin / command[0]), *command[1:]]
        if self._as_root:
            argv = ["runuser", "-u", SYSTEM_USER, "--", *argv]
        done = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`{command[0]}` failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done.stdout

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.root, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# ioplex_postgres.testing\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 50\nshared_buffers = 32MB\n"
            )
        self.start()
        with psycopg.connect(self.dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        """A fast shutdown: open transactions are rolled back, clients disconnected."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, writers)."""
        try:
            root = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        tree: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                tree.setdefault(parent, []).append(int(entry.name))
        found, todo = [root], [root]
        while todo:
            for child in tree.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def freeze(self) -> None:
        """SIGSTOP the whole server: it accepts nothing and answers nothing, like a hung
        machine."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def private_postgres(port: int | None = None) -> Iterator[PrivatePostgres]:
    """A running private server, stopped and deleted afterwards. Its directory is a fresh one
    under the system's temporary directory (readable by the ``postgres`` user, unlike a
    root-owned pytest tmp_path)."""
    root = Path(tempfile.mkdtemp(prefix="ioplex-pg-"))
    pg = PrivatePostgres(root, port)
    try:
        pg.init()
        yield pg
    finally:
        try:
            if pg.running():
                pg.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
