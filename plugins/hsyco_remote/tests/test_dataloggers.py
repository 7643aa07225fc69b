"""Data logger replication through the kernel's replicate hook and high-water mark: no gap
and no duplicate across restarts of either side and outages."""

from __future__ import annotations

import anyio
import ioplex
import pytest

pytestmark = pytest.mark.anyio

LEAF_LOGGERS = {
    "energy": {"points": ["dummy.meter.*"], "kind": "counter"},
    "temps": {"points": ["dummy.temp"]},
}


def rows(logger: ioplex.DataLogger) -> list[tuple]:
    return [(s.time, s.point, s.value, str(s.quality)) for s in logger.samples_after(0, 100_000)]


async def record(leaf: ioplex.Host, start: int, count: int) -> None:
    for n in range(start, start + count):
        await leaf.write("dummy.meter.1", n)
        await leaf.write("dummy.meter.2", n * 2)
        if n % 10 == 0:
            await leaf.write("dummy.temp", n / 10)
    await leaf.loggers.flush()


def leaf_config(kit, port: int | None = None) -> dict:
    extra = {"listen": f"127.0.0.1:{port}"} if port else {}
    return kit.serving(
        points={"meter.1": 0, "meter.2": 0, "temp": 0.0}, loggers=LEAF_LOGGERS, **extra
    )


def top_config(kit, info: dict, **options) -> dict:
    return kit.replicating(
        info,
        loggers={"remote.energy": {"points": [], "kind": "counter"}},
        dataloggers="energy",
        dataloggerspollinterval=1,
        **options,
    )


async def replicated(top: ioplex.Host, leaf_rows: list[tuple], local_id: str, until) -> None:
    logger = top.loggers[local_id]
    await until(lambda: len(rows(logger)) >= len(leaf_rows), what=f"{local_id} to catch up")
    await anyio.sleep(0.3)  # a few more polls: nothing more may arrive
    assert rows(logger) == leaf_rows  # same samples, same order: no gap, no duplicate


async def test_replication_across_restarts_of_both_sides(kit, info_of, until, background):
    async with anyio.create_task_group() as tg:
        leaf_run = background(leaf_config(kit))
        leaf = await leaf_run.start(tg)
        info = await info_of(leaf)
        await record(leaf, 1, 50)
        async with ioplex.Host.from_config(top_config(kit, info)) as top:
            await replicated(top, rows(leaf.loggers["energy"]), "remote.energy", until)
            feed = top.loggers["remote.energy"].feeds[0]
            assert feed.source == "remote" and feed.source_id == "energy"
            await record(leaf, 51, 30)
            await replicated(top, rows(leaf.loggers["energy"]), "remote.energy", until)

        # the replicating host is down while the remote keeps recording
        await record(leaf, 81, 40)
        async with ioplex.Host.from_config(top_config(kit, info)) as top:
            await replicated(top, rows(leaf.loggers["energy"]), "remote.energy", until)

            # now the remote restarts (same database, same port), recording on both sides of it
            await record(leaf, 121, 20)
            await leaf_run.stop()
            leaf_run = background(leaf_config(kit, info["port"]))
            leaf = await leaf_run.start(tg)
            await record(leaf, 141, 20)
            await top.wait_online("remote")
            await replicated(top, rows(leaf.loggers["energy"]), "remote.energy", until)
            expected = rows(leaf.loggers["energy"])
            assert len(expected) >= 2 * 160  # both meters, every change
        await leaf_run.stop()


async def test_local_ids_without_the_prefix(kit, info_of, until):
    async with ioplex.Host.from_config(leaf_config(kit)) as leaf:
        info = await info_of(leaf)
        await record(leaf, 1, 20)
        config = kit.replicating(
            info,
            loggers={"temps": {"points": []}},
            dataloggers="temps; ",
            dataloggersnameprefix=False,
            dataloggerspollinterval=1,
        )
        async with ioplex.Host.from_config(config) as top:
            await replicated(top, rows(leaf.loggers["temps"]), "temps", until)
            assert {r[1] for r in rows(top.loggers["temps"])} == {"dummy.temp"}


async def test_samples_endpoint(kit, info_of):
    import ssl

    import httpx
    from ioplex_hsyco_remote.wire import bearer

    async with ioplex.Host.from_config(leaf_config(kit)) as leaf:
        info = await info_of(leaf)
        await record(leaf, 1, 5)
        context = ssl.create_default_context(cafile=info["certificate"])
        async with httpx.AsyncClient(
            base_url=info["url"] + "/api/v1", verify=context, headers=bearer(kit.password)
        ) as client:
            assert (await client.get("/loggers")).json() == {"loggers": ["energy", "temps"]}
            first = (await client.get("/loggers/energy/samples", params={"limit": 3})).json()
            assert len(first["samples"]) == 3 and first["more"] is True
            last_seq = first["samples"][-1][0]
            rest = (
                await client.get(
                    "/loggers/energy/samples", params={"after": last_seq, "limit": 1000}
                )
            ).json()
            assert rest["more"] is False
            seqs = [s[0] for s in first["samples"] + rest["samples"]]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            local = leaf.loggers["energy"].samples_after(0, 3)
            assert first["samples"] == [
                [s.seq, s.time, s.point, s.value, str(s.quality)] for s in local
            ]
            missing = await client.get("/loggers/nope/samples")
            assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
