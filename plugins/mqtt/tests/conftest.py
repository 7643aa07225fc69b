"""Fixtures of the mqtt plugin's tests: private brokers on loopback and hosts that use them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from ioplex_mqtt.testing import Mosquitto, NatsCluster

ONLY_THIS_PLUGIN = {**os.environ, "IOPLEX_LOAD_PLUGINS": "mqtt"}
"""Hosts in these tests load no other installed plugin."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own (tests restart and kill it)."""
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats"), nodes=3) as cluster:
        yield cluster
