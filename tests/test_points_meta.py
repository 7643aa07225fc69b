"""Point ids, the reserved connection id and metadata conventions."""

from __future__ import annotations

import ioplex
import pytest
from ioplex.cli import format_value

pytestmark = pytest.mark.anyio


async def test_ids_reserved_connection_and_units(make_host) -> None:
    host = make_host(
        {
            "ioservers": {
                "system": {"plugin": "system"},
                "dummy": {"plugin": "dummy", "options": {"points": {"light.1": 0}}},
            }
        }
    )
    async with host:
        await host.wait_online()
        assert host.points["dummy.light.1"].id == "light.1"
        with pytest.raises(ioplex.PointNameError, match="'connection' is reserved"):
            host.ioservers["dummy"].declare("connection", 1)
        uptime = host.points["system.uptime"]
        assert uptime.unit == "s" and format_value(uptime, 5) == "5 s"
        stamp = format_value(host.points["system.time"], 1_700_000_000_000)
        assert stamp.startswith("2023-11-1") and stamp.count(":") >= 2
        assert format_value(None, "a\u202eb") == "'a\\\\u202eb'"
