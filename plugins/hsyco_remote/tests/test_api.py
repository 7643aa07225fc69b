"""API v1 of the serving side, driven by a plain HTTP client over HTTPS."""

from __future__ import annotations

import json
import logging
import ssl
import time

import anyio
import httpx
import ioplex
import pytest
from ioplex import Quality
from ioplex.serving import RemoteWrites
from ioplex_hsyco_remote.api import Api
from ioplex_hsyco_remote.wire import bearer

pytestmark = pytest.mark.anyio

POINTS = {"light.1": 0, "temp": 21.5, "door": False, "status": "ok", "secret.code": 1234}


def api_client(info: dict, password: str | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=info["url"] + "/api/v1",
        verify=ssl.create_default_context(cafile=info["certificate"]),
        headers=bearer(password) if password is not None else {},
        timeout=20,
    )


def ndjson(response: httpx.Response) -> list:
    return [json.loads(line) for line in response.text.splitlines()]


async def test_openapi_documents_every_route_behind_the_password(kit, info_of):
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        async with api_client(info, None) as anonymous:
            assert (await anonymous.get("/openapi.json")).status_code == 401
        async with api_client(info, kit.password) as client:
            response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    routes = {
        (route.path.removeprefix("/api/v1"), method)
        for route in Api(None, None, None, None, RemoteWrites(False)).routes()  # type: ignore[arg-type]
        for method in route.methods - {"HEAD"}
    }
    assert documented == routes
    for path, item in doc["paths"].items():
        for operation in item.values():
            assert operation.get("summary") and operation.get("responses"), path
    refs = {r for r in json.dumps(doc).split('"') if r.startswith("#/components/")}
    for ref in refs:
        _, _, kind, name = ref.split("/")
        assert name in doc["components"][kind], ref


async def test_password_header_and_throttling(kit, info_of):
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        async with api_client(info, None) as anonymous:
            response = await anonymous.get("/info")
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["code"] == "unauthorized"
        async with api_client(info, "wrong") as wrong, api_client(info, kit.password) as right:
            assert (await right.get("/info")).status_code == 200  # a success clears failures
            for _ in range(5):
                assert (await wrong.get("/info")).status_code == 401
            throttled = await right.get("/info")  # locked out: even the right password waits
            assert throttled.status_code == 429
            retry = int(throttled.headers["retry-after"])
            assert 1 <= retry <= 60
            await anyio.sleep(retry + 0.1)
            assert (await right.get("/info")).status_code == 200
            # the lockout over, the success cleared the record: one failure is not locked out
            assert (await wrong.get("/info")).status_code == 401
            assert (await right.get("/info")).status_code == 200


async def test_writes_are_refused_without_control(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points=POINTS)) as leaf:
        info = await info_of(leaf)
        async with api_client(info, kit.password) as client:
            response = await client.post("/write", json={"name": "dummy.light.1", "value": 1})
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "control_disabled"
            assert "plugins.hsyco_remote.server.control" in response.json()["error"]["message"]
    assert leaf.points["dummy.light.1"].value == 0


async def test_writes_with_control(kit, info_of):
    config = kit.serving(
        points=POINTS,
        control=True,
        system=True,
        io_filter=["dummy.light.*", "dummy.temp", "system.*"],
    )
    async with ioplex.Host.from_config(config) as leaf:
        leaf.ui.declare("note", "x", writable=True)
        info = await info_of(leaf)
        async with api_client(info, kit.password) as client:

            async def write(**body) -> httpx.Response:
                return await client.post("/write", json=body)

            response = await write(name="dummy.light.1", value=1)
            assert response.status_code == 200, response.text
            assert response.json() == {
                "ok": True,
                "ns": "io",
                "name": "dummy.light.1",
                "value": 1,
                "current": 1,
                "quality": "good",
            }
            assert leaf.points["dummy.light.1"].value == 1
            assert (await write(name="dummy.temp", value=3)).json()["value"] == 3.0
            assert (await write(ns="ui", name="note", value="y*z")).status_code == 200
            assert leaf.ui["note"].value == "y*z"

            cases = [
                ({"name": "dummy.light.1", "value": "on"}, 422, "wrong_type"),
                ({"name": "dummy.light.1", "value": True}, 422, "wrong_type"),
                ({"name": "system.uptime", "value": 1}, 409, "read_only"),
                ({"name": "dummy.nope", "value": 1}, 404, "unknown_point"),
                ({"name": "dummy.secret.code", "value": 1}, 404, "unknown_point"),  # filtered
                ({"name": "dummy.light.1"}, 400, "bad_request"),
                ({"name": "dummy.light.1", "value": [1]}, 400, "bad_request"),
                ({"ns": "xx", "name": "dummy.light.1", "value": 1}, 400, "bad_request"),
            ]
            for body, status, code in cases:
                response = await write(**body)
                assert (response.status_code, response.json()["error"]["code"]) == (status, code), (
                    body
                )
            response = await client.post(
                "/write", content=b"{not json", headers={"content-type": "application/json"}
            )
            assert response.status_code == 400
            assert "not valid JSON" in response.json()["error"]["message"]
    assert leaf.points["dummy.light.1"].value == 1  # none of the refused writes changed it
    assert leaf.points["dummy.secret.code"].value == 1234


