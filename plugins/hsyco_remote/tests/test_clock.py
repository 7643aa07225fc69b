"""``<name>.time.delta`` and clocksync, with the hosts' virtual (settable) clocks."""

from __future__ import annotations

import logging

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio

VIRTUAL = {"clock": "virtual"}


def leaf_config(kit, *, control: bool, allow_set_clock: bool = True) -> dict:
    return kit.serving(
        system=True, control=control, host={**VIRTUAL, "allow_set_clock": allow_set_clock}
    )


async def test_delta_follows_the_remote_clock(kit, info_of, until):
    async with ioplex.Host.from_config(leaf_config(kit, control=False)) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info, host=VIRTUAL)) as top:
            await top.wait_online("remote")
            delta = top.points["remote.time.delta"]
            assert delta.writable is False and delta.type is float
            assert abs(delta.value) < 0.5
            leaf.clock.set(leaf.time() + 30)  # the remote runs 30 s ahead
            await until(lambda: abs(delta.value - 30) < 0.5, what="delta ≈ +30")
            top.clock.set(top.time() + 100)  # now this host is 70 s ahead of the remote
            await until(lambda: abs(delta.value + 70) < 0.5, what="delta ≈ -70")
            with pytest.raises(ioplex.ReadOnlyPointError):
                await top.write("remote.time.delta", 0.0)


async def test_no_delta_without_a_remote_system_server(kit, info_of):
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            assert "remote.time.delta" not in top.points


async def test_clocksync_sets_the_remote_clock_when_drift_is_reached(kit, info_of, until, caplog):
    caplog.set_level(logging.INFO)
    async with ioplex.Host.from_config(leaf_config(kit, control=True)) as leaf:
        leaf.clock.set(leaf.time() - 20)  # the remote runs 20 s behind
        info = await info_of(leaf)
        config = kit.replicating(info, host=VIRTUAL, clocksync=True, drift=4)
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("remote")
            await until(lambda: abs(leaf.time() - top.time()) < 1.0, what="the remote clock set")
            delta = top.points["remote.time.delta"]
            await until(lambda: abs(delta.value) < 1.0, what="delta back near 0")
            assert top.ioservers["remote"].driver.clock.syncs == 1
            assert "set the remote's clock (it was -20" in caplog.text
            # a drift below the limit is left alone
            leaf.clock.set(leaf.time() + 2)
            await anyio.sleep(1.5)
            await until(lambda: abs(delta.value - 2) < 0.5)
            assert top.ioservers["remote"].driver.clock.syncs == 1


@pytest.mark.parametrize(
    "control, allow, reason",
    [
        (False, True, "server control is off"),
        (True, False, "read-only there"),
    ],
)
async def test_clocksync_needs_remote_control_and_a_settable_clock(
    kit, info_of, until, caplog, control, allow, reason
):
    async with ioplex.Host.from_config(
        leaf_config(kit, control=control, allow_set_clock=allow)
    ) as leaf:
        leaf.clock.set(leaf.time() + 50)
        info = await info_of(leaf)
        config = kit.replicating(info, host=VIRTUAL, clocksync=True, drift=4)
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("remote")
            await until(lambda: reason in caplog.text, what="the clocksync warning")
            assert abs(leaf.time() - top.time() - 50) < 1.0  # untouched
            assert top.ioservers["remote"].driver.clock.syncs == 0
