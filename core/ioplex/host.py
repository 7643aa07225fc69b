"""The host: loads plugins, validates the configuration, runs and supervises I/O servers."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from . import config as config_module
from .bus import EventBus
from .clock import Clock, make_clock
from .config import Config, ConfigSource
from .errors import IoplexError
from .ioserver import IOServer
from .loggers import DataLoggers
from .plugins import Plugins, await_maybe, call_impl, load_plugins
from .points import Value
from .registry import DEFAULT_QUEUE_SIZE, Registry, Subscription
from .serving import raise_open_file_limit
from .supervisor import Backoff, State, describe, supervise
from .views import Views

log = logging.getLogger("ioplex.host")

GC_FREEZE_AFTER = 10_000
"""Points declared between two freezes of the garbage collector (see `Host._keep_gc_clear`)."""


@dataclass
class Reload:
    """What `Host.reload` changed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """I/O server instances, by name."""
    services: list[str] = field(default_factory=list)
    """Plugins whose service was restarted (their settings changed)."""
    loggers: bool = False
    """Whether the data loggers were restarted."""

    def __str__(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("restarted", self.changed),
                ("services restarted:", self.services),
            )
            if names
        ]
        if self.loggers:
            parts.append("data loggers restarted")
        return "; ".join(parts) or "nothing changed"


StateListener = Callable[[str, str, State, "str | None"], None]
"""Called as (kind, name, state, detail) with kind "ioserver" or "plugin"."""


