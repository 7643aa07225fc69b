"""Read-only views of plugins' runtime state, for interfaces to serve.

A plugin offers a view with the `register_views` hook (the way datasette plugins add
routes): a named function ``function(host, **params)`` whose answer is JSON-able, such as the
events plugin's last firings (``events.traces``). Interfaces (the web API, a CLI) list and
call views through `Host.views` without importing the plugin that offers them, so no plugin
depends on another.

Views are named ``<plugin>.<view>``. Parameters come from the caller as strings; the view
checks them and raises `ValueError` with a message for the caller when one is bad. Anything
else the view raises, or an answer that is not JSON, is the view's fault: `ViewError`.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from .errors import IoplexError
from .plugins import call_impl
from .points import printable
from .serving import jsontext

log = logging.getLogger("ioplex.views")

VIEW_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
"""A view's own name (after ``<plugin>.``): lower case, digits, underscores."""
MAX_PARAMS = 32
"""Most parameters one call may pass."""
MAX_PARAM_NAME = 64
MAX_PARAM_VALUE = 4096
"""Longest parameter value, in characters: views take names, numbers and patterns."""
DEFAULT_TIMEOUT = 10.0
"""Seconds an async view may take before `Views.call` gives up on it."""


class UnknownViewError(IoplexError, LookupError):
    """No view has this name."""

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0]) if self.args else ""


class ViewParamError(IoplexError, ValueError):
    """The caller's parameters do not suit the view (the view's own message)."""


class ViewError(IoplexError):
    """The view failed, took too long, or answered something that is not JSON."""


