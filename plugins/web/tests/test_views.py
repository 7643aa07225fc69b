"""Plugins' views over the API (/api/v1/views, /api/v1/rules/{rule}/traces) on real servers:
traces after real firings, roles, unknown names, bad and hostile parameters, failing views."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex_web.testing import USERS, RunningHost, base_config, client

pytest.importorskip("ioplex_events")

RULES = 'IO dummy.light.1 : LOG = "light"\nIO dummy.door.front = true : LOG = "door"\n'


def events_host(directory: Path) -> RunningHost:
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / "rules.txt"
    rules.write_text(RULES)
    config = base_config(directory, {"users": USERS}, rate=0)
    config["plugins"]["events"] = {"files": [str(rules)], "watch": False}
    return RunningHost(config).start()


@pytest.fixture(scope="module")
def rules_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    running = events_host(tmp_path_factory.mktemp("views"))
    with client(running, "bob") as c:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(c.get("/api/v1/rules").json()["items"]) < 2:
            time.sleep(0.05)
    for i in range(3):
        running.call(running.host.ioservers["dummy"].set, "light.1", i + 1)
    yield running
    running.stop()


def light_rule(c: httpx.Client) -> str:
    """The light rule's key as /api/v1/rules lists it (``<file>.<line>``)."""
    return next(
        r["rule"] for r in c.get("/api/v1/rules").json()["items"] if r["rule"].endswith(".1")
    )


