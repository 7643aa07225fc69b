"""An independent client: node-vscp-tcp (npm) against our server, over a real socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

pytestmark = pytest.mark.anyio

OK = b"+OK - Success.\r\n"


async def test_node_vscp_tcp_client(tmp_path: Any, tools: Any, node_vscp_tcp: Path) -> None:
    rec = tools.Recorder()
    async with (
        tools.running_server(tmp_path, ("recorder", rec)) as (_host, server),
        await tools.Wire.open(server.address) as py,
    ):
        await py.login()
        process = await anyio.open_process(
            [
                "node",
                str(node_vscp_tcp / "interop.js"),
                server.address[0],
                str(server.address[1]),
                "admin",
                "secret",
            ],
            cwd=str(node_vscp_tcp),
        )
        async with process:
            steps: dict[str, Any] = {}
            pending = ""

            async def next_step() -> dict[str, Any]:
                """The script's next JSON line (node-vscp-tcp logs plain text too)."""
                nonlocal pending
                assert process.stdout is not None
                with anyio.fail_after(15):
                    while True:
                        while "\n" not in pending:
                            pending += await TextReceiveStream(process.stdout).receive()
                        line, pending = pending.split("\n", 1)
                        if line.startswith("{"):
                            break
                step = json.loads(line)
                assert step["step"] != "error", step
                steps[step["step"]] = step
                return step

            async def tell(word: str) -> None:
                assert process.stdin is not None
                await process.stdin.send(word.encode() + b"\n")

            while (await next_step())["step"] != "ready":
                pass
            assert steps["user"]["ok"] and steps["pass"]["ok"] and steps["noop"]["ok"]
            assert steps["version"]["version"] == {
                "major": "15",
                "minor": "1",
                "release": "1",
                "build": "0",
            }
            node_channel = steps["chid"]["chid"]
            assert node_channel == 2  # after the Python client, channel 1
            # Two events for node to RETR.
            assert await py.reply("SEND 0,10,6,0,,,-,0x88,0x81,0x00,0xEB") == OK
            assert await py.reply("SEND 0,20,3,0,,,-,0,1,35") == OK
            await tell("go")
            while (await next_step())["step"] != "interfaces":
                pass
            assert steps["chkdata"]["count"] == 2 and steps["chkdata-after"]["count"] == 0
            retr = steps["retr"]["events"]
            assert [(e["vscpClass"], e["vscpType"], e["vscpObId"]) for e in retr] == [
                (10, 6, 1),
                (20, 3, 1),
            ]
            assert retr[0]["vscpData"] == [0x88, 0x81, 0x00, 0xEB]
            assert retr[1]["vscpData"] == [0, 1, 35]
            assert retr[0]["vscpGuid"].endswith(":00:01:00:00")
            assert steps["send-object"]["ok"] and steps["send-string"]["ok"]
            interfaces = steps["interfaces"]["interfaces"]
            assert [(i["index"], i["type"]) for i in interfaces] == [(1, 5), (2, 5)]  # 5: tcp/ip
            assert interfaces[1]["name"].startswith("tcp/ip client 127.0.0.1:")
            # What node sent reached the Python client, with the fields filled in.
            lines = (await py.reply("RETR 2")).split(b"\r\n")
            first, second = lines[0].split(b","), lines[1].split(b",")
            assert first[:4] == [b"96", b"10", b"6", str(node_channel).encode()]
            assert first[7:] == [b"0x88", b"0x81", b"0x00", b"0xEB"]
            assert first[6].endswith(b"00:02:00:00")  # node's interface GUID
            assert second[:4] == [b"0", b"20", b"3", str(node_channel).encode()]
            assert second[7:] == [b"0x00", b"0x01", b"0x23"]
            assert len(await rec.wait_for(4)) == 4
            # The receive loop: events pushed to node as they come.
            while (await next_step())["step"] != "loop":
                pass
            assert await py.reply("SEND 0,10,6,0,,,-,0x88,0x82,0xFD,0xF3") == OK
            assert await py.reply("SEND 0,30,5,0,,,-,7") == OK
            got = [await next_step(), await next_step()]
            assert [(s["event"]["vscpClass"], s["event"]["vscpType"]) for s in got] == [
                (10, 6),
                (30, 5),
            ]
            assert got[0]["event"]["vscpData"] == [0x88, 0x82, 0xFD, 0xF3]
            await tell("stop")
            done = await next_step()
            assert done["step"] == "done" and done["loopEvents"] == 2
            with anyio.fail_after(10):
                assert await process.wait() == 0
