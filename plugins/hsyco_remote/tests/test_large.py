"""A very large remote: 100,000 points align (streamed page by page) without timing out."""

from __future__ import annotations

import ioplex
import pytest
from ioplex import Quality

pytestmark = pytest.mark.anyio

N = 100_000


async def test_100000_points_align_quietly_and_then_follow(kit, info_of, until):
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        for i in range(N):  # declared straight into the registry: a big site's points
            leaf.points.declare(f"site.p{i}", i if i % 3 else f"v*{i}", quiet=True)
        info = await info_of(leaf)
        top = ioplex.Host.from_config(kit.replicating(info))
        events: list[str] = []
        async with top:
            top.points.listen(lambda e: events.append(e.name), "remote.site.*")
            await top.wait_online("remote", timeout=60)
            assert [e for e in events] == []  # startupevents = false: the alignment is quiet
            for i in (0, 1, 2, 3, 49_999, N - 1):
                point = top.points[f"remote.site.p{i}"]
                assert point.value == (i if i % 3 else f"v*{i}")
                assert point.quality is Quality.GOOD
            assert sum(1 for n in top.points if n.startswith("remote.site.")) == N
            leaf.points.update(leaf.points["site.p77"], -77)
            await until(lambda: top.points["remote.site.p77"].value == -77)
            assert events == ["remote.site.p77"]
