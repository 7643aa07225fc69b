"""HSYCO's public endpoint, driven by a plain HTTP client exactly as HSYCO documents it:
``GET https://<address>:<port>/x/rioget?1*<timestamp>*<password>``."""

from __future__ import annotations

import logging
import ssl
import time
from urllib.parse import quote

import anyio
import httpx
import ioplex
import pytest

pytestmark = pytest.mark.anyio

POINTS = {"light.1": 0, "temp": 21.5, "door": False, "status": "a*b", "none": "x"}


def client_for(info: dict) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=info["certificate"]), timeout=20
    )


async def rioget(
    client: httpx.AsyncClient, info: dict, stamp: int, password: str
) -> httpx.Response:
    return await client.get(f"{info['url']}/x/rioget?1*{stamp}*{password}")


async def test_full_state(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points=POINTS, system=True)) as leaf:
        info = await info_of(leaf)
        async with client_for(info) as client:
            response = await rioget(client, info, 1, kit.password)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    state = response.json()["hsycostate"]
    io = state["io"]
    assert io["dummy.light.1"] == "0"
    assert io["dummy.temp"] == "21.5"
    assert io["dummy.door"] == "false"
    assert io["dummy.status"] == "a*b"
    assert io["dummy.connection"] == "online"
    assert "system.time" in io and state["system"] == "system"
    assert all(isinstance(v, str) for v in io.values())
    assert isinstance(state["topotime"], int)
    assert isinstance(state["timestamp"], int) and state["timestamp"] > 1


async def test_changes_with_long_poll(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points=POINTS)) as leaf:
        info = await info_of(leaf)
        async with client_for(info) as client:
            stamp = (await rioget(client, info, 1, kit.password)).json()["hsycostate"]["timestamp"]
            # nothing changed: the request is held (a long poll), then answers the change
            answered: list[httpx.Response] = []
            async with anyio.create_task_group() as tg:

                async def poll() -> None:
                    answered.append(await rioget(client, info, stamp, kit.password))

                tg.start_soon(poll)
                await anyio.sleep(0.5)
                assert answered == []  # still held: nothing changed
                started = time.monotonic()
                await leaf.write("dummy.light.1", 1)
            assert time.monotonic() - started < 1.0
            state = answered[0].json()["hsycostate"]
            assert state["io"] == {"dummy.light.1": "1"}
            assert state["timestamp"] > stamp

            # changes made between two polls are all in the next answer, final values only
            await leaf.write("dummy.status", "first")
            await leaf.write("dummy.status", "second")
            await leaf.write("dummy.temp", 1.0)
            again = (await rioget(client, info, state["timestamp"], kit.password)).json()
            assert again["hsycostate"]["io"] == {"dummy.status": "second", "dummy.temp": "1.0"}


async def test_a_timestamp_from_another_server_run_gets_the_full_state(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points=POINTS)) as leaf:
        info = await info_of(leaf)
        async with client_for(info) as client:
            for stamp in (1, 2, 1403628740123000, 10**19):
                state = (await rioget(client, info, stamp, kit.password)).json()["hsycostate"]
                assert set(state["io"]) == {f"dummy.{p}" for p in POINTS} | {"dummy.connection"}


async def test_values_round_trip_as_strings(kit, info_of):
    values = ["a*b*c", 'q"uote\\', "new\nline", "ünï€😀", "x" * 60_000, ""]
    async with ioplex.Host.from_config(kit.serving(points={"text": ""})) as leaf:
        info = await info_of(leaf)
        async with client_for(info) as client:
            stamp = (await rioget(client, info, 1, kit.password)).json()["hsycostate"]["timestamp"]
            for value in values:
                await leaf.write("dummy.text", value)
                state = (await rioget(client, info, stamp, kit.password)).json()["hsycostate"]
                assert state["io"]["dummy.text"] == value
                stamp = state["timestamp"]


async def test_password_forms_and_refusals(kit, info_of, caplog):
    caplog.set_level(logging.DEBUG)
    async with ioplex.Host.from_config(kit.serving(points=POINTS)) as leaf:
        info = await info_of(leaf)
        async with client_for(info) as client:
            # the password has "*", "%" and a space: as typed, and fully percent-encoded
            assert (await rioget(client, info, 1, kit.password)).status_code == 200
            assert (await rioget(client, info, 1, quote(kit.password, safe=""))).status_code == 200
            for wrong in ("", "nope", kit.password + "x", kit.password[:-1], "*"):
                response = await rioget(client, info, 1, wrong)
                assert response.status_code == 403 and response.content == b""
            response = await client.get(f"{info['url']}/x/rioget?garbage")
            assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
            # five failures lock the address out, even for the right password
            response = await rioget(client, info, 1, kit.password)
            assert response.status_code == 429 and response.content == b""
            assert int(response.headers["retry-after"]) >= 1
    # the server's log (not this test's own HTTP client's) never shows the password
    server_log = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "rioget from 127.0.0.1 refused: wrong or missing password" in server_log
    for form in (kit.password, quote(kit.password, safe=""), quote(kit.password), "pa%ss"):
        assert form not in server_log
