"""Replication that heals itself: refusals retried slowly (never a permanent stop), logged
once per change of reason; mirrors of data loggers only; local loggers recording the initial
alignment whatever startupevents says."""

from __future__ import annotations

import logging

import anyio
import ioplex
import pytest
from ioplex import Quality, State

pytestmark = pytest.mark.anyio


async def test_a_concentrator_recovers_after_the_remote_password_was_wrong(
    kit, info_of, until, background, caplog
):
    caplog.set_level(logging.INFO)
    async with anyio.create_task_group() as tg:
        leaf_run = background(kit.serving(points={"light.1": 1}))
        leaf = await leaf_run.start(tg)
        info = await info_of(leaf)
        config = kit.replicating(info, retryrefused=0.3)
        async with ioplex.Host.from_config(config) as top:
            io = top.ioservers["remote"]
            await top.wait_online("remote")
            # the remote is restarted for a while with another password
            await leaf_run.stop()
            wrong = kit.serving(
                points={"light.1": 2},
                listen=f"127.0.0.1:{info['port']}",
                password="changed by mistake",
            )
            leaf_run = background(wrong)
            await leaf_run.start(tg)
            await until(
                lambda: io.state is State.RETRYING and "refused" in (io.detail or ""),
                what="the refusal",
            )
            assert "ioservers.remote.password: refused by" in io.detail
            assert top.points["remote.dummy.light.1"].quality is Quality.BAD
            attempts = io.driver.stats["refused"]
            await until(lambda: io.driver.stats["refused"] >= attempts + 3, what="retries")
            assert io.state is State.RETRYING  # never FAILED
            assert caplog.text.count("ioservers.remote.password: refused by") == 1
            # fixed: back by itself, with the remote's current values
            await leaf_run.stop()
            leaf_run = background(
                kit.serving(points={"light.1": 3}, listen=f"127.0.0.1:{info['port']}")
            )
            leaf = await leaf_run.start(tg)
            await until(lambda: top.points["remote.dummy.light.1"].value == 3, timeout=15)
            assert io.state is State.ONLINE and io.detail is None
            assert top.points["remote.dummy.light.1"].quality is Quality.GOOD
            assert "accepted again" in caplog.text
            await leaf.write("dummy.light.1", 4)
            await until(lambda: top.points["remote.dummy.light.1"].value == 4)
        await leaf_run.stop()


async def test_a_refused_certificate_heals_when_the_pinned_one_is_back(
    kit, info_of, until, background
):
    """Another certificate served for a while (a wrong deployment) is refused and retried;
    once the pinned one is back, so is the mirror."""
    pinned_config = kit.serving(host={"data_dir": str(kit.tmp_path / "pinned")})
    async with ioplex.Host.from_config(pinned_config) as leaf:
        pinned = await info_of(leaf)
    port = f"127.0.0.1:{pinned['port']}"
    async with anyio.create_task_group() as tg:
        other = background(kit.serving(name="other", listen=port))
        await other.start(tg)
        async with ioplex.Host.from_config(kit.replicating(pinned, retryrefused=0.3)) as top:
            io = top.ioservers["remote"]
            await until(lambda: "fingerprint mismatch" in (io.detail or ""))
            count = io.driver.stats["refused"]
            await until(lambda: io.driver.stats["refused"] >= count + 2, what="retries")
            assert io.state is State.RETRYING
            await other.stop()
            pinned_config["plugins"]["hsyco_remote"]["server"]["listen"] = port
            back = background(pinned_config)
            await back.start(tg)
            await top.wait_online("remote", timeout=15)
            assert top.points["remote.dummy.light.1"].quality is Quality.GOOD
            await back.stop()


async def test_a_mirror_of_data_loggers_only(kit, info_of, until):
    loggers = {"energy": {"points": ["dummy.meter"], "kind": "counter"}}
    async with ioplex.Host.from_config(kit.serving(points={"meter": 0}, loggers=loggers)) as leaf:
        info = await info_of(leaf)
        for n in range(1, 6):
            await leaf.write("dummy.meter", n)
        await leaf.loggers.flush()
        config = kit.replicating(
            info,
            io=False,
            ui=False,
            dataloggers="energy",
            dataloggerspollinterval=1,
            loggers={"remote.energy": {"points": [], "kind": "counter"}},
        )
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("remote")
            local = top.loggers["remote.energy"]
            remote = leaf.loggers["energy"]
            await until(
                lambda: len(local.samples_after(0, 100)) == len(remote.samples_after(0, 100)) >= 5,
                what="replication",
            )
            assert "remote.dummy.meter" not in top.points
            await anyio.sleep(1.5)  # it stays online: no reconnect loop
            io = top.ioservers["remote"]
            assert io.state is State.ONLINE and io.driver.stats["full"] == 1
            await leaf.write("dummy.meter", 6)
            await leaf.loggers.flush()
            await until(
                lambda: (
                    [s.value for s in local.samples_after(0, 100)]
                    == [s.value for s in remote.samples_after(0, 100)]
                ),
                what="more samples",
            )
            assert local.samples_after(0, 100)[-1].value == 6


@pytest.mark.parametrize("startupevents", [False, True])
async def test_local_loggers_record_the_initial_values(kit, info_of, until, startupevents):
    async with ioplex.Host.from_config(kit.serving(points={"temp": 21.5, "level": 3})) as leaf:
        info = await info_of(leaf)
        config = kit.replicating(
            info, startupevents=startupevents, loggers={"mirrored": {"points": ["remote.dummy.*"]}}
        )
        async with ioplex.Host.from_config(config) as top:
            events: list[str] = []
            top.points.listen(lambda e: events.append(e.name), "remote.dummy.*")
            await top.wait_online("remote")
            await top.loggers.flush()
            samples = top.loggers["mirrored"].samples_after(0, 100)
            recorded = {(s.point, s.value, str(s.quality)) for s in samples}
            assert {
                ("remote.dummy.temp", 21.5, "good"),
                ("remote.dummy.level", 3, "good"),
            } <= recorded
            # each initial value once, and events only when startupevents asks for them
            assert len([s for s in samples if s.point == "remote.dummy.temp"]) == 1
            assert bool(events) is startupevents
