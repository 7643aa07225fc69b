"""Fixtures: hosts with the web server on a free loopback port (see ioplex_web.testing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ioplex_web.testing import USERS, RunningHost, base_config


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Any]:
    started: list[RunningHost] = []

    def make(web: dict[str, Any] | None = None, **kwargs: Any) -> RunningHost:
        directory = tmp_path / f"host{len(started)}"
        running = RunningHost(base_config(directory, web, **kwargs)).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def open_host(make_host: Any) -> RunningHost:
    """No users: read-only for loopback."""
    return make_host()


@pytest.fixture
def user_host(make_host: Any) -> RunningHost:
    return make_host({"users": USERS})
