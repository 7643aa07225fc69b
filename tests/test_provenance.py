"""Provenance of mirrored points: what a host passes on and what a loop guard refuses."""

from __future__ import annotations

import logging

from ioplex import Registry
from ioplex.provenance import LoopGuard, provenance


def test_provenance_and_the_loop_guard(caplog) -> None:
    reg = Registry()
    own = reg.declare("dev.temp", 1.0)
    mirrored = reg.declare("b.dev.temp", 1.0, meta={"origin": "b", "hops": 1})
    assert provenance(own, "a") == ("a", 0)
    assert provenance(mirrored, "a") == ("b", 1)
    guard = LoopGuard("a", max_hops=3, where="ioservers.m", log=logging.getLogger("t"))
    assert guard.meta("dev.temp", "b", 0, via="b") == {"origin": "b", "hops": 1}
    with caplog.at_level(logging.WARNING):
        assert guard.meta("b.a.x", "a", 1, via="b") is None  # came back home
        assert guard.meta("b.a.y", "a", 1, via="b") is None
        assert guard.meta("c.d.e.f", "f", 3, via="c") is None  # too far
    assert guard.refused == 3
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == [
        "loop detected",
        "not mirroring c.d.e.f (origin f, via c)",
    ]
    assert "(a -> b -> a)" in caplog.records[0].getMessage()
