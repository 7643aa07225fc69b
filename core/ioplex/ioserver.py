"""The handle a driver gets for its I/O server instance, and the instance's own hook relay."""

from __future__ import annotations

import fnmatch
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pluggy

from .config import IOServerConfig
from .errors import IoplexError, PointNameError, WriteError
from .plugins import IOServerType, await_maybe, make_manager
from .points import Point, Quality, Value, check_pattern
from .supervisor import State

if TYPE_CHECKING:
    from .host import Host


RESERVED_ID = "connection"
"""The id every instance has for its connection state (``<name>.connection``)."""


class IOServer:
    """One configured I/O server instance, as its driver and the kernel see it.

    It owns the points named ``<name>.<id>``: drivers declare and update them here by id and
    the kernel calls the driver's hooks through it. Every instance has the point
    ``<name>.connection`` (``online`` / ``offline``); while offline its other points have
    quality ``bad``.
    """

    def __init__(self, host: Host, config: IOServerConfig, iotype: IOServerType) -> None:
        self.host = host
        self.name = config.name
        self.type = iotype.name
        self.plugin = iotype.plugin
        self.settings: dict[str, Any] = config.settings
        """The instance table's connection settings (address, port, ...), defaults filled."""
        self.options: dict[str, Any] = config.options
        """The validated ``options`` table, defaults filled."""
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"ioplex.ioserver.{self.name}"), {"ioserver": self.name}
        )
        self.state = State.STARTING
        self.detail: str | None = None
        self.driver: Any = None
        self._points: dict[str, Point] = {}
        self._ui: dict[str, Point] = {}
        self._hook: Any = None
        self._families: list[tuple[Any, dict[str, Any]]] = []
        self._online = anyio.Event()
        self._update = host.points.update  # the hot path of `set`
        self.update_many = host.points.update_many
        """``update_many([(point, value), ...], quality=GOOD, force=False, quiet=False)``:
        `set` for a batch of this instance's data points (Point objects, no lookup) that
        arrived together: the fastest way for a driver that pushes many changes."""
        self.connection = self.declare("connection", "offline", quality=Quality.GOOD)

    def __repr__(self) -> str:
        return f"<IOServer {self.name} ({self.type}) {self.state}>"

    # -- what drivers use -----------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """The host's data directory: the base for files this instance reads or writes."""
        return self.host.data_dir

    @property
    def online(self) -> bool:
        """Whether the instance is up: between `set_online` and `set_offline`."""
        return self._online.is_set()

    def declare(
        self,
        id: str,
        value: Value = None,
        *,
        writable: bool = False,
        type: type | str | None = None,
        ui: bool = False,
        meta: dict[str, Any] | None = None,
        quality: Quality | None = None,
        quiet: bool = False,
        nonfinite: bool = False,
        sensitive: bool = False,
        follows_connection: bool = True,
    ) -> Point:
        """Declare the point ``<name>.<id>`` (or the UI variable, with `ui`) and return it.

        Declaring an id again returns the existing point with `writable` and `meta` updated,
        so discovery can run repeatedly. New points start with quality ``good`` when the
        instance is online and ``bad`` otherwise, unless `quality` says.

        `nonfinite` lets a float point hold NaN and infinities. `sensitive` marks a point
        whose writes can do harm (run a command, copy a file): remote writers reach it only
        through a pattern naming it exactly. ``follows_connection=False`` declares a result
        point (a command's exit status or output): its quality never follows the connection,
        so a reconnect never fires an event for it; only the driver's own `set` does.
        """
        table = self._ui if ui else self._points
        if id == RESERVED_ID and not ui and RESERVED_ID in table:
            raise PointNameError(
                f"I/O server {self.name!r}: the point id {RESERVED_ID!r} is reserved for the "
                "instance's connection state; choose another id"
            )
        point = table.get(id)
        if point is not None:
            point.writable = writable
            point.sensitive = sensitive
            if meta is not None:
                point.meta = meta
            return point
        if quality is None:
            quality = Quality.GOOD if self.online or not follows_connection else Quality.BAD
        registry = self.host.ui if ui else self.host.points
        point = registry.declare(
            f"{self.name}.{id}",
            value,
            owner=self,
            writable=writable,
            type=type,
            quality=quality,
            meta=meta,
            quiet=quiet,
            nonfinite=nonfinite,
            sensitive=sensitive,
            follows_connection=follows_connection,
        )
        table[id] = point
        return point

    def declare_family(
        self,
        pattern: str,
        *,
        writable: bool = True,
        type: type | str | None = None,
        ui: bool = False,
        meta: dict[str, Any] | None = None,
        sensitive: bool = False,
        follows_connection: bool = True,
    ) -> None:
        """Accept writes to ids matching the glob `pattern` before they are declared.

        For command-like points whose name carries a parameter, such as ``exec.<seconds>``:
        the first write to ``<name>.exec.5`` declares that point (with these arguments) and
        then reaches the driver's write hook like any other.
        """
        check_pattern(f"{self.name}.{pattern}")
        match = re.compile(fnmatch.translate(pattern)).match
        self._families.append(
            (
                match,
                {
                    "writable": writable,
                    "type": type,
                    "ui": ui,
                    "meta": meta,
                    "sensitive": sensitive,
                    "follows_connection": follows_connection,
                },
            )
        )

    def _declare_from_family(self, id: str, ui: bool) -> Point | None:
        for match, kwargs in self._families:
            if kwargs["ui"] == ui and match(id):
                return self.declare(id, **kwargs)
        return None

    def family_sensitive(self, id: str) -> bool:
        """Whether a write to the undeclared id would declare a sensitive point."""
        return any(kw["sensitive"] and match(id) for match, kw in self._families)

    def point(self, id: str, *, ui: bool = False) -> Point:
        """The point ``<name>.<id>`` of this instance."""
        try:
            return (self._ui if ui else self._points)[id]
        except KeyError:
            raise PointNameError(f"I/O server {self.name!r} has no point {id!r}") from None

    def points(self, *, ui: bool = False) -> list[Point]:
        return list((self._ui if ui else self._points).values())

    def set(
        self,
        point: str | Point,
        value: Value,
        *,
        quality: Quality = Quality.GOOD,
        force: bool = False,
        ui: bool = False,
        quiet: bool = False,
    ) -> bool:
        """Update one of this instance's points by id (or Point); see `Registry.update`."""
        if ui:
            if point.__class__ is str:
                point = self._ui[point]  # type: ignore[index]
            return self.host.ui.update(point, value, quality, force, quiet)  # type: ignore[arg-type]
        if point.__class__ is str:
            point = self._points[point]  # type: ignore[index]
        return self._update(point, value, quality, force, quiet)  # type: ignore[arg-type]

    def undeclare(self, id: str, *, ui: bool = False) -> None:
        """Remove a point this instance no longer has."""
        point = (self._ui if ui else self._points).pop(id)
        (self.host.ui if ui else self.host.points).remove(point.name)

    def set_online(
        self, *, restore_quality: bool = True, link: bool = True, restored: Quality = Quality.STALE
    ) -> None:
        """Say the instance is up.

        With `restore_quality`, points that went ``bad`` while it was down become `restored`:
        ``stale`` by default, because their values are carried over from before and the
        device has not confirmed them; the driver's next `set` of each makes it ``good``.
        Drivers that realign every value at once pass ``restore_quality=False`` and set each
        point themselves; a driver whose values are its own (a simulator) may pass
        ``restored=Quality.GOOD``. Points declared with ``follows_connection=False`` are never
        touched. ``link=False`` is for drivers that connect on demand: the instance takes
        writes and its points are usable while ``<name>.connection`` reads ``offline`` until
        the driver sets it as it opens and closes its link."""
        self.host.points.update(self.connection, "online" if link else "offline")
        self._set_state(State.ONLINE, None)
        if restore_quality:
            for table, registry in ((self._points, self.host.points), (self._ui, self.host.ui)):
                for point in table.values():
                    if (
                        point.quality is Quality.BAD
                        and point.follows_connection
                        and point.value is not None  # nothing carried over: bad until read
                        and point is not self.connection
                    ):
                        registry.update(point, point.value, restored)
        self._online.set()

    def set_state(self, state: State, detail: str | None = None) -> None:
        """Report the instance's state with a reason an operator can read (shown by
        ``system.ioservers.<name>``, logs and status pages).

        For drivers that run their own reconnect loop inside `connect` instead of raising to
        the supervisor: e.g. ``RETRYING`` with ``"wrong password; next attempt in 60 s"``
        while waiting out an authentication refusal, or ``ONLINE`` with a note about the
        protocol in use. `set_online` and `set_offline` remain the way to say the link is up
        or down; this only describes it.
        """
        self._set_state(state, detail)

    def set_offline(self) -> None:
        """Say the connection is down: the connection point reads ``offline`` and every other
        point of this instance gets quality ``bad`` (values are kept)."""
        if self._online.is_set():
            self._online = anyio.Event()
        self.host.points.update(self.connection, "offline")
        for table, registry in ((self._points, self.host.points), (self._ui, self.host.ui)):
            registry.set_quality(
                [p for p in table.values() if p.follows_connection and p is not self.connection],
                Quality.BAD,
            )

    async def wait_online(self) -> None:
        """Return once the instance is online."""
        while not self.online:
            await self._online.wait()

    def publish(self, event: Any) -> None:
        """Put an event on the host's event bus, with this instance as its source."""
        self.host.publish(event, source=self.name)

    # -- what the kernel uses -------------------------------------------------------------------
    def attach(self, driver: Any) -> None:
        """Register the driver in this instance's own hook relay (validating its hooks)."""
        pm: pluggy.PluginManager = make_manager()
        pm.register(driver, name=self.name)
        pm.check_pending()
        self.driver = driver
        self._hook = pm.hook

    def implements(self, hook: str) -> bool:
        return self._hook is not None and bool(getattr(self._hook, hook).get_hookimpls())

    def hookimpl(self, hook: str) -> pluggy.HookImpl | None:
        impls = getattr(self._hook, hook).get_hookimpls() if self._hook is not None else []
        return impls[0] if impls else None

    async def _call(self, hook: str, **kwargs: Any) -> Any:
        results = getattr(self._hook, hook)(ioserver=self, **kwargs)
        return await await_maybe(results[0]) if results else NotImplemented

    async def connect(self) -> None:
        if self._hook is None:
            raise IoplexError(f"I/O server {self.name!r} has no driver")
        result = await self._call("connect")
        if result is NotImplemented:  # a driver without a connection: online until stopped
            self.set_online(restored=Quality.GOOD)  # its values are its own
            await anyio.sleep_forever()

    async def discover(self) -> list[str] | None:
        found = await self._call("discover")
        if found is NotImplemented or found is None:
            return None
        ids = list(found)
        keep = set(ids) | {"connection"}
        for id in [i for i in self._points if i not in keep]:
            self.undeclare(id)
        return ids

    async def read(self, point: Point, namespace: str) -> Value:
        value = await self._call("read", point=point, namespace=namespace)
        if value is NotImplemented:
            return point.value
        registry = self.host.ui if namespace == "ui" else self.host.points
        registry.update(point, value)
        return point.value

    async def write(self, point: Point, value: Value, namespace: str) -> None:
        if self._hook is None or not self.implements("write"):
            raise WriteError(f"{point.name}: I/O server {self.name!r} does not take writes")
        await self._call("write", point=point, value=value, namespace=namespace)

    async def replicate(self, logger: str, source_id: str, since: int, limit: int) -> Any:
        if not self.implements("replicate"):
            raise IoplexError(
                f"I/O server {self.name!r} ({self.type}) cannot feed data logger {logger!r}: "
                "it does not implement replicate"
            )
        return await self._call(
            "replicate", logger=logger, source_id=source_id, since=since, limit=limit
        )

    def _set_state(self, state: State, detail: str | None) -> None:
        if state is self.state and detail == self.detail:
            return
        self.state, self.detail = state, detail
        self.host._state_changed(self)
