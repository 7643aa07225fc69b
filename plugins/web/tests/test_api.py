"""The HTTP API against a running host: every endpoint, roles, the allow-list and bad input."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import httpx
import ioplex
import pytest
from ioplex import State
from ioplex_web.testing import PASSWORDS, USERS, client


def test_list_filter_and_paging(user_host: Any) -> None:
    with client(user_host, "bob") as c:
        everything = c.get("/api/v1/points").json()
        assert everything["total"] == 6 and not everything["can_write"]
        names = [p["name"] for p in everything["items"]]
        assert names == sorted(names)
        lights = c.get("/api/v1/points", params={"pattern": "dummy.light.*"}).json()
        assert [p["name"] for p in lights["items"]] == ["dummy.light.1", "dummy.light.2"]
        page = c.get("/api/v1/points", params={"offset": 2, "limit": 2}).json()
        assert [p["name"] for p in page["items"]] == names[2:4] and page["total"] == 6
        text = c.get("/api/v1/points", params={"q": "TEMP"}).json()
        assert [p["name"] for p in text["items"]] == ["dummy.temp.living"]
        two = c.get("/api/v1/points", params=[("pattern", "*.door.*"), ("pattern", "*label")])
        assert two.json()["total"] == 2
        for bad in (
            {"limit": "100001"},
            {"offset": "-1"},
            {"limit": "x"},
            {"pattern": "a\u202eb"},
            {"pattern": "a b"},
        ):
            r = c.get("/api/v1/points", params=bad)
            assert r.status_code == 400, bad
            assert r.json()["error"]["code"] == "bad_request"
        ui = c.get("/api/v1/ui").json()
        assert [p["name"] for p in ui["items"]] == ["dummy.alarm.text"]


def test_get_one_point_with_metadata(user_host: Any) -> None:
    with client(user_host, "bob") as c:
        p = c.get("/api/v1/points/dummy.temp.living").json()
        assert p["name"] == "dummy.temp.living" and p["type"] == "float" and p["writable"]
        assert p["quality"] == "good" and p["ioserver"] == "dummy"
        assert isinstance(p["changed"], float) and isinstance(p["value"], float)
        r = c.get("/api/v1/points/dummy.temp.livin")
        assert r.status_code == 404
        assert "did you mean 'dummy.temp.living'" in r.json()["error"]["message"]


def put(c: httpx.Client, name: str, body: Any, ui: bool = False) -> httpx.Response:
    return c.put(
        f"/api/v1/{'ui' if ui else 'points'}/{name}",
        content=body if isinstance(body, (bytes, str)) else json.dumps(body),
        headers={"content-type": "application/json"},
    )


def test_writes_roles_and_the_kernels_refusals(make_host: Any) -> None:
    user_host = make_host({"users": USERS}, rate=0)
    with client(user_host, "alice") as alice, client(user_host, "bob") as bob:
        assert put(alice, "dummy.light.1", {"value": 7}).status_code == 200
        assert user_host.host.points["dummy.light.1"].value == 7
        assert put(alice, "dummy.alarm.text", {"value": "fire"}, ui=True).status_code == 200
        assert user_host.host.ui["dummy.alarm.text"].value == "fire"
        r = put(bob, "dummy.light.1", {"value": 8})
        assert r.status_code == 403 and "role read" in r.json()["error"]["message"]
        r = put(alice, "dummy.light.1", {"value": "eight"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "wrong_type"
        assert "dummy.light.1" in r.json()["error"]["message"]
        r = put(alice, "dummy.light.1", b'{"value": 99999999999999999999999}')
        assert r.status_code == 422 and "64-bit" in r.json()["error"]["message"]
        r = put(alice, "dummy.temp.living", b'{"value": NaN}')
        assert r.status_code == 400  # NaN is not JSON
        r = put(alice, "dummy.temp.living", {"value": "NaN"})
        assert r.status_code == 422
        r = put(alice, "dummy.nothing", {"value": 1})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_point"
        r = put(alice, "dummy.connection", {"value": "offline"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "read_only"
        assert put(alice, "dummy.light.1", {"nothing": 1}).status_code == 400
        assert put(alice, "dummy.light.1", b"not json").status_code == 400
        assert put(alice, "dummy.light.1", b"[" * 100 + b"]" * 100).status_code == 400
        r = alice.put(
            "/api/v1/points/dummy.light.1",
            content=b'{"value": 1}',
            headers={"content-type": "text/plain"},
        )
        assert r.status_code == 415
        huge = b'{"value": "' + b"x" * (2 << 20) + b'"}'
        r = put(alice, "dummy.label", huge)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        r = put(alice, "dummy.label", {"value": "x" * 70_000})  # over [host] max_string
        assert r.status_code == 422
        assert user_host.host.points["dummy.light.1"].value == 7
        # the server still answers after all that
        assert alice.get("/api/v1/points/dummy.light.1").json()["value"] == 7


def test_control_policy_limits_writes(make_host: Any) -> None:
    running = make_host({"users": USERS, "control": ["dummy.light.*"]})
    with client(running, "alice") as c:
        assert put(c, "dummy.light.2", {"value": 3}).status_code == 200
        r = put(c, "dummy.label", {"value": "no"})
        assert r.status_code == 403 and "plugins.web.control" in r.json()["error"]["message"]


def test_open_host_reads_on_loopback_and_never_writes(open_host: Any) -> None:
    with client(open_host) as c:
        assert c.get("/api/v1/session").json() == {
            "name": "anonymous",
            "role": "read",
            "open": True,
            "host": "webtest",
        }
        assert c.get("/api/v1/points").json()["total"] == 6
        r = put(c, "dummy.light.1", {"value": 1})
        assert r.status_code == 403 and "read-only" in r.json()["error"]["message"]
        r = c.post("/api/v1/session", json={"name": "x", "password": "y"})
        assert r.status_code == 409


def test_no_users_refuses_a_non_loopback_address(tmp_path: Any) -> None:
    from ioplex_web.testing import base_config

    config = base_config(tmp_path, {"listen": "0.0.0.0:0"})
    with pytest.raises(ioplex.ConfigError) as err:
        ioplex.Host.from_config(config)
    assert "plugins.web.listen" in str(err.value) and "users" in str(err.value)


def test_authentication(user_host: Any) -> None:
    with client(user_host) as anonymous:
        r = anonymous.get("/api/v1/points")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        r = anonymous.get("/api/v1/points", headers={"x-requested-with": "ioplex-page"})
        assert r.status_code == 401 and "www-authenticate" not in r.headers
        r = anonymous.get("/api/v1/points", auth=("alice", "wrong"))
        assert r.status_code == 401
        assert PASSWORDS["alice"] not in r.text
        r = anonymous.get("/api/v1/points", headers={"authorization": "Basic %%%"})
        assert r.status_code == 401
        r = anonymous.get("/api/v1/points", headers={"authorization": "Bearer abc"})
        assert r.status_code == 401
    # the page's session cookie
    with client(user_host) as page:
        r = page.post("/api/v1/session", json={"name": "alice", "password": PASSWORDS["alice"]})
        assert r.status_code == 200 and r.json()["role"] == "write"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert page.get("/api/v1/points").status_code == 200
        assert put(page, "dummy.light.2", {"value": 5}).status_code == 200
        page.delete("/api/v1/session")
        assert page.get("/api/v1/points").status_code == 401


def test_password_guessing_is_throttled(user_host: Any) -> None:
    with client(user_host) as c:
        codes = [c.get("/healthz", auth=("bob", "x")).status_code for _ in range(2)]
        assert codes == [200, 200]  # health needs no password
        codes = [c.get("/api/v1/points", auth=("bob", f"guess{i}")).status_code for i in range(8)]
        assert codes[:5] == [401] * 5 and 429 in codes[5:]
        r = c.get("/api/v1/points", auth=("bob", PASSWORDS["bob"]))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "retry in" in r.json()["error"]["message"]


def test_allow_list(make_host: Any) -> None:
    running = make_host({"users": USERS, "allow": ["10.0.0.0/8"]})
    with client(running, "alice") as c:
        for path in ("/api/v1/points", "/healthz", "/readyz", "/metrics"):
            r = c.get(path)
            assert r.status_code == 403, path
            assert r.json()["error"]["code"] == "forbidden"


def test_health_ready_and_states(user_host: Any) -> None:
    with client(user_host, "bob") as c:
        assert c.get("/healthz").json()["status"] == "alive"
        assert c.get("/readyz").status_code == 200
        io = user_host.host.ioservers["dummy"]
        user_host.call(io.set_state, State.RETRYING, "connection refused by 10.0.0.5")
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["waiting"] == ["dummy: retrying (connection refused by 10.0.0.5)"]
        user_host.call(io.set_state, State.ONLINE, None)
        assert c.get("/readyz").status_code == 200
        item = c.get("/api/v1/ioservers").json()["items"][0]
        assert item["name"] == "dummy" and item["state"] == "online"
        assert item["reconnects"] == 1 and item["last_error"] == "connection refused by 10.0.0.5"
        assert item["type"] == "dummy" and item["points"] == 6
        services = {s["name"]: s for s in c.get("/api/v1/services").json()["items"]}
        assert services["web"]["state"] == "online"
        log = c.get("/api/v1/log").json()["items"]
        assert [(e["name"], e["state"]) for e in log[-2:]] == [
            ("dummy", "retrying"),
            ("dummy", "online"),
        ]
        after = log[-1]["seq"]
        assert c.get("/api/v1/log", params={"after": after}).json()["items"] == []


def test_data_loggers(user_host: Any) -> None:
    with client(user_host, "bob") as c:
        loggers = c.get("/api/v1/loggers").json()["items"]
        assert loggers[0]["id"] == "climate" and loggers[0]["levels"] == ["raw", "minute", "hour"]
        deadline = time.monotonic() + 15
        rows: list[Any] = []
        while time.monotonic() < deadline and not rows:
            rows = c.get("/api/v1/loggers/climate/data").json()["rows"]
            time.sleep(0.3)
        assert rows and rows[-1][2] == "dummy.temp.living" and rows[-1][4] in ("good", "bad")
        r = c.get("/api/v1/loggers/climate/data", params={"format": "csv", "limit": 3})
        table = list(csv.reader(io.StringIO(r.text)))
        assert table[0] == ["seq", "time", "point", "value", "quality"] and len(table) >= 2
        assert r.headers["content-type"].startswith("text/csv")
        r = c.get(
            "/api/v1/loggers/climate/data",
            params={"level": "hour", "start": 0, "end": time.time() + 7200},
        )
        assert r.status_code == 200 and r.json()["fields"][0] == "time"
        assert c.get("/api/v1/loggers/climate/data", params={"level": "week"}).status_code == 400
        assert c.get("/api/v1/loggers/climate/data", params={"start": "x"}).status_code == 400
        assert c.get("/api/v1/loggers/climate/data", params={"start": "nan"}).status_code == 400
        assert c.get("/api/v1/loggers/nothing/data").status_code == 404


def test_rules_without_the_events_plugin(make_host: Any) -> None:
    running = make_host({"users": USERS})
    with client(running, "bob") as c:
        r = c.get("/api/v1/rules").json()
        assert r["items"] == []


def test_openapi_names_every_route(user_host: Any) -> None:
    with client(user_host) as c:
        spec = c.get("/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    from ioplex_web.api import Api

    api = Api.__new__(Api)
    api.host = None
    paths = {
        route.path.replace(":path}", "}")
        for route in Api.routes(api)
        if route.path.startswith(("/api", "/healthz", "/readyz", "/metrics"))
    }
    assert paths <= set(spec["paths"]), paths - set(spec["paths"])


def test_static_files_and_unknown_paths(open_host: Any) -> None:
    with client(open_host) as c:
        page = c.get("/")
        assert page.status_code == 200 and "<title>ioplex</title>" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        for path in (
            "/static/app.js",
            "/static/table.js",
            "/static/format.js",
            "/static/style.css",
            "/static/vendor/uPlot.iife.min.js",
        ):
            assert c.get(path).status_code == 200, path
        for path in (
            "/static/../__init__.py",
            "/static/vendor/../../api.py",
            "/static/%2e%2e/api.py",
            "/static/.hidden.js",
            "/nothing",
        ):
            r = c.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "not_found"
        assert c.post("/api/v1/points").status_code == 405


def test_rules_of_the_events_plugin(tmp_path: Any) -> None:
    pytest.importorskip("ioplex_events")
    rules = tmp_path / "rules.txt"
    rules.write_text(
        'IO dummy.light.1 : LOG = "light"\nIO dummy.door.front = true : LOG = "door"\n'
    )
    from ioplex_web.testing import RunningHost, base_config

    config = base_config(tmp_path / "ev", {"users": USERS}, rate=0)
    config["plugins"]["events"] = {"files": [str(rules)]}
    running = RunningHost(config).start()
    try:
        with client(running, "bob") as c:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not c.get("/api/v1/rules").json()["items"]:
                time.sleep(0.2)
            for i in range(3):
                running.call(running.host.ioservers["dummy"].set, "light.1", i + 1)
                time.sleep(0.3)
            items = {r["rule"]: r for r in c.get("/api/v1/rules").json()["items"]}
            assert c.get("/api/v1/rules").json()["installed"]
            light = next(r for name, r in items.items() if name.endswith(".1"))
            assert light["fires"] >= 2 and light["last_fired"] is not None
            metrics = c.get("/metrics").text
            assert 'ioplex_rule_fires_total{rule="' in metrics
    finally:
        running.stop()
