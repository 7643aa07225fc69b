"""Fixtures of the events plugin's tests: hosts with dummy points and events files."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import ioplex
import pytest
from ioplex_events import Engine, engine_of

ONLY_EVENTS = {**os.environ, "IOPLEX_LOAD_PLUGINS": "events"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_config(
    tmp_path: Path, rules: str, points: dict[str, Any] | None = None, **settings: Any
) -> dict[str, Any]:
    (tmp_path / "events").mkdir(exist_ok=True)
    (tmp_path / "events" / "main.txt").write_text(rules)
    return {
        "host": {
            "data_dir": str(tmp_path / "data"),
            "clock": "virtual",
            **settings.pop("host", {}),
        },
        "ioservers": {
            "d": {
                "plugin": "dummy",
                "options": {
                    "points": points
                    or {"a": 0, "b": 0, "c": 0, "light": False, "text": "", "t": 20.5}
                },
            },
            **settings.pop("ioservers", {}),
        },
        "plugins": {
            "events": {"files": [str(tmp_path / "events" / "*.txt")], "watch": False, **settings}
        },
    }


@asynccontextmanager
async def running(
    config: dict[str, Any], environ: dict[str, str] | None = None, clock_at: float | None = None
) -> AsyncIterator[tuple[Any, Engine]]:
    """A started host and its engine, once the rules are loaded; `clock_at` sets the
    host's virtual clock before it starts."""
    host = ioplex.Host.from_config(config, environ=environ or ONLY_EVENTS)
    if clock_at is not None:
        host.clock.set(clock_at)
    async with host:
        with anyio.fail_after(10):
            while engine_of(host) is None or not engine_of(host).loaded.is_set():
                await anyio.sleep(0.01)
        yield host, engine_of(host)


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)
