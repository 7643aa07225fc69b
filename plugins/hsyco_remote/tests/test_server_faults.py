"""The HTTPS server under hostile input and faults, on real sockets: every malformed request is a
4xx JSON error for that request alone, values that JSON cannot hold never break a stream,
deadlines close connections that hold slots, and a flood from one address evicts its own
oldest idle connections instead of locking out a good client."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import time
from typing import Any

import anyio
import httpx
import ioplex
import pytest
from ioplex_hsyco_remote import api as api_module
from ioplex_hsyco_remote import server as server_module
from ioplex_hsyco_remote.wire import bearer

pytestmark = pytest.mark.anyio


SERVER_LOGGERS = ("ioplex.plugin.hsyco_remote", "ioplex.serving", "uvicorn", "asyncio")


def tls_context(info: dict) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=info["certificate"])


def strict_json(data: bytes | str) -> Any:
    """JSON as a strict parser reads it: NaN and Infinity tokens are errors."""

    def refuse(name: str) -> Any:
        raise ValueError(f"bare {name} in JSON")

    return json.loads(data, parse_constant=refuse)


async def raw_exchange(
    info: dict, request: bytes, *, timeout: float = 10.0, local_host: str | None = None
) -> bytes:
    """Send `request` bytes over TLS as they are; everything the server answers until it
    closes (or `timeout`)."""
    stream = await anyio.connect_tcp(
        "127.0.0.1",
        info["port"],
        tls=True,
        ssl_context=tls_context(info),
        tls_hostname="127.0.0.1",
        local_host=local_host,
    )
    received = b""
    async with stream:
        await stream.send(request)
        with anyio.move_on_after(timeout):
            try:
                while True:
                    received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError, OSError):
                pass
    return received


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get(path: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n"


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        r
        for r in caplog.records
        if r.exc_info
        or "Traceback" in r.getMessage()
        or (r.levelno >= logging.ERROR and r.name.startswith(SERVER_LOGGERS))
    ]
    assert not bad, [r.getMessage()[:200] for r in bad]


async def test_every_malformed_request_is_a_4xx_json_error(kit, info_of, caplog):
    caplog.set_level(logging.INFO)
    auth = b"Authorization: " + bearer(kit.password)["Authorization"].encode() + b"\r\n"
    pw = kit.password.replace(" ", "%20").encode()
    deep = b"[" * 100_000 + b"]" * 100_000
    cases: list[tuple[bytes, int]] = [
        (get(b"/x/rioget?1*%C2%B2*" + pw), 400),  # a superscript two as the stamp
        (get(b"/x/rioget?1*\xc2\xb2*" + pw), 400),  # the same, raw
        (get(b"/x/rioget?1*" + b"7" * 5000 + b"*" + pw), 400),
        (get(b"/x/rioget?1*0*" + pw), 400),
        (get(b"/x/rioget?1*1*%ZZ%"), 403),  # a malformed escape: just wrong
        (get(b"/x/rioget?1*1*\xff\xfe\x80"), 400),  # not ASCII: not HTTP (h11)
        (get(b"/x/rioget?%%%"), 400),
        (get(b"/x/rioget"), 400),
        (get(b"/api/v1/changes?since=" + b"9" * 5000, auth), 400),
        (get(b"/api/v1/changes?since=%ZZ&wait=%FF%FE", auth), 400),
        (get(b"/api/v1/changes?wait=1e999", auth), 400),
        (get(b"/api/v1/state?ns=%00", auth), 400),
        (get(b"/api/v1/loggers/%FF/samples?after=-1", auth), 404),
        (get(b"/\xff\xfe/x"), 400),  # a path that is not ASCII
        (get(b"/nowhere"), 404),
        (b"BREW /x/rioget HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (b"GET /x/rioget?" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # head
        (get(b"/x/rioget", b"X-Big: " + b"b" * 40_000 + b"\r\n"), 400),
        (b"\x16\x03\x01garbage\r\n\r\n", 400),
    ]
    writes = [
        (b"\xff\xfe\x00{", 400),
        (b'{"name": "dummy.a", "value": 1' + b"1" * 5000 + b"}", 400),  # a 5,001-digit integer
        (b'{"name": "dummy.a", "value": ' + b"9" * 401 + b"}", 422),  # past 64 bits
        (b'{"name": "dummy.a", "value": NaN}', 400),
        (deep, 400),
        (b'{"name": "dummy.a", "value": "' + b"x" * (api_module.MAX_BODY + 10) + b'"}', 413),
        (b'{"name": {"deep": [[[[[[[[[[1]]]]]]]]]]}, "value": 1}', 400),
        (b'{"ns": ["io"], "name": "dummy.a", "value": 1}', 400),
    ]
    for body, status in writes:
        cases.append(
            (
                b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + auth
                + b"Content-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body,
                status,
            )
        )
    config = kit.serving(points={"a": 1}, control=True)
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        for request, expected in cases:
            answer = await raw_exchange(info, request)
            status, body = status_and_body(answer)
            assert status == expected, (request[:60], status, body[:200])
            if status != 403:  # rioget refusals are empty, like HSYCO's
                assert strict_json(body)["error"]["message"], request[:60]
        assert leaf.points["dummy.a"].value == 1  # nothing got through
        async with httpx.AsyncClient(verify=tls_context(info)) as client:  # still answering
            good = await client.get(f"{info['url']}/x/rioget?1*1*{kit.password}")
            assert good.status_code == 200
    no_tracebacks(caplog)


async def test_non_finite_values_are_written_as_strings(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points={"a": 1})) as leaf:
        leaf.points.declare("odd.nan", float("nan"), nonfinite=True)
        leaf.points.declare("odd.inf", float("inf"), nonfinite=True)
        leaf.points.declare("odd.ninf", float("-inf"), nonfinite=True)
        info = await info_of(leaf)
        headers = bearer(kit.password)
        async with httpx.AsyncClient(verify=tls_context(info), headers=headers) as client:
            api = info["url"] + "/api/v1"
            since = (await client.get(f"{api}/info")).json()["seq"]
            lines = (await client.get(f"{api}/state")).text.splitlines()
            rows = {row[0]: row for line in lines[1:-1] for row in strict_json(line)}
            assert rows["odd.nan"][1] == "NaN" and rows["odd.nan"][3] == "float"
            assert rows["odd.inf"][1] == "Infinity" and rows["odd.ninf"][1] == "-Infinity"
            leaf.points.update(leaf.points["odd.inf"], float("-inf"))
            changes = strict_json(
                (await client.get(f"{api}/changes", params={"since": since})).content
            )
            assert ["odd.inf", "-Infinity", "good"] in changes["io"]
            rioget = await client.get(f"{info['url']}/x/rioget?1*1*{kit.password}")
            io = strict_json(rioget.content)["hsycostate"]["io"]
            assert io["odd.nan"] == "NaN" and io["odd.inf"] == "-Infinity"


async def test_a_value_json_cannot_hold_does_not_abort_the_state_for_everyone(kit, info_of, caplog):
    """The value contract keeps such values out of the registry; the server still serialises
    defensively, row by row, should one get past it."""
    async with ioplex.Host.from_config(kit.serving(points={}, io_filter=["site.*"])) as leaf:
        for i in range(2501):
            leaf.points.declare(f"site.p{i}", i, quiet=True)
        since = 0
        leaf.points["site.p1234"].value = 10**5000  # behind the registry's back
        info = await info_of(leaf)
        async with httpx.AsyncClient(
            verify=tls_context(info), headers=bearer(kit.password)
        ) as client:
            api = info["url"] + "/api/v1"
            lines = (await client.get(f"{api}/state")).text.splitlines()
            assert strict_json(lines[-1]) == {"end": True, "count": 2501}
            rows = {row[0]: row for line in lines[1:-1] for row in strict_json(line)}
            assert len(rows) == 2501
            assert rows["site.p1234"][1:3] == [None, "bad"]
            assert rows["site.p1235"][1:3] == [1235, "good"]
            leaf.points.update(leaf.points["site.p1233"], -3)
            leaf.points.update(leaf.points["site.p1232"], -2)
            leaf.points["site.p1233"].value = 10**5000
            changes = strict_json(
                (await client.get(f"{api}/changes", params={"since": since})).content
            )
            assert changes["io"] == [["site.p1233", None, "bad"], ["site.p1232", -2, "good"]]
            rioget = await client.get(f"{info['url']}/x/rioget?1*1*{kit.password}")
            io = strict_json(rioget.content)["hsycostate"]["io"]
            assert io["site.p1232"] == "-2" and io["site.p1234"] == ""
    assert "site.p1234: value not sent" in caplog.text


async def test_tls_handshake_and_request_head_deadlines(kit, info_of, monkeypatch):
    monkeypatch.setattr(server_module, "HANDSHAKE_TIMEOUT", 0.5)
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT", 0.5)
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        # a TCP client that never starts TLS is closed at the handshake deadline
        started = time.monotonic()
        async with await anyio.connect_tcp("127.0.0.1", info["port"]) as silent:
            with anyio.fail_after(5):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await silent.receive()
        assert 0.4 < time.monotonic() - started < 3
        # one that completes TLS, then sends its request head a byte at a time, is closed at
        # the head deadline however steadily the bytes come
        stream = await anyio.connect_tcp(
            "127.0.0.1",
            info["port"],
            tls=True,
            ssl_context=tls_context(info),
            tls_hostname="127.0.0.1",
        )
        started = time.monotonic()
        closed_after = None
        async with stream:
            try:
                with anyio.fail_after(5):
                    for byte in b"GET /api/v1/info HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                        await stream.send(bytes([byte]))
                        await anyio.sleep(0.05)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
                closed_after = time.monotonic() - started
            else:
                with anyio.fail_after(2):
                    with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                        await stream.receive()
                closed_after = time.monotonic() - started
        assert closed_after is not None and closed_after < 4


async def test_a_slow_request_body_gets_408(kit, info_of, monkeypatch, caplog):
    monkeypatch.setattr(api_module, "BODY_TIMEOUT", 0.5)
    auth = b"Authorization: " + bearer(kit.password)["Authorization"].encode() + b"\r\n"
    async with ioplex.Host.from_config(kit.serving(points={"a": 1}, control=True)) as leaf:
        info = await info_of(leaf)
        request = (
            b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + auth
            + b'Content-Length: 100\r\n\r\n{"name": '
        )
        started = time.monotonic()
        status, body = status_and_body(await raw_exchange(info, request, timeout=5))
        assert status == 408 and strict_json(body)["error"]["code"] == "timeout"
        assert time.monotonic() - started < 3
        # a client that goes away mid-body is a debug line, not a traceback
        stream = await anyio.connect_tcp(
            "127.0.0.1",
            info["port"],
            tls=True,
            ssl_context=tls_context(info),
            tls_hostname="127.0.0.1",
        )
        async with stream:
            await stream.send(request)
            await anyio.sleep(0.1)
        await anyio.sleep(0.3)
    assert leaf.points["dummy.a"].value == 1
    no_tracebacks(caplog)


async def test_an_idle_flood_evicts_its_own_oldest_connections(kit, info_of, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_UNAUTHENTICATED", 4)
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        idle = [await anyio.connect_tcp("127.0.0.1", info["port"]) for _ in range(12)]
        try:
            await anyio.sleep(0.3)
            async with httpx.AsyncClient(
                verify=tls_context(info), headers=bearer(kit.password)
            ) as client:
                with anyio.fail_after(2):
                    assert (await client.get(f"{info['url']}/api/v1/info")).status_code == 200

            async def closed(stream: Any) -> bool:
                with anyio.move_on_after(0.2):
                    try:
                        await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return True
                return False

            states = [await closed(s) for s in idle]
            assert all(states[:8]), states  # the oldest made room for newer ones
            assert not any(states[-3:]), states  # the newest still wait for their handshake
        finally:
            for stream in idle:
                await stream.aclose()


async def test_the_login_deadline_is_absolute_and_lifted_by_a_request_let_in(
    kit, info_of, monkeypatch
):
    """A connection that keeps sending requests with wrong passwords is closed at the login
    deadline however busy it is; one whose request was let in stays."""
    monkeypatch.setattr(server_module, "LOGIN_DEADLINE", 0.8)
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        async with httpx.AsyncClient(
            verify=tls_context(info), headers=bearer(kit.password)
        ) as good:
            assert (await good.get(f"{info['url']}/api/v1/info")).status_code == 200
            stream = await anyio.connect_tcp(
                "127.0.0.1",
                info["port"],
                tls=True,
                ssl_context=tls_context(info),
                tls_hostname="127.0.0.1",
            )
            started = time.monotonic()
            answers = 0
            try:
                with anyio.fail_after(5):
                    try:
                        while True:  # keep-alive requests on one connection, all refused
                            await stream.send(b"GET /x/rioget?1*1*x HTTP/1.1\r\nHost: x\r\n\r\n")
                            answer = await stream.receive()
                            assert answer.startswith((b"HTTP/1.1 403", b"HTTP/1.1 429"))
                            answers += 1
                            await anyio.sleep(0.05)
                    except (anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError, OSError):
                        pass
            finally:
                with contextlib.suppress(ssl.SSLError, OSError, anyio.BrokenResourceError):
                    await stream.aclose()
            assert 0.6 < time.monotonic() - started < 3 and answers >= 5
            await anyio.sleep(0.5)
            # the good client's connection, let in before the deadline, was kept alive
            connections = good._transport._pool.connections  # type: ignore[attr-defined]
            assert len(connections) == 1 and connections[0].is_idle()
            assert (await good.get(f"{info['url']}/api/v1/info")).status_code == 200
