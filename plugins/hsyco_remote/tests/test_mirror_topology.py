"""Topologies that used to go wrong: two hosts mirroring each other, long chains, a replaced
remote logger database, a LAN address checked with cafile, the session token."""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import ioplex
import pytest
from ioplex import Quality

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer(
    kit, name: str, own: dict[str, Any], port: int, other: str, other_port: int, **options: Any
) -> dict[str, Any]:
    """A host serving on `port` and mirroring `other` (on `other_port`) as instance `other`."""
    config = kit.serving(name=name, points=own, listen=f"127.0.0.1:{port}")
    cafile = kit.tmp_path / other / "hsyco_remote" / "cert.pem"
    config["ioservers"][other] = {
        "plugin": "hsyco_remote",
        "address": "127.0.0.1",
        "port": other_port,
        "password": kit.password,
        "options": {"cafile": str(cafile), **options},
    }
    return config


async def make_certificates(kit, *names: str) -> None:
    for name in names:  # each host's generated certificate, before they trust each other
        async with ioplex.Host.from_config(kit.serving(name=name)) as host:
            await host.wait_online()
            while not (host.data_dir / "hsyco_remote" / "cert.pem").exists():
                await anyio.sleep(0.01)


def own_points(host: ioplex.Host) -> set[str]:
    """What originates on `host`: its points but those mirrored from elsewhere."""
    return {n for n in host.points if not (host.points[n].meta or {}).get("origin")}


async def test_two_hosts_mirroring_each_other_stay_bounded(kit, until, caplog):
    caplog.set_level(logging.WARNING)
    await make_certificates(kit, "a", "b")
    port_a, port_b = free_port(), free_port()
    config_a = peer(kit, "a", {"x": 1, "y": 2}, port_a, "b", port_b)
    config_b = peer(kit, "b", {"z": 3}, port_b, "a", port_a)
    async with ioplex.Host.from_config(config_a) as a, ioplex.Host.from_config(config_b) as b:
        await a.wait_online("b", timeout=15)
        await b.wait_online("a", timeout=15)

        def settled() -> bool:
            return set(a.points) == own_points(a) | {f"b.{n}" for n in own_points(b)} and set(
                b.points
            ) == own_points(b) | {f"a.{n}" for n in own_points(a)}

        await until(settled, what="each host to hold the other's own points")
        counts = (len(a.points), len(b.points))
        await a.write("dummy.x", 10)  # changes keep flowing, and nothing grows
        await until(lambda: b.points["a.dummy.x"].value == 10)
        await anyio.sleep(1.5)
        assert (len(a.points), len(b.points)) == counts
        assert settled()
        # nothing came back home (b.a.connection is b's own point: its mirror's status)
        assert not any(n.startswith(("b.a.dummy.", "a.b.dummy.")) for n in [*a.points, *b.points])
        assert "b.a.connection" in a.points
        assert b.points["a.dummy.x"].meta == {"origin": "a", "hops": 1}
        assert b.points["a.dummy.x"].quality is Quality.GOOD
    loops = [r for r in caplog.records if "loop detected" in r.getMessage()]
    assert len(loops) == 2  # once per host, with the path
    assert "a -> b -> a" in " ".join(r.getMessage() for r in loops)


async def test_the_hop_limit_bounds_a_chain(kit, info_of, until):
    async with ioplex.Host.from_config(kit.serving(points={"p": 1})) as leaf:
        leaf_info = await info_of(leaf)
        conc_config = kit.replicating(leaf_info, name="conc", instance="leaf")
        conc_config["ioservers"]["own"] = {"plugin": "dummy", "options": {"points": {"q": 2}}}
        conc_config["plugins"] = {
            "hsyco_remote": {"server": {"listen": "127.0.0.1:0", "password": kit.password}}
        }
        async with ioplex.Host.from_config(conc_config) as conc:
            conc_info = await info_of(conc)
            await conc.wait_online("leaf")
            top_config = kit.replicating(conc_info, instance="conc", maxhops=1)
            async with ioplex.Host.from_config(top_config) as top:
                await top.wait_online("conc")
                assert top.points["conc.own.q"].meta == {"origin": "conc", "hops": 1}
                assert "conc.leaf.dummy.p" not in top.points  # 2 hops away
                await leaf.write("dummy.p", 5)
                await until(lambda: conc.points["leaf.dummy.p"].value == 5)
                await anyio.sleep(0.5)
                assert "conc.leaf.dummy.p" not in top.points
            async with ioplex.Host.from_config(
                kit.replicating(conc_info, name="top2", instance="conc")
            ) as top2:
                await top2.wait_online("conc")
                assert top2.points["conc.leaf.dummy.p"].meta == {"origin": "leaf", "hops": 2}


def rows(logger: ioplex.DataLogger) -> list[tuple]:
    return [(s.time, s.point, s.value) for s in logger.samples_after(0, 100_000)]


async def test_a_replaced_remote_logger_database_is_copied_again(
    kit, info_of, until, background, caplog
):
    caplog.set_level(logging.WARNING)
    loggers = {"energy": {"points": ["dummy.meter"], "kind": "counter"}}
    leaf_config = kit.serving(points={"meter": 0}, loggers=loggers)

    async def record(leaf: ioplex.Host, values: range) -> None:
        for n in values:
            await leaf.write("dummy.meter", n)
        await leaf.loggers.flush()

    async with anyio.create_task_group() as tg:
        leaf_run = background(leaf_config)
        leaf = await leaf_run.start(tg)
        info = await info_of(leaf)
        await record(leaf, range(1, 21))
        config = kit.replicating(
            info,
            dataloggers="energy",
            dataloggerspollinterval=1,
            loggers={"remote.energy": {"points": [], "kind": "counter"}},
        )
        async with ioplex.Host.from_config(config) as top:
            local = top.loggers["remote.energy"]
            first = rows(leaf.loggers["energy"])
            await until(lambda: rows(local) == first, what="the first database")
            await leaf_run.stop()
            (leaf.data_dir / "loggers.db").unlink()  # replaced: its seqs start again at 1
            leaf_config["plugins"]["hsyco_remote"]["server"]["listen"] = f"127.0.0.1:{info['port']}"
            leaf_run = background(leaf_config)
            leaf = await leaf_run.start(tg)
            await record(leaf, range(21, 31))
            second = rows(leaf.loggers["energy"])
            assert len(second) >= 10
            await until(
                lambda: rows(local) == first + second,
                timeout=15,
                what="the new database, no gap, no duplicate",
            )
            await anyio.sleep(1.5)
            assert rows(local) == first + second
        await leaf_run.stop()
    assert "replaced or restored" in caplog.text


async def test_the_session_token_is_sent_back(kit, info_of):
    from ioplex_hsyco_remote.client import SESSION_HEADER

    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            client = top.ioservers["remote"].driver.client
            assert client.session  # handed out after the first good password check
            assert client._http.headers[SESSION_HEADER] == client.session
