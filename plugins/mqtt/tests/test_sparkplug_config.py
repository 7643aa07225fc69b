"""Configuration of the Sparkplug B profile: what check_config and the driver refuse."""

from __future__ import annotations

from pathlib import Path

import ioplex
import pytest
from ioplex_mqtt.sparkplug import SparkplugBridge
from ioplex_mqtt.testing import ONLY_THIS_PLUGIN


def load(tmp_path: Path, **options: object) -> ioplex.Host:
    config = {
        "host": {"name": "site-a", "data_dir": str(tmp_path)},
        "ioservers": {
            "bus": {
                "plugin": "mqtt",
                "address": "127.0.0.1",
                "options": {"profile": "sparkplug", **options},
            }
        },
    }
    return ioplex.Host.from_config(config, environ=ONLY_THIS_PLUGIN)


def test_refusals_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ioplex.ConfigError) as caught:
        load(tmp_path, edge_node="a/b", primary_host="x#", publish=["dummy.*"], host_id="h")
    text = str(caught.value)
    for expected in (
        "ioservers.bus.options.group: '' must not be empty",
        "ioservers.bus.options.edge_node: 'a/b' must not contain",
        "ioservers.bus.options.primary_host: 'x#'",
        "ioservers.bus.options.host_id: an instance is a Sparkplug edge node",
    ):
        assert expected in text, (expected, text)


@pytest.mark.anyio
async def test_profile_picks_the_driver(tmp_path: Path) -> None:
    """The instance gets the Sparkplug driver (no broker needed: it keeps retrying)."""
    async with load(tmp_path, group="plant", publish=["dummy.*"]) as host:
        driver = host.ioservers["bus"].driver
        assert isinstance(driver, SparkplugBridge)
        assert driver.edge_node == "site-a" and driver.group == "plant"
        assert driver.persistent is False  # Sparkplug: clean sessions
        assert driver.topic("NBIRTH", driver.edge_node) == "spBv1.0/plant/NBIRTH/site-a"
