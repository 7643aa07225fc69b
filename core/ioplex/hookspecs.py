"""The hooks an ioplex plugin can implement.

There are two kinds, and the difference matters for cost:

*Plugin hooks* (`register_ioserver_types`, `plugin_settings_schema`, `serve`, `on_event`) are
implemented by a plugin module and called on every plugin that implements them.

*I/O server hooks* (`connect`, `discover`, `read`, `write`, `replicate`, and `on_event` too)
are implemented by a *driver*: the object a plugin's I/O server type factory returns for one
configured instance. Each instance has its own hook relay holding only its driver, so calling
one instance reaches that instance alone, at a cost independent of how many exist.

Any hook may be a coroutine function (`async def`); ioplex awaits what it returns. No hook
uses `firstresult`, because a coroutine is never None and would always win.

docs/hooks.md has a section per hook; tests/test_docs.py keeps it in step with this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

PROJECT = "ioplex"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- plugin hooks -------------------------------------------------------------------------


@hookspec
def register_ioserver_types(register: Any) -> None:
    """Declare the I/O server types this plugin provides. Called once, at plugin load.

    :param register: call it once per type as
        ``register(name, factory, schema, description=None)``:

        - ``name``: the type's name, the value of ``plugin = "..."`` in an
          ``[ioservers.<name>]`` table; by convention the plugin's own name.
        - ``factory``: called as ``factory(ioserver)`` with the `ioplex.IOServer` handle of
          each configured instance, before anything connects; it returns the *driver*, an
          object whose methods are marked with ``@ioplex.hookimpl`` and implement the I/O
          server hooks. It may declare the instance's static points right away.
        - ``schema``: a JSON Schema (2020-12) for the instance table without its ``plugin``
          key: connection settings (``address``, ``port``, ``user``, ``password``, ...) and an
          ``options`` object. ``additionalProperties: false`` and a ``description`` and
          ``default`` on every option; mark secrets ``"writeOnly": true`` so they are never
          shown in errors. `ioplex.load_schema` reads one shipped as package data.
        - ``description``: one line for ``ioplex plugins``.
    """


@hookspec
def plugin_settings_schema() -> dict[str, Any] | None:
    """Return the JSON Schema of this plugin's ``[plugins.<plugin>]`` table, or None.

    Plugin-wide settings are for what belongs to the plugin rather than to one I/O server
    instance, such as a server the plugin listens as. The table is validated and its defaults
    filled in before anything starts; an absent table is validated as ``{}``.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the ``ioplex`` command line.

    Called once when the command line starts, with every installed plugin loaded, so a
    plugin can offer commands of its own (``ioplex events check``) the way llm and datasette
    plugins do.

    :param cli: the top-level `click.Group`; add commands with ``@cli.command()`` or groups
        with ``@cli.group()``. Use a name of your plugin's to avoid clashes.
    """


@hookspec
def check_config(
    settings: dict[str, Any] | None,
    ioservers: dict[str, Any],
    base_dir: Path,
    loggers: dict[str, Any],
    instances: dict[str, Any],
    host_settings: dict[str, Any],
) -> Any:
    """Check what a JSON Schema cannot express, before anything starts.

    Called once per plugin while the configuration is validated (so ``ioplex check`` reports
    it too), after every table of the plugin passed its schema. Use it for values with an
    inner syntax (a VSCP filter, the port in ``host:port``, an address list) and for rules
    across options. Return an iterable of `ioplex.Problem` with full config paths (e.g.
    ``Problem("ioservers.vscp.options.in_filter", "class 0x10000 is out of range")``), or
    None; never raise for bad input. Do not touch the network or start anything here.

    :param settings: the plugin's validated ``[plugins.<plugin>]`` table, defaults filled in,
        or None when the plugin has no settings schema.
    :param ioservers: the validated instances of this plugin's I/O server types, by name:
        `ioplex.IOServerConfig` objects (``.type``, ``.settings``, ``.options``).
    :param base_dir: the directory relative paths in the configuration are resolved against
        (the config file's).
    :param loggers: the ``[loggers]`` tables by logger id, as written, for a plugin whose
        instances feed or read data loggers (e.g. to say which local logger is missing).
    :param instances: every configured I/O server instance, of any plugin, by name
        (`ioplex.IOServerConfig`), for a plugin whose settings name other instances' points
        (the events plugin's rules).
    :param host_settings: the ``[host]`` table, defaults filled in (e.g. whether
        ``latitude``/``longitude`` are set for what needs the site's position).
    """


@hookspec
async def serve(host: Any, settings: dict[str, Any]) -> None:
    """Run the plugin's own services for the life of the host.

    Called once per plugin after the host has created every I/O server instance, in its own
    supervised task: it should run until cancelled. Raising restarts it with backoff;
    raising `ioplex.FatalError` stops it for good (reported once). Return at once when the
    settings ask for nothing.

    :param host: the running `ioplex.Host`.
    :param settings: the validated ``[plugins.<plugin>]`` table with defaults filled in.
    """


@hookspec
def on_event(host: Any, source: str, event: Any) -> None:
    """See an event published on the host's event bus with `Host.publish`.

    The bus carries protocol events that are not point changes (point changes are delivered
    by `Host.subscribe`); for example every VSCP event in a host. Every plugin and every driver
    that implements this hook gets every event, in order, in its own task with its own bounded
    queue: a slow or failing implementation delays or loses only its own events (logged, with
    the plugin's name, and counted).

    :param host: the running `ioplex.Host`.
    :param source: who published the event: an I/O server instance name, or
        ``plugin:<name>`` for a plugin's own services (instance names have no colon).
    :param event: the event object; implementations check its type and ignore what they do
        not know.
    """


@hookspec
def register_views(register: Any) -> None:
    """Offer read-only views of this plugin's runtime state to interfaces. Called once per
    host, the first time `Host.views` is used.

    A view lets an interface (the web plugin's ``/api/v1/views``, a command) show what the
    plugin knows without importing it: a plugin never depends on another.

    :param register: call it once per view as ``register(name, function, description)``:

        - ``name``: the view's own name (lower case, digits, underscores); it is offered as
          ``<plugin>.<name>``.
        - ``function``: called as ``function(host, **params)``, plain or ``async def``; it
          returns something JSON-able and must not change anything. ``params`` are strings
          from the caller, only those the function names (or any, with ``**params``); it
          checks them and raises `ValueError` with a message for the caller when one is bad.
          A plain function runs on the event loop and must be quick.
        - ``description``: one line for listings.
    """


# --- I/O server hooks (implemented by drivers) --------------------------------------------


@hookspec
async def connect(ioserver: Any) -> None:
    """Open the connection and keep it; return or raise when it ends.

    The supervisor awaits this in the instance's own task. Call ``ioserver.set_online()``
    once the connection is usable; then keep running (reading the device, pushing updates)
    for as long as the connection lives. Release everything in ``finally``: cancellation
    means the host is stopping.

    Raising an ordinary exception, or returning, means the connection was lost: the instance
    goes offline (its points' quality becomes ``bad``) and connect is called again after an
    exponential backoff with jitter. Raise `ioplex.Refused` when the peer refuses this host
    (credentials, an address not allowed): retried slowly, every ``restart_max_delay``, and
    logged once per ten minutes, so it heals when the other side is fixed. Raise
    `ioplex.FatalError` for what only this host's operator can fix (a refused host key, a
    device that is not what the configuration says): it is reported once and the instance
    stays down.

    :param ioserver: the instance's `ioplex.IOServer` handle: its name, validated settings
        and options, data directory, logger, and the methods that declare and set points.
    """


@hookspec
async def discover(ioserver: Any) -> list[str] | None:
    """Find the device's points and declare them. Called after each ``set_online()``.

    Declare points with ``ioserver.declare(...)`` (already declared ones are kept) and return
    the ids of every point the device has now, or None. Points of this instance that are not
    in the returned list are removed from the registry.

    :param ioserver: the instance's `ioplex.IOServer` handle.
    """


@hookspec
async def read(ioserver: Any, point: Any, namespace: str) -> Any:
    """Fetch a fresh value of one point from the device (`Host.read`).

    Return the value; the kernel stores it in the registry. Drivers that keep their points
    current by push need not implement this: `Host.read` then returns the registry's value.

    :param ioserver: the instance's `ioplex.IOServer` handle.
    :param point: the `ioplex.Point` to read.
    :param namespace: ``"io"`` for a data point, ``"ui"`` for a UI variable.
    """


@hookspec
async def write(ioserver: Any, point: Any, value: Any, namespace: str) -> None:
    """Carry out a write to one of this instance's points (`Host.write`).

    Called only for a writable point, with a value already checked against the point's type.
    Writing does not by itself change the point's value: set it (``ioserver.set``) when the
    device confirms, as far as the protocol allows. Raise `ioplex.WriteError` (or any
    exception) to tell the writer the write failed.

    :param ioserver: the instance's `ioplex.IOServer` handle.
    :param point: the `ioplex.Point` being written (``point.name`` is the full name).
    :param value: the new value: str, int, float, bool or None.
    :param namespace: ``"io"`` for a data point, ``"ui"`` for a UI variable.
    """


@hookspec
async def replicate(ioserver: Any, logger: str, source_id: str, since: int, limit: int) -> Any:
    """Fetch raw samples of a remote data logger recorded after a high-water mark.

    Called every poll interval for each local data logger fed by this instance
    (``source = "<instance>"``), until a call returns fewer than `limit` rows.

    Return a sequence of rows ``(seq, time, point, value, quality)`` in increasing ``seq``,
    each with ``seq > since``, at most `limit` of them: ``seq`` is the remote logger's
    sample sequence number (an integer that only grows), ``time`` seconds since the epoch,
    ``point`` the remote point name, ``value`` the sample, ``quality`` a `ioplex.Quality`
    value. The kernel stores rows idempotently and advances the mark only past committed rows.
    Return them as `ioplex.ReplicatedRows(rows, store=...)` with the remote database's
    identity (its ``host.loggers.store_id``) when the source can tell it: a changed identity
    (the remote database was replaced or restored) makes the kernel replicate it again from
    seq 0, skipping samples it already holds, instead of waiting for seqs past the old mark.

    :param ioserver: the instance's `ioplex.IOServer` handle.
    :param logger: the local data logger's id.
    :param source_id: the remote data logger's id.
    :param since: the high-water mark: the largest ``seq`` already stored locally, 0 at first.
    :param limit: the most rows to return in one call.
    """
