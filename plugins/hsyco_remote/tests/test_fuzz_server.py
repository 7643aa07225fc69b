"""Property-based fuzzing of what the HTTPS server parses from the outside world — rioget
queries, API v1 query parameters and write bodies — over real TLS on loopback: whatever is
sent, the answer is a 2xx or a 4xx (a JSON error, or rioget's empty refusal), never a 5xx, and
the server keeps answering."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import ioplex
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex_hsyco_remote import api as api_module
from ioplex_hsyco_remote import rioget as rioget_module
from ioplex_hsyco_remote.wire import SESSION_HEADER, bearer

PASSWORD = "fuzz*pa%ss"
RIOGET_FROM = "127.0.0.9"
"""rioget guesses come from their own address: its lockouts must not hide the API fuzzing."""


class Served:
    """A serving host run in a thread of its own, and a raw TLS client for it."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.context = ssl.create_default_context(cafile=info["certificate"])
        self.session = ""

    def exchange(self, request: bytes, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
        with (
            socket.create_connection(
                ("127.0.0.1", self.info["port"]), timeout=15, source_address=(source, 0)
            ) as raw,
            self.context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(request)
            received = b""
            while chunk := tls.recv(65536):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.decode("latin-1").partition(":") for line in lines[1:])
        }
        return int(lines[0].split(b" ", 2)[1]), headers, body

    def api(self, method: bytes, target: bytes, body: bytes | None = None) -> tuple[int, bytes]:
        auth = bearer(PASSWORD)["Authorization"].encode()
        request = (
            method
            + b" "
            + target
            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + b"Authorization: "
            + auth
            + b"\r\n"
            + SESSION_HEADER.encode()
            + b": "
            + self.session.encode()
            + b"\r\n"
        )
        if body is not None:
            request += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        status, headers, answer = self.exchange(request + b"\r\n" + (body or b""))
        self.session = headers.get(SESSION_HEADER.lower(), self.session)
        return status, answer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    config = {
        "host": {"name": "fuzz", "data_dir": str(data_dir)},
        "ioservers": {
            "dummy": {
                "plugin": "dummy",
                "options": {"points": {"int": 0, "float": 1.5, "text": "a*b", "flag": False}},
            }
        },
        "plugins": {
            "hsyco_remote": {
                "server": {
                    "listen": "127.0.0.1:0",
                    "password": PASSWORD,
                    "control": True,
                    "address": "127.0.0.0/8",
                }
            }
        },
    }
    patched = [(api_module, "MAX_WAIT", 0.05), (rioget_module, "MAX_WAIT", 0.05)]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patched]
    for module, name, value in patched:
        setattr(module, name, value)
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        host = ioplex.Host.from_config(config)
        done = portal.call(anyio.Event)
        ready = portal.call(anyio.Event)

        async def run() -> None:
            async with host:
                ready.set()
                await done.wait()

        future = portal.start_task_soon(run)
        portal.call(ready.wait)
        info_file = data_dir / "hsyco_remote" / "server.json"
        for _ in range(500):
            if info_file.exists():
                break
            portal.call(anyio.sleep, 0.02)
        served = Served(json.loads(info_file.read_text()))
        try:
            yield served
        finally:
            portal.call(done.set)
            future.result(timeout=30)
            for module, name, value in saved:
                setattr(module, name, value)


def assert_contained(status: int, body: bytes, refusals_may_be_empty: bool = False) -> None:
    assert 200 <= status < 500, (status, body[:300])
    if status >= 400 and (body or not refusals_may_be_empty):
        error = json.loads(body)["error"]
        assert error["code"] and error["message"]


def still_answering(served: Served) -> None:
    status, _, _ = served.exchange(
        b"GET /x/rioget?1*1*"
        + quote(PASSWORD).encode()
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        source="127.0.0.1",
    )
    assert status in (200, 429), status


query_bytes = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda v, s, p: v + b"*" + s + b"*" + p,
        st.sampled_from([b"1", b"", b"01", b"2", b"1 ", b"%31"]),
        st.one_of(
            st.integers(min_value=-5, max_value=10**30).map(lambda n: str(n).encode()),
            st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
            st.binary(max_size=12),
        ),
        st.one_of(
            st.just(quote(PASSWORD).encode()), st.just(PASSWORD.encode()), st.binary(max_size=20)
        ),
    ),
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(query=query_bytes)
def test_fuzz_rioget_queries(served: Served, query: bytes) -> None:
    status, headers, body = served.exchange(
        b"GET /x/rioget?" + query + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        source=RIOGET_FROM,
    )
    assert_contained(status, body, refusals_may_be_empty=True)
    if status == 200:
        state = json.loads(body)["hsycostate"]
        assert isinstance(state["timestamp"], int)
        assert all(isinstance(v, str) for v in state.get("io", {}).values())
    if status == 429:
        assert int(headers["retry-after"]) >= 1


param_text = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["", "io", "ui", "io,ui", ","]),
)


@FUZZ
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(["since", "wait", "limit", "ns", "epoch", "name", "after", "x"]),
            param_text,
        ),
        max_size=5,
    ),
    path=st.sampled_from(
        [
            b"/api/v1/changes",
            b"/api/v1/state",
            b"/api/v1/info",
            b"/api/v1/clock",
            b"/api/v1/loggers/a/samples",
            b"/api/v1/openapi.json",
        ]
    ),
)
def test_fuzz_api_query_parameters(served: Served, params: list, path: bytes) -> None:
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params).encode()
    status, body = served.api(b"GET", path + b"?" + query)
    assert status != 429, "the session token must keep the fuzzer in"
    assert_contained(status, body)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
write_bodies = st.one_of(
    st.binary(max_size=60),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda ns, name, value: json.dumps({"ns": ns, "name": name, "value": value}).encode(),
        st.one_of(st.sampled_from(["io", "ui"]), json_values),
        st.one_of(
            st.sampled_from(
                ["dummy.int", "dummy.float", "dummy.text", "dummy.flag", "dummy.connection"]
            ),
            json_values,
        ),
        json_values,
    ),
)


@FUZZ
@given(body=write_bodies)
def test_fuzz_api_write_bodies(served: Served, body: bytes) -> None:
    status, answer = served.api(b"POST", b"/api/v1/write", body)
    assert status != 429
    assert_contained(status, answer)
    if status == 200:
        assert json.loads(answer)["ok"] is True


def test_the_server_still_answers_after_the_fuzzing(served: Served) -> None:
    still_answering(served)
    status, body = served.api(b"GET", b"/api/v1/info")
    assert status == 200 and json.loads(body)["host"] == "fuzz"