@dataclass(frozen=True)
class View:
    """One registered view."""

    name: str
    """``<plugin>.<view>``."""
    plugin: str
    function: Callable[..., Any]
    description: str
    params: tuple[str, ...]
    """The parameters the function names, in order (``host`` excluded)."""
    required: frozenset[str]
    any_params: bool
    """Whether the function takes ``**params`` (any name is then passed on)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "description": self.description,
            "params": list(self.params),
            "required": sorted(self.required),
        }


def make_view(plugin: str, name: str, function: Callable[..., Any], description: str) -> View:
    """Check one registration; raise `IoplexError` saying what is wrong with it."""
    where = f"plugin {plugin!r}, view {name!r}"
    if not isinstance(name, str) or not VIEW_NAME.match(name):
        raise IoplexError(
            f"{where}: a view name is lower case letters, digits and underscores, "
            "starting with a letter, at most 63 characters"
        )
    if not callable(function):
        raise IoplexError(f"{where}: the function is not callable")
    if not isinstance(description, str) or not description.strip():
        raise IoplexError(f"{where}: give a one-line description")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise IoplexError(f"{where}: cannot read the function's signature: {exc}") from None
    parameters = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or parameters[0].kind not in positional:
        raise IoplexError(f"{where}: the function must take the host as its first argument")
    params: list[str] = []
    required: set[str] = set()
    any_params = False
    for p in parameters[1:]:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            any_params = True
        elif p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL):
            raise IoplexError(f"{where}: parameter {p.name!r} must be passable by name")
        else:
            params.append(p.name)
            if p.default is inspect.Parameter.empty:
                required.add(p.name)
    return View(
        f"{plugin}.{name}",
        plugin,
        function,
        " ".join(description.split()),
        tuple(params),
        frozenset(required),
        any_params,
    )


class Views(Mapping[str, View]):
    """Every view the loaded plugins offer, by name (``host.views``)."""

    def __init__(self) -> None:
        self._views: dict[str, View] = {}
        self.problems: list[str] = []
        """Registrations refused, one line each (also logged at ERROR)."""

    def __getitem__(self, name: str) -> View:
        try:
            return self._views[name]
        except KeyError:
            raise UnknownViewError(self._unknown(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._views))

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, name: object) -> bool:
        return name in self._views

    def _unknown(self, name: str) -> str:
        msg = f"no view named '{printable(str(name))}'"
        close = difflib.get_close_matches(str(name)[:200], list(self._views), n=1)
        if close:
            return msg + f"; did you mean {close[0]!r}?"
        return msg + (f"; views: {', '.join(sorted(self._views))}" if self._views else "")

    # -- registering -------------------------------------------------------------------------
    @classmethod
    def collect(cls, plugins: Any) -> Views:
        """Call every plugin's `register_views`, each in isolation: a plugin whose
        registration fails (a bad name, a duplicate, an exception) offers no view at all,
        and the problem is logged and kept in `problems`; the others are unaffected."""
        views = cls()
        for impl in plugins.impls("register_views"):
            staged: dict[str, View] = {}
            try:
                call_impl(impl, register=views._registrar(impl.plugin_name, staged))
            except Exception as exc:  # noqa: BLE001 - a plugin is isolated
                problem = f"plugin {impl.plugin_name}: views not registered: {exc}"
                views.problems.append(problem)
                log.error("%s", problem)
                continue
            views._views.update(staged)
        return views

    def _registrar(self, plugin: str, staged: dict[str, View]) -> Callable[..., None]:
        """The ``register`` function one plugin's hook gets; it stages into `staged`."""

        def register(name: str, function: Callable[..., Any], description: str) -> None:
            view = make_view(plugin, name, function, description)
            other = self._views.get(view.name) or staged.get(view.name)
            if other is not None:
                raise IoplexError(
                    f"view {view.name!r} of plugin {plugin!r} is already registered "
                    f"by plugin {other.plugin!r}"
                )
            staged[view.name] = view

        return register

    def add(self, plugin: str, name: str, function: Callable[..., Any], description: str) -> View:
        """Register one view directly (for embedders and tests); `IoplexError` if taken."""
        self._registrar(plugin, self._views)(name, function, description)
        return self._views[f"{plugin}.{name}"]

    # -- calling -----------------------------------------------------------------------------
    def check_params(self, view: View, params: Mapping[str, str]) -> dict[str, str]:
        """The parameters as the view will get them; `ViewParamError` for what no view
        should ever see (unknown or missing names, non-strings, huge values)."""
        if len(params) > MAX_PARAMS:
            raise ViewParamError(f"view {view.name}: at most {MAX_PARAMS} parameters")
        out: dict[str, str] = {}
        for key, value in params.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ViewParamError(f"view {view.name}: parameters are strings")
            if len(key) > MAX_PARAM_NAME or not key.isidentifier():
                raise ViewParamError(f"view {view.name}: bad parameter name '{printable(key)}'")
            if len(value) > MAX_PARAM_VALUE:
                raise ViewParamError(
                    f"view {view.name}: {key} is longer than {MAX_PARAM_VALUE} characters"
                )
            if key not in view.params and not view.any_params:
                takes = ", ".join(view.params) or "no parameters"
                raise ViewParamError(
                    f"view {view.name}: unknown parameter '{printable(key)}' (it takes {takes})"
                )
            out[key] = value
        missing = sorted(view.required - out.keys())
        if missing:
            raise ViewParamError(f"view {view.name}: missing parameter {', '.join(missing)}")
        return out

    async def call(
        self,
        host: Any,
        name: str,
        params: Mapping[str, str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        """The view's answer.

        Raises `UnknownViewError` (with a did-you-mean), `ViewParamError` (the caller's
        fault: the view's message) or `ViewError` (the view's fault: its exception, or no
        answer within `timeout` seconds). A sync view runs on the event loop and must be
        quick; an async one may await (a database read in a worker thread).
        """
        view = self[name]
        kwargs = self.check_params(view, params or {})
        with anyio.move_on_after(timeout) as scope:
            try:
                result = view.function(host, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except ValueError as exc:
                raise ViewParamError(f"view {view.name}: {exc}") from None
            except Exception as exc:
                raise ViewError(
                    f"view {view.name} of plugin {view.plugin} failed: {type(exc).__name__}: "
                    f"{printable(str(exc), 300)}"
                ) from exc
            return result
        assert scope.cancelled_caught
        raise ViewError(f"view {view.name} of plugin {view.plugin} took over {timeout:g} s")

    async def call_json(
        self,
        host: Any,
        name: str,
        params: Mapping[str, str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> str:
        """`call`, its answer as JSON text (NaN and infinities as strings, see
        `ioplex.serving.jsontext`); `ViewError` if the answer is not JSON-able."""
        result = await self.call(host, name, params, timeout=timeout)
        try:
            return jsontext.dumps(result, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ViewError(
                f"view {name} answered something that is not JSON: {type(exc).__name__}: "
                f"{printable(str(exc), 200)}"
            ) from None
