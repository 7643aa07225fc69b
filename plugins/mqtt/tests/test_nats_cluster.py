"""Three hosts through a real 3-node NATS cluster (JetStream + MQTT listener on each node),
each connected to a different node; a node killed: its hosts fail over to another node in
``servers`` and nothing published with QoS 1 is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from ioplex_mqtt.testing import NatsCluster, host_config, running, until, value

pytestmark = pytest.mark.anyio


def node_config(
    tmp_path: Path, cluster: NatsCluster, name: str, node: int, points: dict, **options: object
) -> dict:
    ports = cluster.mqtt_ports
    others = [f"127.0.0.1:{p}" for i, p in enumerate(ports) if i != node]
    return host_config(tmp_path, name, ports[node], points, servers=others, timeout=10, **options)


async def test_three_hosts_fail_over(tmp_path: Path, nats: NatsCluster) -> None:
    names = ["site-a", "site-b", "site-c"]
    configs = [
        node_config(
            tmp_path,
            nats,
            name,
            i,
            {"n": 0},
            publish=["dummy.*"],
            subscribe=[f"{other}/*" for other in names if other != name],
            accept_writes=["dummy.n"],
        )
        for i, name in enumerate(names)
    ]
    async with running(configs[0]) as a, running(configs[1]) as b, running(configs[2]) as c:
        hosts = [a, b, c]
        for host in hosts:
            for other in names:
                if other != host.name:
                    await until(
                        lambda h=host, o=other: value(h, f"mqtt.{o}.dummy.n") == (0, "good"),
                        timeout=60,  # a JetStream cluster settles slowly on a loaded machine
                        what=f"{host.name} mirrors {other}",
                    )
        driver = a.ioservers["mqtt"].driver
        assert driver.broker == f"127.0.0.1:{nats.mqtt_ports[0]}"
        sessions = driver.stats["sessions"]
        # node 0 dies: site-a was on it and moves to another node
        nats.kill(0)
        try:
            await until(
                lambda: driver.stats["sessions"] > sessions and a.ioservers["mqtt"].online,
                timeout=30,
                what="site-a fails over",
            )
            assert driver.broker != f"127.0.0.1:{nats.mqtt_ports[0]}"
            await burst_and_check(hosts, names)
        finally:
            nats.start(0)


async def burst_and_check(hosts: list, names: list[str]) -> None:
    """Changes on every host right after a failover: each final value arrives everywhere
    (QoS 1, retained; what was not acknowledged is sent again), and writes still reach the
    owner through the cluster."""
    a, b, c = hosts
    for step in range(1, 51):
        for host in hosts:
            await host.write("dummy.n", step)
    for host in hosts:
        for other in names:
            if other != host.name:
                await until(
                    lambda h=host, o=other: value(h, f"mqtt.{o}.dummy.n") == (50, "good"),
                    timeout=40,
                    what=f"{host.name} sees {other}'s final value",
                )
    # writes still reach their owner through the cluster
    await c.write("mqtt.site-a.dummy.n", 99)
    assert a.points["dummy.n"].value == 99
    await until(lambda: value(b, "mqtt.site-a.dummy.n") == (99, "good"))
