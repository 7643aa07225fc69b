"""Finding, loading and describing plugins.

Plugins are modules registered in the entry-point group ``ioplex``; the entry point's name is
the plugin's name. Each is loaded in isolation: one that fails to import, or whose hooks do
not match the specs, is reported with its name, version and error and skipped, and never
stops the host (pluggy's own `load_setuptools_entrypoints` aborts on the first failure, so
this loop is written here).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import hookspecs
from .config import check_plugin_schema
from .errors import IoplexError, Problem

log = logging.getLogger("ioplex.plugins")

GROUP = hookspecs.PROJECT
ENV_LOAD = "IOPLEX_LOAD_PLUGINS"
DEFAULT_PLUGINS = ("ioplex.builtins.system", "ioplex.builtins.dummy")
"""The built-in plugins, shipped with the kernel and registered like any other."""


def make_manager() -> pluggy.PluginManager:
    """A plugin manager with ioplex's hook specs and no plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


async def await_maybe(value: Any) -> Any:
    """Await `value` if it is awaitable: hooks may be plain or `async def` functions."""
    if inspect.isawaitable(value):
        return await value
    return value


def call_impl(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    """Call one hook implementation with the arguments it asks for.

    Used where each implementation must be isolated from the others (a plugin's error must
    not stop the next one), which pluggy's all-or-nothing hook call does not allow.
    """
    return impl.function(*[kwargs[name] for name in impl.argnames])


def load_schema(package: str, resource: str = "schema.json") -> dict[str, Any]:
    """Read a JSON Schema shipped as package data, e.g. ``load_schema(__package__)``."""
    return json.loads(files(package).joinpath(resource).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class IOServerType:
    """An I/O server type a plugin provides: what ``plugin = "<name>"`` refers to."""

    name: str
    plugin: str
    factory: Callable[[Any], Any]
    schema: dict[str, Any]
    description: str | None = None


@dataclass
class PluginInfo:
    """What `ioplex plugins` reports about one plugin."""

    name: str
    version: str | None = None
    distribution: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "types": self.types,
            **({"error": self.error} if self.error else {}),
        }


class Plugins:
    """The loaded plugins: a pluggy manager plus what each plugin declared."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm or make_manager()
        self.info: dict[str, PluginInfo] = {}
        self.failed: list[PluginInfo] = []
        self.types: dict[str, IOServerType] = {}
        self._settings_schemas: dict[str, dict[str, Any] | None] = {}

    # -- registering ---------------------------------------------------------------------------
    def register(
        self,
        plugin: object,
        name: str,
        *,
        version: str | None = None,
        distribution: str | None = None,
        builtin: bool = False,
    ) -> PluginInfo:
        """Register a plugin object (a module or an object with hookimpls) under `name`.

        Errors in its hook signatures or its registration hooks are recorded in `failed` and
        the plugin is left out; nothing is raised.
        """
        info = PluginInfo(name, version, distribution, builtin)
        try:
            if name in self.info:
                raise IoplexError(f"a plugin named {name!r} is already registered")
            self.pm.register(plugin, name=name)
            try:
                self.pm.check_pending()
                self._declare(plugin, name, info)
            except BaseException:
                self.pm.unregister(plugin, name=name)
                for type_name in info.types:
                    self.types.pop(type_name, None)
                self._settings_schemas.pop(name, None)
                raise
        except Exception as exc:  # noqa: BLE001 - a plugin is isolated
            info.error = f"{type(exc).__name__}: {exc}"
            self.failed.append(info)
            log.error("plugin %s %s failed to load and is skipped: %s", name, version or "", exc)
            return info
        info.hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or () if caller.name
        )
        self.info[name] = info
        return info

    def _declare(self, plugin: object, name: str, info: PluginInfo) -> None:
        for impl in self.pm.hook.register_ioserver_types.get_hookimpls():
            if impl.plugin is not plugin:
                continue

            def register(
                type_name: str,
                factory: Callable[[Any], Any],
                schema: dict[str, Any],
                description: str | None = None,
            ) -> None:
                if type_name in self.types:
                    raise IoplexError(
                        f"I/O server type {type_name!r} is already provided by plugin "
                        f"{self.types[type_name].plugin!r}"
                    )
                check_plugin_schema(schema, f"plugin {name}, type {type_name}")
                self.types[type_name] = IOServerType(type_name, name, factory, schema, description)
                info.types.append(type_name)

            call_impl(impl, register=register)
        for impl in self.pm.hook.plugin_settings_schema.get_hookimpls():
            if impl.plugin is plugin:
                schema = call_impl(impl)
                if schema is not None:
                    check_plugin_schema(schema, f"plugin {name}, settings")
                self._settings_schemas[name] = schema

    def load_builtins(self) -> None:
        version = _version("ioplex")
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.register(
                module,
                module_name.rsplit(".", 1)[1],
                version=version,
                builtin=True,
                distribution="ioplex",
            )

    def load_entrypoints(self, environ: Mapping[str, str] | None = None) -> None:
        """Load every plugin of the ``ioplex`` entry-point group, each in isolation.

        ``IOPLEX_LOAD_PLUGINS=a,b`` loads only those (by plugin or distribution name); an
        empty value loads none.
        """
        environ = os.environ if environ is None else environ
        allowed: set[str] | None = None
        if ENV_LOAD in environ:
            allowed = {n.strip() for n in environ[ENV_LOAD].split(",") if n.strip()}
        for ep in importlib.metadata.entry_points(group=GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            if allowed is not None and ep.name not in allowed and dist_name not in allowed:
                continue
            if ep.name in self.info:
                continue
            mismatch = _kernel_mismatch(dist)
            if mismatch:
                info = PluginInfo(ep.name, version, dist_name, error=mismatch)
                self.failed.append(info)
                log.error(
                    "plugin %s %s (%s) is skipped: %s",
                    ep.name,
                    version or "",
                    dist_name or ep.value,
                    mismatch,
                )
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # a plugin's import may even call sys.exit
                if isinstance(exc, KeyboardInterrupt):
                    raise
                info = PluginInfo(ep.name, version, dist_name, error=f"{type(exc).__name__}: {exc}")
                self.failed.append(info)
                log.error(
                    "plugin %s %s (%s) failed to import and is skipped: %s",
                    ep.name,
                    version or "",
                    dist_name or ep.value,
                    info.error,
                )
                continue
            self.register(plugin, ep.name, version=version, distribution=dist_name)

    # -- asking --------------------------------------------------------------------------------
    def settings_schema(self, plugin: str) -> dict[str, Any] | None:
        """The schema of ``[plugins.<plugin>]``, or None if the plugin has no settings."""
        return self._settings_schemas.get(plugin)

    def check_config(
        self,
        settings: dict[str, dict[str, Any]],
        ioservers: dict[str, Any],
        base_dir: Path,
        loggers: dict[str, Any] | None = None,
        host_settings: dict[str, Any] | None = None,
    ) -> list[Problem]:
        """Run each plugin's `check_config` hook on its own tables, isolated from the others."""
        problems: list[Problem] = []
        for impl in self.impls("check_config"):
            name = impl.plugin_name
            mine = {n: io for n, io in ioservers.items() if self.types[io.type].plugin == name}
            try:
                problems.extend(
                    call_impl(
                        impl,
                        settings=settings.get(name),
                        ioservers=mine,
                        base_dir=base_dir,
                        loggers=loggers or {},
                        instances=dict(ioservers),
                        host_settings=dict(host_settings or {}),
                    )
                    or ()
                )
            except Exception as exc:  # noqa: BLE001 - a plugin is isolated
                problems.append(
                    Problem(
                        f"plugins.{name}",
                        f"plugin {name!r} failed to check its configuration: "
                        f"{type(exc).__name__}: {exc}",
                    )
                )
        return problems

    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """The implementations of a plugin hook, in call order."""
        return getattr(self.pm.hook, hook).get_hookimpls()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _kernel_mismatch(dist: Any) -> str | None:
    """Why a plugin's distribution cannot run on this kernel, or None.

    A plugin states the kernel API it supports as its dependency on ``ioplex`` (e.g.
    ``ioplex>=0.1,<0.2``): the kernel's minor version is its API version while below 1.0.
    pip enforces it when installing; this catches what pip did not see (``--no-deps``, a
    kernel upgraded later, a checkout on the path) with a message instead of an ImportError
    or a wrong call at run time.
    """
    kernel = _version("ioplex")
    if dist is None or kernel is None:
        return None
    for text in dist.requires or ():
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != "ioplex" or requirement.marker is not None:
            continue
        if requirement.specifier and not requirement.specifier.contains(kernel, prereleases=True):
            return (
                f"requires ioplex{requirement.specifier} but ioplex {kernel} is installed; "
                "install a version of the plugin made for this kernel"
            )
    return None


def load_plugins(environ: Mapping[str, str] | None = None) -> Plugins:
    """The built-in plugins plus every installed plugin `IOPLEX_LOAD_PLUGINS` allows."""
    plugins = Plugins()
    plugins.load_builtins()
    plugins.load_entrypoints(environ)
    return plugins
