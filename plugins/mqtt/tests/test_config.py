"""Configuration: what check_config refuses, with paths; the README's examples and options
table stay true."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import ioplex
import pytest
from ioplex_mqtt.driver import client_id
from ioplex_mqtt.testing import ONLY_THIS_PLUGIN

README = Path(__file__).parent.parent / "README.md"


def load(tmp_path: Path, **table: object) -> ioplex.Host:
    config = {
        "host": {"name": "site-a", "data_dir": str(tmp_path)},
        "ioservers": {"bus": {"plugin": "mqtt", "address": "127.0.0.1", **table}},
    }
    return ioplex.Host.from_config(config, environ=ONLY_THIS_PLUGIN)


def problems(tmp_path: Path, **options: object) -> str:
    with pytest.raises(ioplex.ConfigError) as caught:
        load(tmp_path, password="hunter2-secret", options=options)
    text = str(caught.value)
    assert "hunter2-secret" not in text
    return text


def test_refusals_name_the_path(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        servers=["10.0.0.1:1883", "nonsense", "[::1]:0"],
        subscribe=["site-b", "site-b/*"],
        publish=["bad name"],
        accept_writes=["ok.*", "a\u200bb"],
        prefix="a/+/b",
        cafile="missing.pem",
    )
    for expected in (
        "ioservers.bus.options.servers[1]",
        "ioservers.bus.options.servers[2]",
        "ioservers.bus.options.subscribe[0]",
        "ioservers.bus.options.publish[0]",
        "ioservers.bus.options.accept_writes[1]",
        "ioservers.bus.options.prefix",
        "ioservers.bus.options.cafile",
    ):
        assert expected in text, (expected, text)
    assert "servers[0]" not in text and "subscribe[1]" not in text


def test_good_config(tmp_path: Path) -> None:
    host = load(
        tmp_path,
        options={
            "servers": ["10.0.0.2:1883", "[::1]:1884"],
            "subscribe": ["*/*"],
            "publish": ["dummy.*"],
        },
    )
    driver = host.config.ioservers["bus"]
    assert driver.options["qos"] == 1 and driver.options["max_hops"] == 8


def test_client_ids() -> None:
    assert client_id("site-a", "bus", "") == "ioplex-site-a-bus"
    long = client_id("a-very-long-host-name", "bus", "")
    assert len(long) <= 23 and long == client_id("a-very-long-host-name", "bus", "")
    assert long != client_id("a-very-long-host-name", "bus2", "")
    assert client_id("x", "y", "mine") == "mine"


def test_readme_schema_block_is_current() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "ioplex", "schema", "mqtt", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=ONLY_THIS_PLUGIN,
    ).stdout
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- BEGIN ioplex schema -->\n", "<!-- END ioplex schema -->"
    assert text[text.index(begin) + len(begin) : text.index(end)] == generated, (
        "regenerate: ioplex schema mqtt --update plugins/mqtt/README.md"
    )


def test_readme_configs_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        config = tomllib.loads(block)
        config["host"]["data_dir"] = str(tmp_path)
        environ = {**ONLY_THIS_PLUGIN, "MQTT_PASSWORD": "x"}
        host = ioplex.Host.from_config(config, environ=environ)
        assert any(io.type == "mqtt" for io in host.config.ioservers.values())


def test_scaling_doc_configs_are_valid(tmp_path: Path) -> None:
    doc = Path(__file__).parents[3] / "docs" / "scaling.md"
    blocks = re.findall(r"```toml\n(.*?)```", doc.read_text(), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        config = tomllib.loads(block)
        config["host"]["data_dir"] = str(tmp_path)
        host = ioplex.Host.from_config(config, environ={**ONLY_THIS_PLUGIN, "MQTT_PASSWORD": "x"})
        assert host.config.ioservers["bus"].type == "mqtt"


def test_scaling_doc_nats_config_is_the_tested_one(tmp_path: Path) -> None:
    """The cluster settings shown are those the tests run (JetStream, cluster routes, the
    MQTT listener with three replicas)."""
    from ioplex_mqtt.testing import NatsCluster

    doc = (Path(__file__).parents[3] / "docs" / "scaling.md").read_text()
    shown = re.search(r"```\n(server_name.*?)```", doc, re.DOTALL).group(1)
    tested = tmp_path / "n0.conf"
    NatsCluster(tmp_path, nodes=3)
    for key in (
        "server_name:",
        "jetstream {",
        "cluster {",
        "routes: [",
        "mqtt {",
        "stream_replicas: 3",
    ):
        assert key in shown and key in tested.read_text(), key


def test_scaling_doc_mosquitto_settings_are_the_tested_ones(tmp_path: Path) -> None:
    from ioplex_mqtt.testing import Mosquitto

    doc = (Path(__file__).parents[3] / "docs" / "scaling.md").read_text()
    shown = re.search(r"```\n(listener 8883.*?)```", doc, re.DOTALL).group(1)
    tested = Mosquitto(tmp_path).config_path.read_text()
    for line in (
        "set_tcp_nodelay true",
        "max_inflight_messages 1000",
        "max_queued_messages 100000",
    ):
        assert line in shown and line in tested, line
