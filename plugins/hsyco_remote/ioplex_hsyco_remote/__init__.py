"""ioplex plugin ``hsyco_remote``: server-to-server replication over HTTPS.

Both sides of HSYCO Remote in one plugin:

- the *serving side*, ``[plugins.hsyco_remote.server]``: an HTTPS server (uvicorn, in the
  host's task) exposing this host's points, UI variables, data loggers and clock through
  HSYCO's public ``/x/rioget`` endpoint and a versioned JSON API (``/api/v1``);
- the *replicating side*, I/O server type ``hsyco_remote``: mirrors a remote host's points as
  ``<name>.<remote point>``, forwards writes, replicates data loggers and watches (and
  optionally sets) the remote's clock; or mirrors a real HSYCO server's I/O points through
  its public rioget endpoint.

Multi-level chains work because a mirrored point is a point like any other: a concentrator
serves its mirrors to the next level up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ioplex
from ioplex.points import check_pattern

from . import server
from .dataloggers import check_feeds, remote_ids
from .mirror import Mirror, tls_trust

__all__ = ["Mirror"]

PRIVATE_API_OPTIONS = ("ui", "clocksync", "dataloggers")
"""Options that need the private API (API v1 here): nothing in rioget carries them."""


@ioplex.hookimpl
def register_ioserver_types(register: Any) -> None:
    register(
        "hsyco_remote",
        Mirror,
        ioplex.load_schema(__package__, "hsyco_remote.schema.json"),
        "replicates another host's points, UI variables, data loggers and clock over HTTPS",
    )


@ioplex.hookimpl
def plugin_settings_schema() -> dict[str, Any]:
    return ioplex.load_schema(__package__, "settings.schema.json")


@ioplex.hookimpl
def check_config(
    settings: dict[str, Any],
    ioservers: dict[str, ioplex.IOServerConfig],
    base_dir: Path,
    loggers: dict[str, Any],
) -> list[ioplex.Problem]:
    """The server's listen address, allow-list, certificate pair and filters, each mirror's
    CA file or fingerprint, and the local logger of each replicated one: what the schemas
    cannot check."""
    problems = server.check_settings(settings["server"], base_dir)
    problems += check_feeds(loggers, ioservers)
    for name, io in ioservers.items():
        where = f"ioservers.{name}.options"
        try:
            tls_trust(f"ioservers.{name}", io.options, base_dir)
        except ioplex.FatalError as exc:
            problems.append(ioplex.Problem(*str(exc).split(": ", 1)))
        options = io.options
        if options["protocol"] == "rioget":
            for option in PRIVATE_API_OPTIONS:
                value = options[option]
                if remote_ids(value) if option == "dataloggers" else value:
                    problems.append(
                        ioplex.Problem(
                            f"{where}.{option}",
                            'needs HSYCO\'s private API, which protocol = "rioget" does not '
                            "have (rioget mirrors I/O points only); remove it or use "
                            'protocol = "auto" with an ioplex remote',
                        )
                    )
        elif options["convert"] and options["protocol"] == "api":
            problems.append(
                ioplex.Problem(
                    f"{where}.convert", "applies to rioget only; API v1 values keep their types"
                )
            )
        for pattern in options["convert"]:
            try:
                check_pattern(pattern)
            except ValueError as exc:
                problems.append(ioplex.Problem(f"{where}.convert", str(exc)))
    return problems


@ioplex.hookimpl
async def serve(host: Any, settings: dict[str, Any]) -> None:
    """Run the serving side for the life of the host (returns at once when it is off)."""
    await server.run(host, settings["server"])
