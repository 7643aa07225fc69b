"""Fixtures for the kernel's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ioplex
import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncssh and uvicorn need asyncio; the kernel runs on it


@pytest.fixture
def builtins_only() -> ioplex.Plugins:
    """The built-in plugins alone, whatever else is installed."""
    plugins = ioplex.Plugins()
    plugins.load_builtins()
    return plugins


@pytest.fixture
def make_host(tmp_path: Path, builtins_only: ioplex.Plugins) -> Callable[..., ioplex.Host]:
    """Build a host from a mapping, with its data under tmp_path and fast restarts."""

    def make(config: dict[str, Any], plugins: ioplex.Plugins | None = None) -> ioplex.Host:
        config = dict(config)
        host = {
            "data_dir": str(tmp_path / "data"),
            "restart_delay": 0.05,
            "restart_max_delay": 0.2,
            **config.pop("host", {}),
        }
        return ioplex.Host.from_config({"host": host, **config}, plugins=plugins or builtins_only)

    return make
