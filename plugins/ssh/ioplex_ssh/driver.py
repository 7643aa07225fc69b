"""The ssh I/O server: its data points, its command queue and its connection life cycle.

Points (instance ``ssh``): ``ssh.connection`` (online/offline; write ``close``),
``ssh.exec`` and ``ssh.exec.<seconds>`` (write a command; ``ssh.exec`` reads its exit
status, ``error`` or ``null``), ``ssh.out`` / ``ssh.err``, ``ssh.get`` / ``ssh.put`` (write
``<source> <destination>``; read bytes transferred or ``error``), ``ssh.user`` /
``ssh.password`` (credential overrides, on-demand connections only), and one point per
configured command (``options.commands``).

exec, out, err, get and put are *result* points (``follows_connection=False``): they fire
when a command ends and at no other time; a reconnect never touches them. The polled command
points are ordinary values: they go bad while the link is down and stay stale until polled.

Every write only queues a job; one worker per instance runs the jobs in order. With a
persistent connection `connect` runs its own reconnect loop (its backoff starts again after
every successful login, and a refused login is retried every ``auth_retry`` seconds with the
reason in the instance state). With on-demand connections `connect` is the worker: it opens
a connection for a job, waiting out a backoff within the job's own timeout, and closes it
`idle_close` seconds after the last. In both modes every queued job has its own deadline,
honoured while no connection is usable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import asyncssh
from ioplex import FatalError, IOServer, Point, Quality, State, Value, WriteError, hookimpl
from ioplex.serving import RateLimitedLog

from . import transfer
from .commands import Result, run_command
from .connection import AuthRefused, ConnectFailed, Connector, Credentials, close, quiet_asyncssh
from .jobs import Job, JobQueue, QueueFull
from .paths import PathRefused, Sandbox, split_transfer
from .polled import CommandSpec, ParseError, parse_specs
from .transfer import TransferFailed

MAX_TIMEOUT = 86400  # seconds: a day, the longest `timeout` the schema allows

STDOUT_MODES = {True: "true", False: "false", "true": "true", "false": "false", "line": "line"}

LOG_COMMAND_CHARS = 120
"""Commands are cut to this many characters in ioplex's log lines."""


@dataclass(frozen=True)
class CommandResult:
    """What `ioplex_ssh.run` returns: one command's own result, whoever else is writing."""

    status: int | None
    """The exit status (128 + n when killed by signal n); None when the command could not be
    run, timed out (see `error`) or the server sent no status."""
    out: str
    """stdout as received (UTF-8, invalid bytes replaced), at most ``options.max_output``."""
    err: str
    duration: float
    """Seconds from the write until the result, queueing included."""
    error: str | None = None
    """Why there is no status (not run, timed out, connection lost); None otherwise."""

    @property
    def ok(self) -> bool:
        return self.status == 0


def resolve_files_dir(data_dir: Path, files_dir: str) -> Path:
    """The transfer area: `files_dir` relative to the data directory."""
    return (data_dir / files_dir).resolve()


