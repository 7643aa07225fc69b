"""The serving side: ``[plugins.hsyco_remote.server]`` as an HTTPS server inside the host.

uvicorn serves the Starlette application through its programmatic API, in the host's own
task: the plugin's `serve` hook runs it for the life of the host, and cancelling the host
shuts it down cleanly (long polls are woken and answered first). The listening socket is
bound here, so port 0 works: the bound address is logged and written, with the certificate's
fingerprint, to ``<data_dir>/hsyco_remote/server.json`` for tools and tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from ioplex import FatalError, Problem, load_schema

from . import certificates
from .access import Gate, parse_allowed
from .api import Api
from .changelog import ChangeLog
from .exposure import Exposure, compile_patterns
from .rioget import PATH as RIOGET_PATH
from .rioget import Rioget

log = logging.getLogger("ioplex.plugin.hsyco_remote.server")

WHERE = "plugins.hsyco_remote.server"
STATE_DIR = "hsyco_remote"
INFO_FILE = "server.json"
DEFAULTS = {
    key: sub["default"]
    for key, sub in load_schema(__package__, "settings.schema.json")["properties"]["server"][
        "properties"
    ].items()
}
TOPOLOGY_CHECK = 0.5
"""Seconds between checks of the exposed point count (a length comparison when unchanged)."""
SHUTDOWN_GRACE = 3.0
"""Seconds the server may take to finish answering requests when the host stops."""


@dataclass(frozen=True)
class ServerSettings:
    """``[plugins.hsyco_remote.server]``, checked beyond what its JSON Schema can say."""

    bind_host: str
    port: int
    password: str
    allowed: list[Any] | None
    control: bool
    io_filter: tuple[str, ...]
    ui_filter: tuple[str, ...]
    certificate: Path | None
    key: Path | None


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8443"``, ``"[::1]:8443"``, ``"0.0.0.0:0"`` → (host, port); ValueError."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(
            f"{WHERE}.listen: {text!r} is not <address>:<port> "
            "(e.g. \"127.0.0.1:8443\", \"0.0.0.0:443\", \"[::]:8443\"; port 0 picks a free one)"
        )
    return host, int(port_text)


def parse_settings(table: dict[str, Any], base_dir: Path) -> ServerSettings | None:
    """The server's settings, or None when no password is set (the server is off).

    Raises FatalError naming the setting and the offending value.
    """
    if not table.get("password"):
        return None
    try:
        bind_host, port = parse_listen(table["listen"])
        address = table["address"]
        allowed = parse_allowed([address] if isinstance(address, str) else address,
                                f"{WHERE}.address")
    except ValueError as exc:
        raise FatalError(str(exc)) from None
    cert, key = table["certificate"], table["key"]
    if bool(cert) != bool(key):
        missing = "key" if cert else "certificate"
        raise FatalError(f"{WHERE}.{missing}: required when "
                         f"{'certificate' if cert else 'key'} is set")
    return ServerSettings(
        bind_host=bind_host,
        port=port,
        password=table["password"],
        allowed=allowed,
        control=table["control"],
        io_filter=tuple(table["io_filter"]),
        ui_filter=tuple(table["ui_filter"]),
        certificate=(base_dir / os.path.expanduser(cert)) if cert else None,
        key=(base_dir / os.path.expanduser(key)) if key else None,
    )


def _missing_password(table: dict[str, Any]) -> str | None:
    """The complaint when server settings are given without the password that turns it on."""
    given = sorted(k for k, v in table.items() if k != "password" and v != DEFAULTS.get(k))
    if table.get("password") or not given:
        return None
    return (f"{WHERE}.password: required to run the server "
            f"({', '.join(given)} {'is' if len(given) == 1 else 'are'} set)")


def check_settings(table: dict[str, Any], base_dir: Path) -> list[Problem]:
    """What `run` would refuse, found while the configuration is validated (check_config)."""
    found: list[str] = []
    try:
        settings = parse_settings(table, base_dir)
        if settings is not None and settings.certificate is not None:
            load_certificate(settings, host=None)  # reads the configured files only
    except FatalError as exc:
        found.append(str(exc))
    missing = _missing_password(table)
    if missing:
        found.append(missing)
    for key in ("io_filter", "ui_filter"):
        try:
            compile_patterns(table[key], f"{WHERE}.{key}")
        except ValueError as exc:
            found.append(str(exc))
    return [Problem(*message.split(": ", 1)) for message in found]  # messages are "path: what"


def load_certificate(settings: ServerSettings, host: Any) -> certificates.Certificate:
    if settings.certificate is not None and settings.key is not None:
        try:
            return certificates.load(settings.certificate, settings.key)
        except OSError as exc:
            raise FatalError(
                f"{WHERE}.certificate/key: cannot read {exc.filename!r}: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise FatalError(
                f"{WHERE}.certificate/key: {settings.certificate} / {settings.key}: {exc}"
            ) from None
    return certificates.load_or_create(host.data_dir / STATE_DIR, host.name)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; OSError (retried by the supervisor) when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # protocol says TCP, and without it Nagle's algorithm adds ~40 ms to every answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port} ({WHERE}.listen): "
                                 f"{exc.strerror}") from None
    return sock


class _HostedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_app(api: Api, rioget: Rioget) -> Starlette:
    routes = [Route(RIOGET_PATH, rioget.endpoint, methods=["GET"]), *api.routes()]
    return Starlette(routes=routes)


async def run(host: Any, table: dict[str, Any]) -> None:
    """Serve until cancelled; return at once when no password is configured."""
    settings = parse_settings(table, host.config.base_dir)
    if settings is None:
        missing = _missing_password(table)
        if missing:
            raise FatalError(missing)
        return
    try:
        exposure = Exposure(host, settings.io_filter, settings.ui_filter, WHERE)
    except ValueError as exc:
        raise FatalError(str(exc)) from None
    cert = load_certificate(settings, host)
    gate = Gate(settings.password, settings.allowed)
    info_file = host.data_dir / STATE_DIR / INFO_FILE
    info_file.unlink(missing_ok=True)
    sock = bind(settings.bind_host, settings.port)
    port = sock.getsockname()[1]
    changelog = ChangeLog(host.points, host.ui, settings.io_filter, settings.ui_filter)
    with sock, changelog:  # the socket is closed whatever happens from here on
        api = Api(host, exposure, changelog, gate, settings.control)
        app = build_app(api, Rioget(host, exposure, changelog, gate))
        config = uvicorn.Config(
            app,
            ssl_certfile=str(cert.certfile),
            ssl_keyfile=str(cert.keyfile),
            log_config=None,        # the host configures logging, not uvicorn
            access_log=False,       # rioget URLs carry the password
            proxy_headers=False,    # X-Forwarded-For must not get past the address check
            server_header=False,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        server = _HostedServer(config)
        url = f"https://{_url_host(settings.bind_host)}:{port}"
        _write_info(info_file, {"url": url, "host": settings.bind_host, "port": port,
                                "fingerprint": cert.fingerprint,
                                "certificate": str(cert.certfile)})
        log.info(
            "hsyco_remote server of host %s listening on %s; certificate %s (%s), SHA-256 "
            "fingerprint %s; control %s",
            host.name, url, cert.certfile, "self-signed, generated now" if cert.generated
            else "configured" if settings.certificate else "self-signed", cert.fingerprint,
            "enabled" if settings.control else "disabled",
        )
        finished = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_topology, exposure, changelog)
                await server.serve(sockets=[sock])
                finished = True  # uvicorn stopped by itself, and has shut down already
                raise RuntimeError(f"the HTTPS server on {url} stopped unexpectedly")
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE + 1):
                changelog.close()  # answers every waiting long poll at once
                server.should_exit = True
                if not finished and server.started:
                    await server.shutdown(sockets=[sock])
            info_file.unlink(missing_ok=True)
            log.info("hsyco_remote server of host %s stopped", host.name)


async def _watch_topology(exposure: Exposure, changelog: ChangeLog) -> None:
    """Wake the long polls when the number of exposed points differs from what clients were
    last told, so they notice points that appeared without an event (declared quietly) or
    vanished, within a second."""
    while True:
        await anyio.sleep(TOPOLOGY_CHECK)
        if exposure.counts_changed():
            changelog.touch()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _write_info(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