def wait_traces(c: httpx.Client, path: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        got = c.get(path).json()["traces"]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_views_are_listed(rules_host: RunningHost) -> None:
    with client(rules_host, "bob") as c:
        r = c.get("/api/v1/views")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        items = {v["name"]: v for v in r.json()["items"]}
        assert items["events.traces"] == {
            "name": "events.traces",
            "plugin": "events",
            "description": "The last firings of the rules (trigger, actions, results)",
            "params": ["rule", "limit"],
            "required": [],
        }
        assert "events.rules" in items


def test_traces_of_a_rule_after_it_fired(rules_host: RunningHost) -> None:
    with client(rules_host, "bob") as c:
        key = light_rule(c)
        got = wait_traces(c, f"/api/v1/rules/{key}/traces", 3)
        assert [t["trigger"] for t in got[:3]] == [
            "IO dummy.light.1 = 3",
            "IO dummy.light.1 = 2",
            "IO dummy.light.1 = 1",
        ]
        assert got[0]["actions"] == [['LOG = "light"', "ok"]] and got[0]["status"] == "done"
        assert got[0]["point"] == f"events.{key}" and got[0]["rule"].endswith("rules.txt:1")
        one = c.get(f"/api/v1/rules/{key}/traces", params={"limit": 1}).json()
        assert len(one["traces"]) == 1 and one["engine"] is True
        # by the rule's id too (file:line, slashes and all), and through the generic view
        by_id = c.get(f"/api/v1/rules/{got[0]['rule']}/traces").json()["traces"]
        assert by_id == got
        view = c.get("/api/v1/views/events.traces", params={"rule": key, "limit": "2"})
        assert view.status_code == 200 and view.json()["traces"] == got[:2]
        rules = c.get("/api/v1/views/events.rules").json()["rules"]
        light = next(r for r in rules if r["point"] == f"events.{key}")
        assert light["fired"] >= 3 and light["last_fired"] == got[0]["time"]


def test_unknown_names_and_bad_parameters(rules_host: RunningHost) -> None:
    with client(rules_host, "bob") as c:
        key = light_rule(c)
        r = c.get("/api/v1/rules/nothing.9/traces")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_rule"
        assert "no rule 'nothing.9' is loaded" in r.json()["error"]["message"]
        for limit in ("0", "1001", "x", "-1"):
            r = c.get(f"/api/v1/rules/{key}/traces", params={"limit": limit})
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", limit
        r = c.get("/api/v1/views/events.trace")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_view"
        assert "did you mean 'events.traces'?" in r.json()["error"]["message"]
        for params, message in (
            ({"limit": "5000"}, "limit: 5000 is not within 1...1000"),
            ({"rules": "x"}, "unknown parameter 'rules' (it takes rule, limit)"),
            ([("limit", "1"), ("limit", "2")], "give limit once"),
        ):
            r = c.get("/api/v1/views/events.traces", params=params)
            assert r.status_code == 400 and message in r.json()["error"]["message"], r.text


def test_roles_and_the_allow_list(rules_host: RunningHost) -> None:
    with client(rules_host) as anonymous:
        for path in ("/api/v1/views", "/api/v1/views/events.rules", "/api/v1/rules/x.1/traces"):
            r = anonymous.get(path)
            assert r.status_code == 401 and r.json()["error"]["code"], path
    with client(rules_host, "alice") as alice, client(rules_host, "bob") as bob:
        assert alice.get("/api/v1/views/events.rules").status_code == 200
        assert bob.get("/api/v1/views/events.rules").status_code == 200
    with httpx.Client(base_url=rules_host.url, auth=("bob", "wrong-password"), timeout=10) as c:
        assert c.get("/api/v1/views").status_code == 401


def test_allow_list_applies(make_host: Any) -> None:
    running = make_host({"users": USERS, "allow": ["192.0.2.0/24"]})
    with client(running, "bob") as c:
        r = c.get("/api/v1/views")
        assert r.status_code == 403


def test_a_failing_view_is_a_503_logged_once(
    rules_host: RunningHost, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(host: Any) -> None:
        raise RuntimeError("state is gone")

    def odd(host: Any) -> Any:
        return {1: object()}

    views = rules_host.host.views
    if "webtest.broken" not in views:
        rules_host.call(views.add, "webtest", "broken", broken, "always fails")
        rules_host.call(views.add, "webtest", "odd", odd, "answers no JSON")
    with caplog.at_level(logging.WARNING, "ioplex.plugin.web"), client(rules_host, "bob") as c:
        for _ in range(5):
            r = c.get("/api/v1/views/webtest.broken")
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert r.json()["error"] == {
                "code": "view_failed",
                "message": "view webtest.broken of plugin webtest failed: RuntimeError: "
                "state is gone",
            }
        r = c.get("/api/v1/views/webtest.odd")
        assert r.status_code == 503 and "not JSON" in r.json()["error"]["message"]
        assert c.get("/api/v1/views").status_code == 200  # the server goes on
    lines = [rec.getMessage() for rec in caplog.records if "webtest.broken" in rec.getMessage()]
    assert len(lines) == 1  # rate-limited


def test_traces_without_the_events_plugin(tmp_path: Path) -> None:
    config = base_config(tmp_path, {"users": USERS})
    running = RunningHost(config, environ={**os.environ, "IOPLEX_LOAD_PLUGINS": "web"}).start()
    try:
        with client(running, "bob") as c:
            r = c.get("/api/v1/rules/main.txt:1/traces")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_installed"
            assert "events plugin" in r.json()["error"]["message"]
            assert c.get("/api/v1/views").json() == {"items": []}
            r = c.get("/api/v1/views/events.traces")
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_view"
    finally:
        running.stop()


NAMES = st.sampled_from(["events.traces", "events.rules", "events.trace", "x", "événements"])
TEXT = (
    st.text(max_size=40)
    | st.integers(-(2**70), 2**70).map(str)
    | st.sampled_from(["", "nan", "%00", "../..", "*", "'", ":", "1" * 5000])
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=NAMES | st.text(max_size=20),
    params=st.lists(
        st.tuples(st.sampled_from(["rule", "limit", "x", "host", ""]) | st.text(max_size=8), TEXT),
        max_size=4,
    ),
    rule=TEXT,
    auth=st.sampled_from([("bob", "bob-secret-22"), None]),
)
def test_hostile_requests_never_get_a_5xx(
    rules_host: RunningHost, name: str, params: list[tuple[str, str]], rule: str, auth: Any
) -> None:
    with httpx.Client(base_url=rules_host.url, timeout=10, auth=auth) as c:
        for path, query in (
            (f"/api/v1/views/{name}", params),
            (f"/api/v1/rules/{rule}/traces", params),
        ):
            try:
                r = c.get(path, params=query)
            except httpx.InvalidURL:
                continue  # a URL no client can send
            assert r.status_code < 500, (path, query, r.status_code, r.text)
            if r.status_code >= 400:
                assert r.json()["error"]["code"]