def files_dir_problem(data_dir: Path, area: Path) -> str | None:
    """Why `area` cannot be the transfer area (it would hold the host's own state)."""
    data = data_dir.resolve()
    if area == data or data.is_relative_to(area):
        return (
            f"resolves to {str(area)!r}, which is (or holds) the data directory "
            f"{str(data)!r} with the host's own state (keys, known_hosts, loggers.db); "
            'use a directory of its own, such as the default "files"'
        )
    return None


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
        self.auth_retry = float(options["auth_retry"])
        self.user: str = settings["user"]
        self.password: str = settings["password"]
        self.user_override = ""
        self.password_override = ""
        self.jobs = JobQueue(options["queue"])
        self.connector = Connector(ioserver, self._lost)
        self.area = resolve_files_dir(ioserver.data_dir, options["files_dir"])
        problem = files_dir_problem(ioserver.data_dir, self.area)
        if problem is not None:
            raise FatalError(f"{self.where}.options.files_dir = {options['files_dir']!r} {problem}")
        protected = list(self.connector.protected)
        password = self.password
        if password and len(password) < 4096 and "\0" not in password:
            protected.append(self.connector._local(password))  # a key file it may name
        self.sandbox = Sandbox(self.area, protected)
        self.specs, problems = parse_specs(options["commands"], self.where)
        if problems:
            raise FatalError("; ".join(map(str, problems)))
        self.complaints = RateLimitedLog(ioserver.log, 60)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._linked = False
        """A usable connection is open: queued jobs wait their turn, not for a connection."""
        self._wake = anyio.Event()
        self._link_up = anyio.Event()
        """Set while linked; persistent pollers wait on it while no connection is usable."""
        self._links = 0
        """Connections opened so far: a new one makes every poller poll at once."""
        self._lost_reason: str | None = None
        self._down_since = 0.0
        self._failures = 0
        self._retry_at = 0.0
        self._last_failure = ""
        self._scp: dict[int, bool] = {}
        """Whether the remote of a connection (by id) has scp; else transfers use SFTP."""
        self.dropped_polls = 0
        """Polls not queued because the queue was full."""
        self.polls_done = 0
        """Polls that gave their point a value."""

        declare = ioserver.declare
        result = {"follows_connection": False}
        self.connection = ioserver.connection  # the kernel's; ssh also takes ``close``
        self.connection.writable = True
        self.exec_point = declare("exec", None, writable=True, sensitive=True, **result)
        self.out_point = declare("out", None, type=str, **result)
        self.err_point = declare("err", None, type=str, **result)
        self.get_point = declare("get", None, writable=True, sensitive=True, **result)
        self.put_point = declare("put", None, writable=True, sensitive=True, **result)
        self.user_point = declare("user", self.user, writable=True, sensitive=True)
        self.password_point = declare("password", None, writable=True, sensitive=True)
        self._routes: dict[Point, Callable[[Point, Value], None]] = {
            self.connection: self._write_connection,
            self.exec_point: self._write_exec,
            self.get_point: self._write_transfer,
            self.put_point: self._write_transfer,
            self.user_point: self._write_credential,
            self.password_point: self._write_credential,
        }
        # ``exec.<seconds>``: the kernel declares each one on its first write.
        ioserver.declare_family("exec.[0-9]*", type=str, sensitive=True, follows_connection=False)
        self._exec_prefix = f"{ioserver.name}.exec."
        self.spec_points: dict[str, Point] = {}
        for spec in self.specs:
            point = declare(spec.id, None, type=spec.type, writable=spec.switch, meta=spec.meta)
            self.spec_points[spec.id] = point
            if spec.switch:
                self._routes[point] = self._write_switch

    def _say(self, message: str) -> str:
        return f"ssh I/O server {self.io.name!r}: {message}"

    def _poke(self) -> None:
        """Wake the deadline watcher: the queue or the link changed."""
        self._wake.set()

    def _set_linked(self, linked: bool) -> None:
        if linked != self._linked:
            self._linked = linked
            if linked:
                self._links += 1
                self._link_up.set()
            else:
                self._down_since = anyio.current_time()
                self._link_up = anyio.Event()
            self._poke()

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
                f"{job.point}: {self._say(f'stopped ({self.io.detail})')}; "
                f"{_short(job.value)} is not run"
            )
        try:
            self.jobs.put(job)
        except QueueFull:
            raise WriteError(
                f"{job.point}: {len(self.jobs)} commands are already waiting "
                f"({self.where}.options.queue = {self.jobs.maxsize}); {_short(job.value)} is "
                "not run"
            ) from None
        self._poke()

    def _write_switch(self, point: Point, value: Value) -> None:
        if isinstance(value, str) and value.lower() in ("on", "off", "true", "false", "1", "0"):
            value = value.lower() in ("on", "true", "1")
        if not isinstance(value, (bool, int)) or isinstance(value, int) and value not in (0, 1):
            raise WriteError(f"{point.name}: a switch takes true/false (or on/off), got {value!r}")
        spec = next(s for s in self.specs if self.spec_points[s.id] is point)
        command = spec.command_on if value else spec.command_off
        self._queue(
            Job(
                "switch",
                point.name,
                command,
                spec.timeout or self.timeout,
                spec=(spec, bool(value)),
            )
        )

    def _write_connection(self, point: Point, value: Value) -> None:
        if value != "close":
            raise WriteError(f"{point.name}: only 'close' can be written, got {value!r}")
        if self.persistent and not self.io.online:
            # queued, it would close the connection the reconnect is about to open
            self.io.log.info(
                "%s", self._say(f"{point.name} = 'close': the connection is already closed")
            )
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
        text = point.name[len(self._exec_prefix) :]
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
    def _report(
        self,
        job: Job,
        value: Value,
        out: str = "",
        err: str = "",
        result: Result | None = None,
        why: str | None = None,
    ) -> None:
        """Give a finished job its result: the points it reads back (they fire even when
        unchanged), the caller of `run`, or the configured command's point."""
        if job.reply is not None:
            job.reply(result if result is not None else Result("error", "", "", why))
        elif job.kind == "exec":
            if self.stdout == "true":
                self.io.set(self.out_point, out, force=True)
                self.io.set(self.err_point, err, force=True)
            self.io.set(self.exec_point, value, force=True)
        elif job.kind in ("get", "put"):
            self.io.set(self.get_point if job.kind == "get" else self.put_point, value, force=True)
        elif job.kind in ("poll", "switch"):
            spec: CommandSpec = job.spec if job.kind == "poll" else job.spec[0]
            point = self.spec_points[spec.id]
            if value == "error":
                self.io.set(point, point.value, quality=Quality.BAD)

    def _fail(self, job: Job, why: str) -> None:
        if job.kind in ("poll", "switch") or job.reply is not None:
            self.complaints.warning(
                f"{job.kind}:{job.point}",
                "%s",
                self._say(f"{job.point} = {_short(job.value)}: {why}"),
            )
        else:
            self.io.log.warning("%s", self._say(f"{job.point} = {_short(job.value)}: {why}"))
        self._report(job, "error", why=why)

    # -- the awaitable API ------------------------------------------------------------------------
    async def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run `command` in the instance's queue and return its own result (see `run`)."""
        if not isinstance(command, str) or not command.strip():
            raise WriteError(self._say(f"run: expected a command, got {command!r}"))
        seconds = self.timeout if timeout is None else float(timeout)
        if not 0 < seconds <= MAX_TIMEOUT:
            raise WriteError(
                self._say(
                    f"run: timeout {timeout!r} is not a number of seconds "
                    f"between 0 and {MAX_TIMEOUT}"
                )
            )
        done = anyio.Event()
        box: list[Result] = []

        def reply(result: Result) -> None:
            box.append(result)
            done.set()

        started = anyio.current_time()
        self._queue(Job("exec", f"{self.io.name} run()", command, seconds, reply=reply))
        await done.wait()
        result = box[0]
        duration = anyio.current_time() - started
        if result.status == "error":
            return CommandResult(
                None, result.raw_out, result.raw_err, duration, result.problem or "error"
            )
        status = None if result.status == "null" else int(result.status)
        return CommandResult(status, result.raw_out, result.raw_err, duration)

    # -- connect hook ---------------------------------------------------------------------------
    @hookimpl
    async def connect(self, ioserver: IOServer) -> None:
        quiet_asyncssh(ioserver.log.getEffectiveLevel())
        self.area.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_deadlines)
                for spec in self.specs:
                    if spec.command:
                        tg.start_soon(self._poll, spec)
                if self.persistent:
                    await self._run_persistent()
                else:
                    await self._run_on_demand()
        finally:
            for job in self.jobs.remove_if(lambda j: True):
                self._fail(job, "not run: the host is stopping")
            with anyio.CancelScope(shield=True):
                conn, self._conn = self._conn, None
                if conn is not None:
                    await close(conn)

    def _lost(self, exc: Exception | None) -> None:
        """asyncssh's notice that a connection ended (any cause)."""
        if exc is not None:
            self._lost_reason = str(getattr(exc, "reason", None) or exc)
        if self._conn is not None and self._conn.is_closed():
            self._set_linked(False)
        if not self.persistent and self.connection.value == "online":
            self.io.set(self.connection, "offline")

    def _expire(self) -> None:
        """Fail the jobs that waited for a connection longer than their own timeout."""
        if self._linked:
            return
        now = anyio.current_time()
        for job in self.jobs.remove_if(lambda j: now >= self._deadline(j)):
            self._fail(
                job,
                f"not run: no connection to {self.connector.server} within "
                f"{job.timeout:g} s (its timeout){self._because()}",
            )

    def _deadline(self, job: Job) -> float:
        """When a job waiting for a connection gives up: its timeout after it was written or
        after the link went down, whichever is later."""
        return max(job.queued_at, self._down_since) + job.timeout

    def _because(self) -> str:
        return f"; last attempt: {self._last_failure}" if self._last_failure else ""

    async def _watch_deadlines(self) -> None:
        """While no connection is usable, fail each queued job at its own deadline."""
        while True:
            self._expire()
            wait = math.inf
            if not self._linked and len(self.jobs):
                now = anyio.current_time()
                soonest = min(self._deadline(j) for j in self.jobs.snapshot())
                wait = max(0.0, soonest - now) + 0.001
            with anyio.move_on_after(wait):
                await self._wake.wait()
            if self._wake.is_set():
                self._wake = anyio.Event()

    async def _poll(self, spec: CommandSpec) -> None:
        """Queue `spec`'s command every `interval` seconds (never two waiting at once), and
        at once whenever a new connection comes up (the value is stale until then)."""
        name = self.spec_points[spec.id].name
        seen_link, due = -1, 0.0
        while True:
            usable = self.io.online and (self._linked or not self.persistent)
            now = anyio.current_time()
            if usable and (now >= due or seen_link != self._links):
                seen_link, due = self._links, now + spec.interval
                if not self.jobs.pending(lambda j: j.kind == "poll" and j.spec is spec):
                    try:
                        self.jobs.put(
                            Job("poll", name, spec.command, spec.timeout or self.timeout, spec=spec)
                        )
                        self._poke()
                    except QueueFull:
                        self.dropped_polls += 1
                        self.complaints.warning(
                            "poll-dropped",
                            "%s",
                            self._say(
                                f"{name} not polled: the queue is full ({self.where}.options.queue "
                                f"= {self.jobs.maxsize}); {self.dropped_polls} polls dropped so far"
                            ),
                        )
            if usable:
                await anyio.sleep(max(0.0, due - anyio.current_time()))
            elif self.persistent:
                await self._link_up.wait()  # set as the link comes up, with set_online
            else:
                await anyio.sleep(0.1)  # on demand: only until the instance is up

    # persistent ------------------------------------------------------------------------------
    async def _run_persistent(self) -> None:
        """Keep one connection up for ever: reconnect with backoff (restarted after every
        successful login); refused logins every `auth_retry` seconds; never give up."""
        attempt = 0
        delay = 0.0
        while True:
            if delay:
                await anyio.sleep(delay)
            self.io.set_state(State.CONNECTING, None)  # its own retry loop
            try:
                conn = await self.connector.open(self.credentials())
            except FatalError as exc:
                for job in self.jobs.remove_if(lambda j: True):
                    self._fail(job, f"not run: {exc}")
                raise FatalError(self._say(str(exc))) from None
            except AuthRefused as exc:
                delay = self.auth_retry
                self._down(
                    f"{exc}; next attempt in {delay:g} s ({self.where}.options.auth_retry)",
                    str(exc),
                )
                continue
            except ConnectFailed as exc:
                delay = self.io.host.backoff.delay(attempt)
                attempt += 1
                self._down(f"{exc}; retry {attempt} in {delay:.1f} s", str(exc))
                continue
            attempt, self._last_failure = 0, ""
            reason = await self._serve(conn)
            delay = 0.0  # the first attempt after a loss is immediate; then backoff from 0
            self._down(
                f"connection to {self.connector.server} lost: {reason}; reconnecting", reason
            )

    def _down(self, detail: str, why: str) -> None:
        self._last_failure = why
        self._set_linked(False)
        self.io.set_offline()
        self.io.set_state(State.RETRYING, detail)
        self.complaints.warning(f"down:{why[:40]}", "%s", self._say(detail))

    async def _serve(self, conn: asyncssh.SSHClientConnection) -> str:
        """Run the queue on `conn` until it closes; return why it closed."""
        self._lost_reason = None
        self._conn = conn
        try:
            self._set_linked(True)
            self.io.set_online()
            self.io.log.info(
                "%s",
                self._say(f"connected to {self.connector.server} as {self.credentials().user!r}"),
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._work_persistent, conn)
                await conn.wait_closed()
                tg.cancel_scope.cancel()
        finally:
            self._conn = None
            self._scp.pop(id(conn), None)
            self._set_linked(False)
            await close(conn)
        return self._lost_reason or "closed"

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

    # on demand --------------------------------------------------------------------------------
    async def _run_on_demand(self) -> None:
        # Up and taking writes, but holding no connection (see the module docstring).
        self.io.set_online(link=False)
        try:
            while True:
                if self._conn is not None and self._conn.is_closed():
                    self._conn = None  # dropped by the server or the network; _lost said so
                    self._set_linked(False)
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
        """A connection for `job`: the open one, or a new one, waiting out a backoff and
        retrying within the job's own deadline. None (the job failed) when there is none."""
        deadline = self._deadline(job)
        while True:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            self._conn = None
            now = anyio.current_time()
            if now >= deadline:
                self._fail(
                    job,
                    f"not run: no connection to {self.connector.server} within "
                    f"{job.timeout:g} s (its timeout){self._because()}",
                )
                return None
            if now < self._retry_at:
                if self._retry_at >= deadline:
                    self._fail(
                        job,
                        f"not run: the next connection attempt to "
                        f"{self.connector.server} is in {self._retry_at - now:.1f} s, "
                        f"after its timeout{self._because()}",
                    )
                    return None
                await anyio.sleep(self._retry_at - now)
                continue
            with anyio.move_on_after(deadline - now):
                try:
                    conn = await self.connector.open(self.credentials())
                except (FatalError, AuthRefused) as exc:
                    self._failed_attempt(str(exc), self.auth_retry)
                    continue
                except ConnectFailed as exc:
                    self._failed_attempt(str(exc), self.io.host.backoff.delay(self._failures))
                    continue
                self._failures, self._retry_at, self._last_failure = 0, 0.0, ""
                self._conn = conn
                self._set_linked(True)
                self.io.set(self.connection, "online")
                self.io.log.info(
                    "%s",
                    self._say(
                        f"connected to {self.connector.server} as {self.credentials().user!r}"
                    ),
                )
                return conn

    def _failed_attempt(self, why: str, delay: float) -> None:
        self._failures += 1
        self._retry_at = anyio.current_time() + delay
        self._last_failure = why
        self.complaints.warning(
            f"connect:{why[:40]}",
            "%s",
            self._say(f"{why}; next attempt in {delay:.1f} s at the earliest"),
        )

    async def _close_on_demand(self, why: str) -> None:
        conn, self._conn = self._conn, None
        self._set_linked(False)
        if conn is not None:
            self._scp.pop(id(conn), None)
            self.io.log.info("%s", self._say(f"closing the connection: {why}"))
            await close(conn)
        if self.connection.value != "offline":
            self.io.set(self.connection, "offline")

    # -- running one job -------------------------------------------------------------------------
    async def _run_job(self, job: Job, conn: asyncssh.SSHClientConnection) -> None:
        """Run `job`; whatever happens, it gets a result."""
        try:
            if job.kind in ("exec", "poll", "switch"):
                await self._exec(job, conn)
            else:
                await self._transfer(job, conn)
        except anyio.get_cancelled_exc_class():
            self._fail(job, "interrupted: the connection was lost or the host is stopping")
            raise
        except Exception:  # a bug must not stop the queue; say so loudly
            self.io.log.exception("%s", self._say(f"{job.point} = {_short(job.value)} failed"))
            self._report(job, "error", why="internal error (logged)")

    async def _exec(self, job: Job, conn: asyncssh.SSHClientConnection) -> None:
        on_out = on_err = None
        if self.stdout == "line" and job.kind == "exec" and job.reply is None:
            on_out = partial(self.io.set, self.out_point, force=True)
            on_err = partial(self.io.set, self.err_point, force=True)
        result = await run_command(
            conn, job.value, timeout=job.timeout, limit=self.limit, on_out=on_out, on_err=on_err
        )
        if result.link_dead:
            # the server did not open a session in time: the connection is not to be trusted
            self._lost_reason = "the server stopped answering (no session opened)"
            self._set_linked(False)
            conn.close()
        if job.kind == "poll":
            self._polled(job, job.spec, result)
            return
        if job.kind == "switch":
            spec, on = job.spec
            if result.status != 0:
                self._fail(
                    job,
                    f"switching {'on' if on else 'off'} failed: "
                    f"{result.problem or f'exit status {result.status}'}",
                )
                return
            if spec.command:  # read the state back now rather than at the next poll
                state = await run_command(conn, spec.command, timeout=job.timeout, limit=self.limit)
                self._polled(job, spec, state)
            else:
                self.io.set(self.spec_points[spec.id], on)
            return
        if result.problem is not None:
            self.io.log.warning(
                "%s", self._say(f"{job.point} = {_short(job.value)}: {result.problem}")
            )
        if job.reply is not None:
            job.reply(result)
        else:
            self._report(job, result.status, result.out, result.err)

    def _polled(self, job: Job, spec: CommandSpec, result: Result) -> None:
        """Set a configured command's point from its result (bad quality when it failed)."""
        if result.status != 0:
            why = result.problem or f"exit status {result.status}"
            self._fail(
                job,
                f"{why}; stderr: {_short(result.raw_err.strip(), 200)}"
                if result.raw_err.strip()
                else why,
            )
            return
        try:
            value = spec.value(result.raw_out)
        except ParseError as exc:
            self._fail(
                job, f"{spec.where}: output not understood under parse = {spec.parse!r}: {exc}"
            )
            return
        point = self.spec_points[spec.id]
        try:
            self.io.set(point, value)
            self.polls_done += 1
        except (TypeError, ValueError) as exc:  # PointTypeError and the value contract
            self._fail(job, f"{spec.where}: {exc}")

    async def _transfer(self, job: Job, conn: asyncssh.SSHClientConnection) -> None:
        source, destination = split_transfer(job.value)
        action = transfer.get if job.kind == "get" else transfer.put
        sftp = self._scp.get(id(conn)) is False
        try:
            try:
                count = await action(conn, source, destination, self.sandbox, job.timeout, sftp)
            except TransferFailed:
                if id(conn) in self._scp:
                    raise
                if len(self._scp) > 64:
                    self._scp.clear()
                self._scp[id(conn)] = await transfer.has_scp(conn, min(job.timeout, 10))
                if self._scp[id(conn)]:
                    raise
                self.io.log.info(
                    "%s",
                    self._say(
                        f"{self.connector.server} has no scp program; "
                        "get and put use SFTP on this connection"
                    ),
                )
                count = await action(conn, source, destination, self.sandbox, job.timeout, True)
        except PathRefused as exc:
            self._fail(job, f"refused: {exc}")
            return
        except TransferFailed as exc:
            self._fail(job, f"failed: {exc}")
            return
        self.io.log.info("%s", self._say(f"{job.point} = {_short(job.value)}: {count} bytes"))
        self._report(job, count)


def _short(value: str, limit: int = LOG_COMMAND_CHARS) -> str:
    """`value` quoted for a log line, cut to `limit` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
