"""Helpers for this plugin's tests (and for anyone testing a page or API against a real host):
a host running in a thread of its own, and headless Chromium from Debian's packages
(installed with apt-get when missing, as ioplex_ssh.testing installs sshd)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import ioplex
from ioplex.testing import ensure_debian_package

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}
"""alice writes, bob reads."""


def base_config(
    tmp_path: Path,
    web: dict[str, Any] | None = None,
    rate: float = 20,
    extra_points: dict[str, Any] | None = None,
) -> dict[str, Any]:
    points = {
        "light.1": 0,
        "light.2": 1,
        "temp.living": 21.5,
        "door.front": False,
        "label": "hello",
        **(extra_points or {}),
    }
    return {
        "host": {"name": "webtest", "data_dir": str(tmp_path / "data")},
        "ioservers": {
            "dummy": {
                "plugin": "dummy",
                "options": {"points": points, "rate": rate, "ui": {"alarm.text": ""}},
            }
        },
        "loggers": {"climate": {"points": ["dummy.temp.*"], "levels": ["minute", "hour"]}},
        "plugins": {"web": {"enabled": True, "listen": "127.0.0.1:0", **(web or {})}},
    }


USERS = [
    {"name": "alice", "password": PASSWORDS["alice"], "role": "write"},
    {"name": "bob", "password": PASSWORDS["bob"], "role": "read"},
]


class RunningHost:
    """A host running in a background thread's event loop until `stop`."""

    def __init__(self, config: dict[str, Any], environ: dict[str, str] | None = None) -> None:
        self.config = config
        self.environ = environ
        """Passed to `Host.from_config` (``IOPLEX_LOAD_PLUGINS`` to leave plugins out)."""
        self.host: ioplex.Host | None = None
        self.url = ""
        self.error: BaseException | None = None
        self._portal: Any = None
        self._stop: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = anyio.Event()
            self.host = ioplex.Host.from_config(self.config, environ=self.environ, freeze_gc=False)
            async with self.host:
                await self._stop.wait()

        try:
            with anyio.from_thread.start_blocking_portal() as portal:
                self._portal = portal
                portal.call(main)
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc

    def start(self, timeout: float = 20) -> RunningHost:
        info = Path(self.config["host"]["data_dir"]) / "web" / "server.json"
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            if info.exists():
                try:
                    self.url = json.loads(info.read_text())["url"]
                    self.info = json.loads(info.read_text())
                    return self
                except ValueError:
                    pass
            time.sleep(0.05)
        raise TimeoutError("the web server did not start")

    def call(self, func: Any, *args: Any) -> Any:
        """Run `func(*args)` (sync or async) in the host's event loop."""

        async def run() -> Any:
            result = func(*args)
            if hasattr(result, "__await__"):
                result = await result
            return result

        return self._portal.call(run)

    def stop(self) -> None:
        if self._portal is not None and self._stop is not None:
            try:
                self._portal.call(self._stop.set)
            except RuntimeError:
                pass
        self._thread.join(20)


def client(running: RunningHost, user: str | None = None, **kwargs: Any) -> httpx.Client:
    auth = (user, PASSWORDS[user]) if user else None
    return httpx.Client(base_url=running.url, auth=auth, timeout=10, **kwargs)


PACKAGES = ["chromium", "chromium-driver"]


def ensure_chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths, installing Debian's packages first when missing."""
    browser = ensure_debian_package(PACKAGES, "chromium")
    driver = ensure_debian_package(PACKAGES, "chromedriver")
    return str(browser), str(driver)


def start_browser(profile: Path):  # -> selenium WebDriver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)
