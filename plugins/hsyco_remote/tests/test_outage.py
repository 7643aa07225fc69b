"""Outages: the remote restarted mid-stream, and the link cut and restored."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import ioplex
import pytest
from ioplex import Quality, State

pytestmark = pytest.mark.anyio

POINTS = {f"p.{i}": 0 for i in range(200)}


class Proxy:
    """A TCP forwarder on loopback that can cut every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.open = True
        self.connections = 0
        self._scopes: set[anyio.CancelScope] = set()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        await listener.serve(self._handle)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            if not self.open:
                return
            self.connections += 1
            with anyio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    async with (
                        await anyio.connect_tcp("127.0.0.1", self.target_port) as upstream,
                        anyio.create_task_group() as tg,
                    ):
                        tg.start_soon(self._pump, client, upstream)
                        tg.start_soon(self._pump, upstream, client)
                finally:
                    self._scopes.discard(scope)

    @staticmethod
    async def _pump(source: Any, sink: Any) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass
        await sink.aclose()

    def cut(self) -> None:
        self.open = False
        for scope in list(self._scopes):
            scope.cancel()

    def restore(self) -> None:
        self.open = True


async def test_link_cut_then_restored_resumes_without_losing_a_final_value(kit, info_of, until):
    async with (
        ioplex.Host.from_config(kit.serving(points=POINTS, control=True)) as leaf,
        anyio.create_task_group() as tg,
    ):
        info = await info_of(leaf)
        proxy = Proxy(info["port"])
        await tg.start(proxy.run)
        config = kit.replicating({**info, "port": proxy.port})
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("remote")
            driver = top.ioservers["remote"].driver
            dummy = leaf.ioservers["dummy"]
            dummy.set("p.1", 1, quality=Quality.STALE)  # a remote quality that must survive
            await until(lambda: top.points["remote.dummy.p.1"].quality is Quality.STALE)

            proxy.cut()
            await until(lambda: top.points["remote.connection"].value == "offline")
            assert top.points["remote.dummy.p.5"].quality is Quality.BAD
            assert top.points["remote.dummy.p.1"].quality is Quality.BAD
            with pytest.raises(ioplex.WriteError, match="not connected"):
                await top.write("remote.dummy.p.5", 5)
            with anyio.fail_after(2):  # a discovery while offline answers at once
                assert "dummy.p.5" in await top.discover("remote")
            # the remote keeps changing while the link is down; only the final values count
            for round_ in range(1, 4):
                for i in range(100, 200):
                    await leaf.write(f"dummy.p.{i}", round_ * 1000 + i)
            proxy.restore()
            await top.wait_online("remote")
            for i in range(100, 200):
                assert top.points[f"remote.dummy.p.{i}"].value == 3000 + i
                assert top.points[f"remote.dummy.p.{i}"].quality is Quality.GOOD
            assert top.points["remote.dummy.p.5"].quality is Quality.GOOD
            assert top.points["remote.dummy.p.1"].quality is Quality.STALE
            assert driver.stats["full"] == 1 and driver.stats["resumed"] == 1
            await leaf.write("dummy.p.7", 7)
            await until(lambda: top.points["remote.dummy.p.7"].value == 7)
        tg.cancel_scope.cancel()


async def test_remote_restarted_mid_stream(kit, info_of, until, background):
    async with anyio.create_task_group() as tg:
        first = background(kit.serving(points=POINTS))
        leaf = await first.start(tg)
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            driver = top.ioservers["remote"].driver

            async def churn() -> None:
                n = 0
                while True:
                    n += 1
                    await leaf.write(f"dummy.p.{n % 200}", n)
                    await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as writers:
                writers.start_soon(churn)
                await until(lambda: top.points["remote.dummy.p.150"].value != 0)
                await first.stop()  # the remote goes away mid-stream
                writers.cancel_scope.cancel()
            await until(lambda: top.points["remote.connection"].value == "offline")
            assert all(top.points[f"remote.dummy.p.{i}"].quality is Quality.BAD for i in range(200))

            # the same remote comes back (same port, same data directory: same certificate)
            # with other values and one point fewer
            again = kit.serving(
                points={**{k: -1 for k in POINTS if k != "p.199"}, "p.new": 42},
                listen=f"127.0.0.1:{info['port']}",
            )
            async with ioplex.Host.from_config(again) as leaf2:
                assert (await info_of(leaf2))["fingerprint"] == info["fingerprint"]
                await until(lambda: top.points["remote.connection"].value == "online")
                for i in range(199):
                    point = top.points[f"remote.dummy.p.{i}"]
                    assert (point.value, point.quality) == (-1, Quality.GOOD)
                assert "remote.dummy.p.199" not in top.points
                assert top.points["remote.dummy.p.new"].value == 42
                assert driver.stats["full"] == 2
                await leaf2.write("dummy.p.3", 3)
                await until(lambda: top.points["remote.dummy.p.3"].value == 3)


async def test_offline_at_start_then_remote_appears(kit, info_of, until):
    """A replicating host started first keeps retrying with backoff until the remote is up."""
    async with ioplex.Host.from_config(kit.serving()) as probe:
        info = await info_of(probe)
    async with ioplex.Host.from_config(kit.replicating(info)) as top:
        await until(lambda: top.ioservers["remote"].state is State.RETRYING)
        async with ioplex.Host.from_config(kit.serving(listen=f"127.0.0.1:{info['port']}")):
            await top.wait_online("remote")
            assert top.points["remote.dummy.light.1"].value == 0
