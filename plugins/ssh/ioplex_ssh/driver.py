"""The ssh I/O server: its data points, its command queue and its connection life cycle.

Points (instance ``ssh``): ``ssh.connection`` (online/offline; write ``close``),
``ssh.exec`` and ``ssh.exec.<seconds>`` (write a command; ``ssh.exec`` reads its exit
status, ``error`` or ``null``), ``ssh.out`` / ``ssh.err``, ``ssh.get`` / ``ssh.put`` (write
``<source> <destination>``; read bytes transferred or ``error``), ``ssh.user`` /
``ssh.password`` (credential overrides, on-demand connections only).

Every write only queues a job; one worker per instance runs the jobs in order. With a
persistent connection the worker lives inside `connect`, so the supervisor's reconnect
with backoff is the reconnect; jobs written meanwhile wait, each at most its own timeout.
With on-demand connections `connect` is the worker: it opens a connection for the first
job and closes it `idle_close` seconds after the last. The instance then counts as online
(it takes writes, its points keep good quality) while ``ssh.connection`` reads ``offline``
whenever no connection is open, as in HSYCO (``set_online(link=False)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import anyio
import asyncssh
from ioplex import FatalError, IOServer, Point, State, Value, WriteError, hookimpl

from .commands import run_command
from .connection import ConnectFailed, Connector, Credentials, close
from .jobs import Job, JobQueue, QueueFull
from .paths import PathRefused, Sandbox, split_transfer
from . import transfer
from .transfer import TransferFailed

MAX_TIMEOUT = 86400  # seconds: a day, the longest `timeout` the schema allows

STDOUT_MODES = {True: "true", False: "false", "true": "true", "false": "false", "line": "line"}


class ConnectionLost(Exception):
    """The persistent connection ended; the supervisor reconnects."""


class SSHDriver:
    """One ssh I/O server instance (the factory registered for type ``ssh``)."""

    def __init__(self, ioserver: IOServer) -> None:
        self.io = ioserver
        self.where = f"ioservers.{ioserver.name}"
        settings, options = ioserver.settings, ioserver.options
        self.persistent: bool = options["persistentconnection"]
        self.stdout: str = STDOUT_MODES[options["stdout"]]
        self.timeout = float(options["timeout"])
        self.limit: int = options["max_output"]
        self.idle_close = float(options["idle_close"])
        self.user: str = settings["user"]
        self.password: str = settings["password"]
        self.user_override = ""
        self.password_override = ""
        self.jobs = JobQueue(options["queue"])
        self.sandbox = Sandbox(ioserver.data_dir)
        self.connector = Connector(ioserver, self._lost)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lost_reason: str | None = None
        self._down_since = 0.0
        self._failures = 0
        self._retry_at = 0.0

        declare = ioserver.declare
        self.connection = declare("connection", "offline", writable=True)
        self.exec_point = declare("exec", None, writable=True)
        self.out_point = declare("out", None, type=str)
        self.err_point = declare("err", None, type=str)
        self.get_point = declare("get", None, writable=True)
        self.put_point = declare("put", None, writable=True)
        self.user_point = declare("user", self.user, writable=True)
        self.password_point = declare("password", None, writable=True)  # never holds a value
        self._routes: dict[Point, Callable[[Point, Value], None]] = {
            self.connection: self._write_connection,
            self.exec_point: self._write_exec,
            self.get_point: self._write_transfer,
            self.put_point: self._write_transfer,
            self.user_point: self._write_credential,
            self.password_point: self._write_credential,
        }
        # ``exec.<seconds>``: the kernel declares each one on its first write.
        ioserver.declare_family("exec.[0-9]*", type=str)
        self._exec_prefix = f"{ioserver.name}.exec."

    def _say(self, message: str) -> str:
        return f"ssh I/O server {self.io.name!r}: {message}"

    # -- writes -----------------------------------------------------------------------------
    @hookimpl
    def write(self, ioserver: IOServer, point: Point, value: Value, namespace: str) -> None:
        route = self._routes.get(point)
        if route is None and point.name.startswith(self._exec_prefix):
            route = self._write_exec
        if route is None:
            raise WriteError(f"{point.name} is read-only")
        route(point, value)

    def _text(self, point: Point, value: Value) -> str:
        if not isinstance(value, str):
            shown = "a value" if point is self.password_point else repr(value)
            raise WriteError(
                f"{point.name}: expected a string, got {shown} ({type(value).__name__})"
            )
        return value

    def _queue(self, job: Job) -> None:
        if self.io.state is State.FAILED:
            raise WriteError(
                f"{job.point}: {self._say(f'stopped ({self.io.detail})')}; {job.value!r} is not run"
            )
        try:
            self.jobs.put(job)
        except QueueFull:
            raise WriteError(
                f"{job.point}: {len(self.jobs)} commands are already waiting "
                f"({self.where}.options.queue = {self.jobs.maxsize}); {job.value!r} is not run"
            ) from None

    def _write_connection(self, point: Point, value: Value) -> None:
        if value != "close":
            raise WriteError(f"{point.name}: only 'close' can be written, got {value!r}")
        if self.persistent and not self.io.online:
            # queued, it would close the connection the reconnect is about to open
            self.io.log.info("%s", self._say(f"{point.name} = 'close': the connection is "
                                             "already closed"))
            return
        self._queue(Job("close", point.name, "close"))

    def _write_exec(self, point: Point, value: Value) -> None:
        command = self._text(point, value)
        if not command.strip():
            raise WriteError(f"{point.name}: empty command")
        self._queue(Job("exec", point.name, command, self._exec_timeout(point)))

    def _exec_timeout(self, point: Point) -> float:
        if point is self.exec_point:
            return self.timeout
        text = point.name[len(self._exec_prefix):]
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if not 0 < seconds <= MAX_TIMEOUT:
            raise WriteError(
                f"{point.name}: the timeout {text!r} is not a number of seconds between 0 and "
                f"{MAX_TIMEOUT}"
            )
        return seconds

    def _write_transfer(self, point: Point, value: Value) -> None:
        text = self._text(point, value)
        try:
            split_transfer(text)
        except ValueError as exc:
            raise WriteError(f"{point.name}: {exc}") from None
        kind = "get" if point is self.get_point else "put"
        self._queue(Job(kind, point.name, text, self.timeout))

    def _write_credential(self, point: Point, value: Value) -> None:
        text = self._text(point, value)
        if self.persistent:
            raise WriteError(
                f"{point.name} can be written only when {self.where}.options.persistentconnection "
                "= false; it takes effect on the next connection"
            )
        if point is self.user_point:
            self.user_override = text
            self.io.set(self.user_point, text or self.user, force=True)
        else:
            self.password_override = text  # never logged, never a point value
        self._failures, self._retry_at = 0, 0.0
        what = "set" if text else "restored to the configured value"
        self.io.log.info("%s", self._say(f"{point.name} {what}; used from the next connection on"))

    def credentials(self) -> Credentials:
        """What the next connection logs in with: the overrides, else the configuration."""
        return Credentials(
            self.user_override or self.user,
            self.password_override or self.password,
            self.user_point.name if self.user_override else f"{self.where}.user",
            self.password_point.name if self.password_override else f"{self.where}.password",
        )

    # -- results ----------------------------------------------------------------------------
    def _report(self, job: Job, value: Value, out: str = "", err: str = "") -> None:
        """Set the points a finished job reads back; they fire even when unchanged."""
        if job.kind == "exec":
            if self.stdout == "true":
                self.io.set(self.out_point, out, force=True)
                self.io.set(self.err_point, err, force=True)
            self.io.set(self.exec_point, value, force=True)
        elif job.kind in ("get", "put"):
            self.io.set(self.get_point if job.kind == "get" else self.put_point, value, force=True)

    def _fail(self, job: Job, why: str) -> None:
        self.io.log.warning("%s", self._say(f"{job.point} = {_short(job.value)}: {why}"))
        self._report(job, "error")

    # -- connect hook ---------------------------------------------------------------------------
    @hookimpl
    async def connect(self, ioserver: IOServer) -> None:
        if self.persistent:
            await self._run_persistent()
        else:
            await self._run_on_demand()

    def _lost(self, exc: Exception | None) -> None:
        """asyncssh's notice that a connection ended (any cause)."""
        if exc is not None:
            self._lost_reason = str(getattr(exc, "reason", None) or exc)
        if not self.persistent and self.connection.value == "online":
            self.io.set(self.connection, "offline")

    def _expire(self) -> None:
        """Fail the jobs that waited for the connection longer than their own timeout."""
        now = anyio.current_time()
        for job in self.jobs.remove_if(
            lambda j: now - max(j.queued_at, self._down_since) > j.timeout
        ):
            self._fail(job, f"not run: no connection to {self.connector.server} for "
                            f"{job.timeout:g} s (its timeout)")

    async def _run_persistent(self) -> None:
        self._expire()
        try:
            conn = await self.connector.open(self.credentials(), keepalive=True)
        except FatalError as exc:
            for job in self.jobs.remove_if(lambda j: True):
                self._fail(job, f"not run: {exc}")
            raise FatalError(self._say(str(exc))) from None
        except ConnectFailed as exc:
            raise ConnectFailed(self._say(str(exc))) from None
        self._lost_reason = None
        try:
            self._expire()
            self.io.set_online()
            self.io.log.info("%s", self._say(
                f"connected to {self.connector.server} as {self.credentials().user!r}"))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._work_persistent, conn)
                await conn.wait_closed()
                tg.cancel_scope.cancel()
        finally:
            self._down_since = anyio.current_time()
            await close(conn)
        reason = self._lost_reason or "closed"
        raise ConnectionLost(self._say(f"connection to {self.connector.server} lost: {reason}"))

    async def _work_persistent(self, conn: asyncssh.SSHClientConnection) -> None:
        while True:
            job = await self.jobs.get()
            if conn.is_closed():  # lost while we waited: the job waits for the next connection
                self.jobs.put_back(job)
                return
            if job.kind == "close":
                self.io.log.info("%s", self._say(f"{job.point} = 'close': closing the connection"))
                self._lost_reason = f"closed on request ({job.point} = 'close')"
                conn.close()
                return
            await self._run_job(job, conn)

    async def _run_on_demand(self) -> None:
        # Up and taking writes, but holding no connection (see the module docstring).
        self.io.set_online(link=False)
        try:
            while True:
                if self._conn is not None and self._conn.is_closed():
                    self._conn = None  # dropped by the server or the network; _lost said so
                job: Job | None = None
                idle = self.idle_close if self._conn is not None else math.inf
                with anyio.move_on_after(idle):
                    job = await self.jobs.get()
                if job is None:
                    await self._close_on_demand(f"idle for {self.idle_close:g} s")
                elif job.kind == "close":
                    await self._close_on_demand(f"{job.point} = 'close'")
                else:
                    conn = await self._open_on_demand(job)
                    if conn is not None:
                        await self._run_job(job, conn)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_on_demand("the host is stopping")

    async def _open_on_demand(self, job: Job) -> asyncssh.SSHClientConnection | None:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn = None
        now = anyio.current_time()
        if now < self._retry_at:
            self._fail(job, f"not run: connecting to {self.connector.server} failed recently; "
                            f"next attempt in {self._retry_at - now:.1f} s")
            return None
        try:
            self._conn = await self.connector.open(self.credentials(), keepalive=False)
        except (FatalError, ConnectFailed) as exc:
            delay = self.io.host.backoff.delay(self._failures)
            self._failures += 1
            self._retry_at = anyio.current_time() + delay
            self._fail(job, f"not run: {exc}")
            return None
        self._failures = 0
        self.io.set(self.connection, "online")
        self.io.log.info("%s", self._say(
            f"connected to {self.connector.server} as {self.credentials().user!r}"))
        return self._conn

    async def _close_on_demand(self, why: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.io.log.info("%s", self._say(f"closing the connection: {why}"))
            await close(conn)
        if self.connection.value != "offline":
            self.io.set(self.connection, "offline")

    # -- running one job -------------------------------------------------------------------------
    async def _run_job(self, job: Job, conn: asyncssh.SSHClientConnection) -> None:
        """Run `job`; whatever happens, its points get a result."""
        try:
            if job.kind == "exec":
                await self._exec(job, conn)
            else:
                await self._transfer(job, conn)
        except anyio.get_cancelled_exc_class():
            self._fail(job, "interrupted: the connection was lost or the host is stopping")
            raise
        except Exception:  # a bug must not stop the queue; say so loudly
            self.io.log.exception("%s", self._say(f"{job.point} = {_short(job.value)} failed"))
            self._report(job, "error")

    async def _exec(self, job: Job, conn: asyncssh.SSHClientConnection) -> None:
        on_out = on_err = None
        if self.stdout == "line":
            on_out = partial(self.io.set, self.out_point, force=True)
            on_err = partial(self.io.set, self.err_point, force=True)
        result = await run_command(conn, job.value, timeout=job.timeout, limit=self.limit,
                                   on_out=on_out, on_err=on_err)
        if result.problem is not None:
            self.io.log.warning(
                "%s", self._say(f"{job.point} = {_short(job.value)}: {result.problem}")
            )
        self._report(job, result.status, result.out, result.err)

    async def _transfer(self, job: Job, conn: asyncssh.SSHClientConnection) -> None:
        source, destination = split_transfer(job.value)
        action = transfer.get if job.kind == "get" else transfer.put
        try:
            count = await action(conn, source, destination, self.sandbox, job.timeout)
        except PathRefused as exc:
            self._fail(job, f"refused: {exc}")
            return
        except TransferFailed as exc:
            self._fail(job, f"failed: {exc}")
            return
        self.io.log.info("%s", self._say(f"{job.point} = {_short(job.value)}: {count} bytes"))
        self._report(job, count)


def _short(value: str, limit: int = 120) -> str:
    """`value` quoted for a log line, cut to `limit` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
