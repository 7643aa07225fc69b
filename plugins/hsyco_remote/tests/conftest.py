"""Shared fixtures: hosts that serve and hosts that replicate, over real HTTPS on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import ioplex
import pytest

PASSWORD = "s3cret*pa%ss word"
"""The test password has a star (rioget's separator), a percent sign and a space."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Kit:
    """Builds host configurations in a test's temporary directory."""

    password = PASSWORD

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def host_table(self, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "data_dir": str(self.tmp_path / name),
            "restart_delay": 0.05,
            "restart_max_delay": 0.2,
            **extra,
        }

    def serving(
        self,
        name: str = "leaf",
        points: dict[str, Any] | None = None,
        *,
        system: bool = False,
        host: dict[str, Any] | None = None,
        ioservers: dict[str, Any] | None = None,
        loggers: dict[str, Any] | None = None,
        **server: Any,
    ) -> dict[str, Any]:
        """A host with a dummy I/O server and the hsyco_remote server on 127.0.0.1:0."""
        config: dict[str, Any] = {
            "host": self.host_table(name, **(host or {})),
            "ioservers": {
                "dummy": {
                    "plugin": "dummy",
                    "options": {"points": points if points is not None else {"light.1": 0}},
                },
                **(ioservers or {}),
            },
            "plugins": {
                "hsyco_remote": {
                    "server": {"listen": "127.0.0.1:0", "password": PASSWORD, **server}
                }
            },
        }
        if system:
            config["ioservers"]["system"] = {"plugin": "system", "options": {"pollinterval": 0.1}}
        if loggers:
            config["loggers"] = loggers
        return config

    def mirror_table(self, info: dict[str, Any], **options: Any) -> dict[str, Any]:
        options.setdefault("fingerprint", info["fingerprint"])
        return {
            "plugin": "hsyco_remote",
            "address": "127.0.0.1",
            "port": info["port"],
            "password": PASSWORD,
            "options": options,
        }

    def replicating(
        self,
        info: dict[str, Any],
        name: str = "top",
        instance: str = "remote",
        *,
        host: dict[str, Any] | None = None,
        loggers: dict[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """A host with one hsyco_remote I/O server `instance` replicating `info`'s server."""
        config: dict[str, Any] = {
            "host": self.host_table(name, **(host or {})),
            "ioservers": {instance: self.mirror_table(info, **options)},
        }
        if loggers:
            config["loggers"] = loggers
        return config


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path)


def _load_fake_hsyco() -> Any:
    """tests/fake_hsyco.py, under a name no other plugin's tests can clash with."""
    import importlib.util
    import sys

    name = "ioplex_hsyco_remote_tests_fake_hsyco"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("fake_hsyco.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fake_hsyco = _load_fake_hsyco()

HSYCO_PASSWORD = "hsyco%41pw*x"
"""As HSYCO shows passwords: raw in the URL, "%41" and "*" included."""


class Hsyco:
    """Fake HSYCO servers (tests/fake_hsyco.py) sharing one CA, and mirror tables for them."""

    password = HSYCO_PASSWORD

    def __init__(self, tmp_path: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cafile = tmp_path / "hsyco-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.cafile))
        self.tmp_path = tmp_path

    def server(self, points: dict[str, str], **kwargs: Any) -> Any:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        kwargs.setdefault("drop_after", 0.2)
        return fake_hsyco.FakeHsyco(
            points, kwargs.pop("password", HSYCO_PASSWORD), context, **kwargs
        )

    def mirror_config(
        self,
        port: int,
        name: str = "top",
        instance: str = "hsyco",
        loggers: dict[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        options.setdefault("cafile", str(self.cafile))
        options.setdefault("retryrefused", 0.3)
        config: dict[str, Any] = {
            "host": Kit(self.tmp_path).host_table(name),
            "ioservers": {
                instance: {
                    "plugin": "hsyco_remote",
                    "address": "127.0.0.1",
                    "port": port,
                    "password": HSYCO_PASSWORD,
                    "options": options,
                }
            },
        }
        if loggers:
            config["loggers"] = loggers
        return config


@pytest.fixture
def hsyco(tmp_path: Path) -> Hsyco:
    return Hsyco(tmp_path)


async def server_info(host: ioplex.Host, timeout: float = 10.0) -> dict[str, Any]:
    """What the serving side of `host` wrote once listening: url, port, fingerprint..."""
    path = host.data_dir / "hsyco_remote" / "server.json"
    with anyio.fail_after(timeout):
        while True:
            try:
                return json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                await anyio.sleep(0.01)


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await anyio.sleep(0.01)


class Background:
    """A host running in its own task, so a test can stop it while others keep running."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.host = ioplex.Host.from_config(config)
        self._scope = anyio.CancelScope()
        self._stopped = anyio.Event()

    async def _run(self, *, task_status: Any) -> None:
        try:
            with self._scope:
                async with self.host:
                    task_status.started()
                    await anyio.sleep_forever()
        finally:
            self._stopped.set()

    async def start(self, tg: Any) -> ioplex.Host:
        await tg.start(self._run)
        return self.host

    async def stop(self) -> None:
        self._scope.cancel()
        await self._stopped.wait()


@pytest.fixture
def background() -> Callable[[dict[str, Any]], Background]:
    return Background


@pytest.fixture
def info_of() -> Callable[..., Any]:
    return server_info


@pytest.fixture
def until() -> Callable[..., Any]:
    return wait_until