async def test_state_stream_and_filters(kit, info_of):
    config = kit.serving(
        points=POINTS,
        io_filter=["dummy.light.*", "dummy.temp", "dummy.door"],
        ui_filter=["shown.*"],
    )
    async with ioplex.Host.from_config(config) as leaf:
        leaf.ui.declare("shown.a", 1)
        leaf.ui.declare("hidden", 2)
        leaf.ioservers["dummy"].set("door", False, quality=Quality.STALE)
        info = await info_of(leaf)
        async with api_client(info, kit.password) as client:
            response = await client.get("/state")
            assert response.headers["content-type"].startswith("application/x-ndjson")
            head, *pages, tail = ndjson(response)
            rows = [row for page in pages for row in page]
            assert head["ns"] == "io" and head["count"] == len(rows) == 3
            assert tail == {"end": True, "count": 3}
            assert sorted(rows) == [
                ["dummy.door", False, "stale", "bool", True, "leaf", 0],
                ["dummy.light.1", 0, "good", "int", True, "leaf", 0],
                ["dummy.temp", 21.5, "good", "float", True, "leaf", 0],
            ]
            head, *pages, tail = ndjson(await client.get("/state", params={"ns": "ui"}))
            assert [row[0] for page in pages for row in page] == ["shown.a"]
            picked = ndjson(
                await client.get(
                    "/state",
                    params=[("name", "dummy.temp"), ("name", "dummy.status"), ("name", "nope")],
                )
            )
            assert [row[0] for page in picked[1:-1] for row in page] == ["dummy.temp"]
            bad = await client.get("/state", params={"ns": "io,ui"})
            assert bad.status_code == 400 and "exactly one" in bad.json()["error"]["message"]
            info_body = (await client.get("/info")).json()
            assert info_body["count"] == {"io": 3, "ui": 1}
            assert info_body["control"] is False and info_body["host"] == "leaf"


async def test_changes_long_poll_paging_and_resync(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points=POINTS)) as leaf:
        info = await info_of(leaf)
        async with api_client(info, kit.password) as client:
            start = (await client.get("/info")).json()
            epoch, seq = start["epoch"], start["seq"]
            for value in (1, 2, 3):
                await leaf.write("dummy.light.1", value)
            await leaf.write("dummy.status", "s*")
            leaf.ui.declare("ui.var", 5)
            body = (await client.get("/changes", params={"epoch": epoch, "since": seq})).json()
            assert body["io"] == [["dummy.light.1", 3, "good"], ["dummy.status", "s*", "good"]]
            assert body["ui"] == [["ui.var", 5, "good"]]
            assert body["more"] is False and abs(body["time"] - leaf.time()) < 5
            # paging: limit 1 gives the oldest change and a position to continue from
            page = (
                await client.get("/changes", params={"since": seq, "limit": 1, "ns": "io"})
            ).json()
            assert page["io"] == [["dummy.light.1", 3, "good"]] and page["more"] is True
            rest = (await client.get("/changes", params={"since": page["seq"], "ns": "io"})).json()
            assert rest["io"] == [["dummy.status", "s*", "good"]] and rest["more"] is False
            # nothing new: held for `wait` seconds, then an empty answer
            started = time.monotonic()
            idle = (await client.get("/changes", params={"since": body["seq"], "wait": 0.3})).json()
            assert time.monotonic() - started >= 0.3
            assert idle["io"] == [] and idle["ui"] == [] and idle["seq"] == body["seq"]
            # a position from another server run, or ahead of the log, needs a resync
            for params in ({"epoch": "0" * 16, "since": 1}, {"since": body["seq"] + 100}):
                answer = (await client.get("/changes", params=params)).json()
                assert answer["resync"] is True and answer["epoch"] == epoch
            bad = await client.get("/changes", params={"since": "x"})
            assert bad.status_code == 400 and "since" in bad.json()["error"]["message"]


async def test_clock_endpoint(kit, info_of):
    for control, writable in (
        (True, True),
        (["system.time"], True),
        (False, False),
        (["dummy.*"], False),
    ):
        config = kit.serving(system=True, host={"allow_set_clock": True}, control=control)
        async with ioplex.Host.from_config(config) as leaf:
            info = await info_of(leaf)
            async with api_client(info, kit.password) as client:
                clock = (await client.get("/clock")).json()
        assert abs(clock["time"] - leaf.time()) < 5
        assert clock["point"] == "system.time" and clock["writable"] is writable, control


async def test_the_password_never_appears_in_logs(kit, info_of, caplog):
    caplog.set_level(logging.DEBUG)
    config = kit.serving(points={"a": 1})
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            await leaf.write("dummy.a", 2)
            await anyio.sleep(0.1)
        bad = kit.replicating(info, name="bad")
        bad["ioservers"]["remote"]["password"] = kit.password + "-wrong"
        async with ioplex.Host.from_config(bad) as top:
            await anyio.sleep(0.3)
        with pytest.raises(ioplex.ConfigError) as caught:
            broken = kit.replicating(info, name="broken")
            broken["ioservers"]["remote"]["password"] = 12345678
            ioplex.Host.from_config(broken)
    assert "12345678" not in str(caught.value)
    assert "ioservers.remote.password" in str(caught.value)
    for secret in (kit.password, kit.password + "-wrong", "pa%25ss"):
        assert secret not in caplog.text