class Host:
    """An ioplex host: the point registries, the I/O server instances and the plugins' services.

    ::

        host = ioplex.Host.from_config("site.toml")
        async with host:                 # creates and starts every I/O server
            await host.write("dummy.light.1", 1)
            async with host.subscribe("dummy.*") as events:
                async for event in events:
                    ...
    """

    def __init__(self, config: Config, plugins: Plugins, *, freeze_gc: bool = True) -> None:
        self.config = config
        self.freeze_gc = freeze_gc
        """Whether the host freezes the garbage collector as points accumulate (see
        `_keep_gc_clear`). `gc.freeze` is process-wide: an application that embeds a host
        and manages the collector itself passes ``freeze_gc=False``."""
        self.plugins = plugins
        self.name = config.host.name
        self.data_dir: Path = config.host.data_dir
        self.clock: Clock = make_clock(config.host.clock)
        self.points = Registry("io", clock=self.clock.time)
        """I/O data points by name."""
        self.ui = Registry("ui", clock=self.clock.time, min_segments=1)
        """UI variables by name."""
        self.points.max_string = self.ui.max_string = config.host.max_string
        self.points.declare_on_write = lambda name: self._declare_on_write(name, False)
        self.ui.declare_on_write = lambda name: self._declare_on_write(name, True)
        self.ioservers: dict[str, IOServer] = {}
        self.services: dict[str, State] = {}
        """State of each plugin's `serve` task, by plugin name."""
        self.bus = EventBus(self)
        self.loggers: DataLoggers = DataLoggers.for_host(self)
        """Data loggers by id (docs/loggers.md)."""
        self.backoff = Backoff(
            initial=config.host.restart_delay,
            maximum=config.host.restart_max_delay,
            reset_after=config.host.restart_reset_after,
        )
        self.started_at: float | None = None
        self._views: Views | None = None
        self._state_listeners: list[StateListener] = []
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self._loggers_tg: TaskGroup | None = None
        self._environ: Mapping[str, str] | None = None
        self._tasks: dict[str, tuple[anyio.CancelScope, anyio.Event]] = {}
        """The cancel scope and end event of each instance's and service's task, by key
        (``ioserver:<name>``, ``plugin:<name>``), so a reload can stop one alone."""

    @classmethod
    def from_config(
        cls,
        source: ConfigSource,
        *,
        plugins: Plugins | None = None,
        environ: Mapping[str, str] | None = None,
        freeze_gc: bool = True,
    ) -> Host:
        """Load plugins (unless given) and validate `source`, a TOML path or a mapping.

        Raises `ioplex.ConfigError` listing every problem; nothing is started.
        """
        if plugins is None:
            plugins = load_plugins(environ)
        host = cls(
            config_module.load(source, plugins, environ=environ), plugins, freeze_gc=freeze_gc
        )
        host._environ = environ
        return host

    # -- life cycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise IoplexError("this host is already running")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IoplexError(
                f"cannot create the data directory {self.data_dir} ([host] data_dir): "
                f"{exc.strerror or exc}"
            ) from None
        raise_open_file_limit()
        self.started_at = self.clock.time()
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            # Entered first, so left last: the loggers record until every I/O server has
            # stopped, then write what is still queued. Started before the I/O servers are
            # created, so drivers' factories can use host.loggers (add_feed). Left through
            # `self.loggers` at that time, since a reload may replace them.
            # The loggers run as a task of their own group (so a reload can restart them),
            # outside the main group: its tasks (the I/O servers) end first, then the
            # loggers are cancelled, and their shielded exit writes what is queued.
            loggers_tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(loggers_tg.cancel_scope.cancel)
            self._loggers_tg = loggers_tg
            await self._start_loggers()
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            for cfg in self.config.ioservers.values():
                self._create(cfg)
            self.loggers.start_feeds()
            for impl in self.plugins.impls("on_event"):
                self.bus.add(impl.plugin_name, impl)
            for io in self.ioservers.values():
                impl = io.hookimpl("on_event")
                if impl is not None:
                    self.bus.add(io.name, impl)
            self._tg.start_soon(self.bus.run, name="ioplex event bus")
            if self.freeze_gc:
                self._tg.start_soon(self._keep_gc_clear, name="ioplex garbage-collector policy")
            for impl in self.plugins.impls("serve"):
                self._start_service(impl)
            for io in self.ioservers.values():
                self._start_ioserver(io)
        except BaseException:
            self._tg.cancel_scope.cancel() if self._tg else None
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        log.info(
            "host %s started: %d I/O servers, %d plugins",
            self.name,
            len(self.ioservers),
            len(self.plugins.info),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None and self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await stack.__aexit__(*exc_info)
        finally:
            log.info("host %s stopped", self.name)

    async def run(self) -> None:
        """Start the host and run until cancelled, for embedders with nothing else to do."""
        async with self:
            await anyio.sleep_forever()

    async def _keep_gc_clear(self) -> None:
        """Keep long-lived points out of the cyclic garbage collector's full passes.

        A full collection walks every tracked object; with a hundred thousand points that
        stalls the event loop for tens of milliseconds, which a replication mirror sees as
        latency. Points live as long as their I/O server, so after each GC_FREEZE_AFTER
        declarations the host collects the young generations and freezes what is left
        (`gc.freeze`). Frozen objects are still freed by reference counting; only cyclic
        garbage that was already old at that moment is kept.
        """
        frozen_at = 0
        while True:
            declared = self.points.declared + self.ui.declared
            if declared - frozen_at >= GC_FREEZE_AFTER:
                gc.collect(1)
                gc.freeze()
                frozen_at = declared
            await anyio.sleep(1)

    def _create(self, cfg: config_module.IOServerConfig) -> IOServer:
        iotype = self.plugins.types[cfg.type]
        io = IOServer(self, cfg, iotype)
        self.ioservers[cfg.name] = io
        try:
            io.attach(iotype.factory(io))
        except Exception as exc:  # noqa: BLE001 - one instance must not stop the host
            io.log.error(
                "I/O server %s (plugin %s) cannot start: %s", io.name, io.plugin, describe(exc)
            )
            io._set_state(State.FAILED, describe(exc))
        return io

    def _start_ioserver(self, io: IOServer) -> None:
        if io.driver is not None and self._tg is not None:
            self._tg.start_soon(
                self._scoped,
                f"ioserver:{io.name}",
                self._run_ioserver,
                io,
                name=f"ioplex ioserver {io.name}",
            )

    def _start_service(self, impl: Any) -> None:
        if self._tg is not None:
            self._tg.start_soon(
                self._scoped,
                f"plugin:{impl.plugin_name}",
                self._run_service,
                impl,
                name=f"ioplex plugin {impl.plugin_name}",
            )

    async def _scoped(self, key: str, func: Callable[..., Any], *args: Any) -> None:
        """Run `func` in a cancel scope of its own, so that `_stop` can end it alone."""
        done = anyio.Event()
        with anyio.CancelScope() as scope:
            self._tasks[key] = (scope, done)
            try:
                await func(*args)
            finally:
                done.set()
                if self._tasks.get(key, (None,))[0] is scope:
                    del self._tasks[key]

    async def _start_loggers(self) -> None:
        """Start `self.loggers` in their own task; return once they record."""
        assert self._loggers_tg is not None
        await self._loggers_tg.start(self._scoped_loggers, name="ioplex data loggers")

    async def _scoped_loggers(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async def run() -> None:
            async with self.loggers:
                task_status.started()
                await anyio.sleep_forever()

        await self._scoped("loggers", run)

    async def _stop(self, key: str) -> None:
        """Cancel one instance's or service's task and wait until it has cleaned up."""
        task = self._tasks.get(key)
        if task is not None:
            scope, done = task
            scope.cancel()
            await done.wait()

    async def _run_ioserver(self, io: IOServer) -> None:
        try:
            await supervise(
                f"I/O server {io.name} ({io.type})",
                io.connect,
                self.backoff,
                io.log,
                io._set_state,
                on_down=io.set_offline,
            )
        finally:
            io.set_offline()
            if io.state is not State.FAILED:
                io._set_state(State.STOPPED, None)

    async def _run_service(self, impl: Any) -> None:
        name = impl.plugin_name
        settings = self.config.plugins.get(name, {})

        def on_state(state: State, detail: str | None) -> None:
            if state is State.CONNECTING:  # a service counts as running from its start
                state = State.ONLINE
            self.services[name] = state
            for listener in self._state_listeners:
                listener("plugin", name, state, detail)

        async def run() -> None:
            await await_maybe(call_impl(impl, host=self, settings=settings))
            # A service with nothing to do returns at once; that is not a failure.
            on_state(State.STOPPED, None)
            await anyio.sleep_forever()

        plugin_log = logging.getLogger(f"ioplex.plugin.{name}")
        await supervise(f"plugin {name} service", run, self.backoff, plugin_log, on_state)

    # -- reloading ------------------------------------------------------------------------------
    async def reload(self, source: ConfigSource) -> Reload:
        """Apply a new configuration to the running host, changing only what changed.

        The whole file is validated first: on any problem `ConfigError` is raised and the
        running configuration stays as it is. Then instances that were removed or whose table
        changed are stopped (their points removed), new and changed ones are created and
        started, plugin services whose settings changed are restarted, and the data loggers
        are restarted (after writing what is queued) when their tables changed or an instance
        feeding one was stopped. Untouched instances keep running: their connections never
        drop. ``[host]`` settings apply only at the next start (a warning says so).
        """
        if self._tg is None:
            raise IoplexError("the host is not running")
        new = config_module.load(source, self.plugins, environ=self._environ)
        old = self.config
        result = Reload()
        for name, cfg in old.ioservers.items():
            if name not in new.ioservers:
                result.removed.append(name)
            elif new.ioservers[name] != cfg:
                result.changed.append(name)
        result.added = [name for name in new.ioservers if name not in old.ioservers]
        result.services = [
            impl.plugin_name
            for impl in self.plugins.impls("serve")
            if old.plugins.get(impl.plugin_name) != new.plugins.get(impl.plugin_name)
        ]
        if new.host != old.host:
            log.warning("reload: [host] settings changed; they apply at the next start")
        stopped = set(result.removed) | set(result.changed)
        feeding = {feed.source for lg in self.loggers.values() for feed in lg.feeds} & stopped
        result.loggers = new.loggers != old.loggers or bool(feeding)
        # Driver-added feeds (from factories) of instances that keep running must survive a
        # restart of the loggers; stopped instances add theirs again when re-created.
        kept_feeds = [
            (lg.id, feed.source, feed.source_id, feed.interval)
            for lg in self.loggers.values()
            for feed in lg.feeds
            if feed.source not in stopped and lg.settings.source != feed.source
        ]

        for name in result.removed + result.changed:
            await self._remove_ioserver(name)
        for name in result.services:
            await self._stop(f"plugin:{name}")
        self.config = new
        if result.loggers:
            await self._stop("loggers")
            self.loggers = DataLoggers.for_host(self)
            await self._start_loggers()
        for name in result.added + result.changed:
            io = self._create(new.ioservers[name])
            impl = io.hookimpl("on_event")
            if impl is not None:
                self.bus.add(io.name, impl)
        if result.loggers:
            for local_id, source_name, source_id, interval in kept_feeds:
                if local_id in self.loggers:
                    self.loggers.add_feed(local_id, source_name, source_id, interval)
            self.loggers.start_feeds()
        for name in result.added + result.changed:
            self._start_ioserver(self.ioservers[name])
        for impl in self.plugins.impls("serve"):
            if impl.plugin_name in result.services:
                self._start_service(impl)
        log.info("configuration reloaded: %s", result)
        return result

    async def _remove_ioserver(self, name: str) -> None:
        await self._stop(f"ioserver:{name}")
        io = self.ioservers.pop(name)
        self.bus.remove(name)
        for ui in (False, True):
            for point in io.points(ui=ui):
                (self.ui if ui else self.points).remove(point.name)

    def _state_changed(self, io: IOServer) -> None:
        for listener in self._state_listeners:
            listener("ioserver", io.name, io.state, io.detail)
        if io.state is State.ONLINE and self._tg is not None and io.implements("discover"):
            self._tg.start_soon(self._discover, io)

    async def _discover(self, io: IOServer) -> None:
        try:
            await io.discover()
        except Exception as exc:  # noqa: BLE001 - one instance must not stop the host
            io.log.warning("discovery of %s failed: %s", io.name, describe(exc))

    def _declare_on_write(self, name: str, ui: bool) -> Any:
        instance, _, id = name.partition(".")
        io = self.ioservers.get(instance)
        return io._declare_from_family(id, ui) if io is not None and id else None

    def add_state_listener(self, listener: StateListener) -> None:
        """Be told of every I/O server and plugin service state change."""
        self._state_listeners.append(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        """Stop telling `listener` (a service that ends, or restarts on a reload)."""
        if listener in self._state_listeners:
            self._state_listeners.remove(listener)

    # -- the public API -------------------------------------------------------------------------
    @property
    def views(self) -> Views:
        """The read-only views plugins offer (`register_views`), collected on first use."""
        if self._views is None:
            self._views = Views.collect(self.plugins)
        return self._views

    def time(self) -> float:
        """The host clock, in seconds since the epoch."""
        return self.clock.time()

    async def write(self, name: str, value: Value) -> None:
        """Write a data point: checked here, carried out by its owning I/O server."""
        await self.points.write(name, value)

    async def read(self, name: str) -> Value:
        """A fresh value of a data point, from the device when the driver can read it."""
        point = self.points[name]
        if point.owner is None:
            return point.value
        return await point.owner.read(point, "io")

    def subscribe(self, *patterns: str, maxsize: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        """Subscribe to changes of data points matching any glob pattern (`Registry.subscribe`)."""
        return self.points.subscribe(*patterns, maxsize=maxsize)

    def publish(self, event: Any, source: str) -> None:
        """Put a protocol event on the event bus for every `on_event` implementation."""
        self.bus.publish(event, source)

    async def discover(self, name: str) -> list[str] | None:
        """Run discovery on one I/O server now."""
        return await self.ioservers[name].discover()

    async def wait_online(self, *names: str, timeout: float | None = 10.0) -> None:
        """Wait until the named I/O servers (default: all that can start) are online."""
        targets = (
            [self.ioservers[n] for n in names]
            if names
            else [io for io in self.ioservers.values() if io.state is not State.FAILED]
        )
        with anyio.fail_after(timeout):
            for io in targets:
                await io.wait_online()
