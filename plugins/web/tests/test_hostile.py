"""Hostile clients: fuzzed requests never get a 500 or stop the server; silent and flooding
connections are closed or evicted while good clients keep being served."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex_web import server
from ioplex_web.testing import USERS, RunningHost, base_config


@pytest.fixture(scope="module")
def fuzz_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    running = RunningHost(
        base_config(tmp_path_factory.mktemp("fuzz"), {"users": USERS}, rate=0)
    ).start()
    yield running
    running.stop()


PATHS = st.sampled_from(
    [
        "/api/v1/points",
        "/api/v1/points/dummy.light.1",
        "/api/v1/ui",
        "/api/v1/loggers",
        "/api/v1/loggers/climate/data",
        "/api/v1/log",
        "/api/v1/session",
        "/api/v1/ioservers",
        "/api/v1/rules",
        "/metrics",
        "/readyz",
        "/static/app.js",
        "/api/v1/points/",
    ]
)
PARAMS = st.dictionaries(
    st.sampled_from(
        [
            "pattern",
            "q",
            "offset",
            "limit",
            "level",
            "start",
            "end",
            "format",
            "after",
            "last_event_id",
        ]
    ),
    st.text(max_size=40)
    | st.integers(-(2**70), 2**70).map(str)
    | st.sampled_from(["nan", "inf", "1e400", "*", "a..b", "[", "\x00"]),
    max_size=4,
)
BODIES = st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
).map(lambda v: json.dumps({"value": v}).encode())  # NaN/Infinity as bare words too


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=PATHS,
    params=PARAMS,
    body=BODIES,
    method=st.sampled_from(["GET", "PUT", "POST"]),
    auth=st.sampled_from([("alice", "alice-secret-1"), None, ("bob", "bob-secret-22")]),
)
def test_fuzzed_requests_get_json_answers(
    fuzz_host: RunningHost, path: str, params: dict[str, str], body: bytes, method: str, auth: Any
) -> None:
    with httpx.Client(base_url=fuzz_host.url, timeout=10, auth=auth) as c:
        r = c.request(
            method, path, params=params, content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code < 500, (r.status_code, r.text)
        if r.status_code >= 400 and not path.startswith("/static"):
            assert r.json()["error"]["code"]


def _good_request(url: str) -> int:
    return httpx.get(url + "/api/v1/points", auth=("bob", "bob-secret-22"), timeout=10).status_code


def test_garbage_and_oversized_heads(user_host: RunningHost) -> None:
    port = user_host.info["port"]
    for junk in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"GET / HTTP/1.1\r\nhost: x\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(junk)
            answer = s.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]
    assert _good_request(user_host.url) == 200


def test_silent_connections_are_closed_at_the_login_deadline(
    make_host: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "LOGIN_DEADLINE", 1.0)
    running = make_host({"users": USERS}, rate=0)
    port = running.info["port"]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as silent,
        socket.create_connection(("127.0.0.1", port), timeout=10) as dribbler,
    ):
        start = time.monotonic()
        dribbler.sendall(b"GET /api/v1/po")  # bytes do not extend the deadline
        time.sleep(0.6)
        dribbler.sendall(b"ints HTTP/1.1\r\n")
        assert silent.recv(1) == b""
        assert dribbler.recv(1) == b""
        assert 0.8 < time.monotonic() - start < 5
    # a logged-in watch outlives the deadline
    with (
        httpx.Client(base_url=running.url, auth=("bob", "bob-secret-22"), timeout=10) as c,
        c.stream("GET", "/api/v1/watch", params={"pattern": "dummy.light.1"}) as r,
    ):
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("event: snapshot"))
        time.sleep(1.5)
        running.call(running.host.ioservers["dummy"].set, "light.1", 5)
        assert next(line for line in lines if line.startswith("data: [")).startswith(
            'data: [["dummy.light.1",5'
        )


def test_an_idle_flood_does_not_lock_out_a_good_client(make_host: Any) -> None:
    running = make_host({"users": USERS, "max_connections": 20}, rate=0)
    port = running.info["port"]
    flood = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(60)]
    try:
        for _ in range(3):
            assert _good_request(running.url) == 200
        closed = 0
        for s in flood:
            s.settimeout(0.05)
            try:
                closed += s.recv(1) == b""
            except TimeoutError:
                pass
        assert closed >= 40  # the oldest idle ones made room
    finally:
        for s in flood:
            s.close()
