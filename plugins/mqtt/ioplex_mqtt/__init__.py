"""ioplex plugin ``mqtt``: hosts share points through an MQTT broker.

One ``[ioservers.<name>]`` table of type ``mqtt`` is one broker connection (Mosquitto, or the
MQTT listener of any node of a NATS cluster, with the other nodes in ``servers``). It
publishes this host's points retained under ``<prefix>/<host>/<point>``, mirrors the points
other hosts publish as ``<name>.<host>.<point>``, and carries writes to the owning host and
its answer back. Many hosts then share one bus instead of one link per pair; see
docs/scaling.md for when to use it rather than hsyco_remote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ioplex
from ioplex.points import check_pattern
from ioplex.serving import RemoteWrites

from .driver import Bridge, parse_server
from .topics import check_id, check_prefix, parse_rules

__all__ = ["Bridge"]


def make_driver(ioserver: ioplex.IOServer) -> Bridge:
    """The driver of the instance's ``profile``; the Sparkplug B one is imported only when
    used (its protobuf runtime is the optional extra ``ioplex-mqtt[sparkplug]``)."""
    if ioserver.options["profile"] != "sparkplug":
        return Bridge(ioserver)
    try:
        from .sparkplug import SparkplugBridge
    except ImportError as exc:
        raise ioplex.FatalError(
            f"ioservers.{ioserver.name}.options.profile: 'sparkplug' needs the protobuf "
            f"runtime ({exc}): pip install 'ioplex-mqtt[sparkplug]'"
        ) from None
    return SparkplugBridge(ioserver)


@ioplex.hookimpl
def register_ioserver_types(register: Any) -> None:
    register(
        "mqtt",
        make_driver,
        ioplex.load_schema(__package__, "mqtt.schema.json"),
        "shares points with other hosts through an MQTT broker (Mosquitto, a NATS cluster)",
    )


@ioplex.hookimpl
def check_config(
    settings: dict[str, Any] | None,
    ioservers: dict[str, ioplex.IOServerConfig],
    base_dir: Path,
    loggers: dict[str, Any],
) -> list[ioplex.Problem]:
    """Broker addresses, the prefix, the patterns and the TLS files: what the schema cannot
    check."""
    problems: list[ioplex.Problem] = []
    for name, io in ioservers.items():
        where = f"ioservers.{name}"
        options = io.options
        for i, entry in enumerate(options["servers"]):
            try:
                parse_server(entry)
            except ValueError as exc:
                problems.append(ioplex.Problem(f"{where}.options.servers[{i}]", str(exc)))
        checks = (
            (parse_rules, options["subscribe"], f"{where}.options.subscribe"),
            (RemoteWrites, options["accept_writes"], f"{where}.options.accept_writes"),
        )
        for check, *args in checks:
            try:
                check(*args)
            except ValueError as exc:
                path, _, message = str(exc).partition(": ")
                problems.append(ioplex.Problem(path, message))
        for i, pattern in enumerate(options["publish"]):
            try:
                check_pattern(pattern)
            except ValueError as exc:
                problems.append(ioplex.Problem(f"{where}.options.publish[{i}]", str(exc)))
        why = check_prefix(options["prefix"])
        if why:
            problems.append(
                ioplex.Problem(f"{where}.options.prefix", f"{options['prefix']!r} {why}")
            )
        if options["profile"] == "sparkplug":
            problems += _check_sparkplug(where, options)
        for key in ("cafile", "certfile", "keyfile"):
            if options[key] and not (base_dir / Path(options[key]).expanduser()).is_file():
                problems.append(
                    ioplex.Problem(f"{where}.options.{key}", f"{options[key]!r} is not a file")
                )
            if options[key] and not options["tls"]:
                problems.append(
                    ioplex.Problem(f"{where}.options.{key}", "is used only with tls = true")
                )
    return problems


def _check_sparkplug(where: str, options: dict[str, Any]) -> list[ioplex.Problem]:
    problems = []
    for key in ("group", "edge_node", "primary_host", "host_id"):
        text = options[key]
        if text or key == "group":
            why = check_id(text)
            if why:
                problems.append(ioplex.Problem(f"{where}.options.{key}", f"{text!r} {why}"))
    if options["host_id"] and options["publish"]:
        problems.append(
            ioplex.Problem(
                f"{where}.options.host_id",
                "an instance is a Sparkplug edge node (publish) or a host application "
                "(host_id), not both: their MQTT last wills differ",
            )
        )
    return problems
