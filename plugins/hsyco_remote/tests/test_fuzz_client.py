"""Hostile answers to the replicating side (API v1 client): property-based fuzzing of the
functions that turn a remote's answers into values (`ioplex_hsyco_remote.answers`), and a
real mirror instance against a hostile HTTPS server on loopback.

Whatever a remote answers, only `RemoteError` escapes the parsers, and what they let through
has the shapes the mirror reads; the mirror logs one clear line per kind of garbage (no
traceback), keeps retrying with backoff and heals once the remote answers properly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import ssl
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import ioplex
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex import Quality, State
from ioplex.points import check_value
from ioplex_hsyco_remote import answers
from ioplex_hsyco_remote.client import _code, _message
from ioplex_hsyco_remote.refusals import RemoteError
from ioplex_hsyco_remote.wire import QUALITIES, TYPES

URL = "https://127.0.0.1:1/api/v1"
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies: valid answers, then mutated -------------------------------------------------
HOSTILE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) + 1),
    st.floats(),  # NaN and infinities included
    st.text(),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Cf"])),
    st.sampled_from(["NaN", "Infinity", "good", "bad", "int", "", "\u200b", "a" * 300]),
)
JSON_ANY = st.recursive(
    HOSTILE_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def state_row() -> st.SearchStrategy[list[Any]]:
    return st.tuples(
        st.text(max_size=20),
        HOSTILE_SCALARS,
        st.sampled_from(sorted(QUALITIES)),
        st.sampled_from([t for t in TYPES if t is not None] + [None]),
        st.booleans(),
        st.text(max_size=10),
        st.integers(min_value=0, max_value=5),
    ).map(list)


def change_row() -> st.SearchStrategy[list[Any]]:
    return st.tuples(st.text(max_size=20), HOSTILE_SCALARS, st.sampled_from(sorted(QUALITIES))).map(
        list
    )


@st.composite
def mutated(draw: Any, valid: st.SearchStrategy[Any]) -> Any:
    """A valid answer with a few of its parts (at any depth) replaced, removed or added."""
    data = draw(valid)

    def mutate(node: Any) -> Any:
        choice = draw(st.integers(0, 9))
        if choice == 0:
            return draw(JSON_ANY)
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            node = dict(node)
            if choice == 1:
                del node[key]
            elif choice == 2:
                node[draw(st.text(max_size=6))] = draw(JSON_ANY)
            else:
                node[key] = mutate(node[key])
        elif isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            node = list(node)
            if choice == 1:
                del node[i]
            elif choice == 2:
                node.append(draw(JSON_ANY))
            else:
                node[i] = mutate(node[i])
        elif choice < 4:
            return draw(HOSTILE_SCALARS)
        return node

    for _ in range(draw(st.integers(1, 3))):
        data = mutate(data)
    return data


VALID_INFO = st.fixed_dictionaries(
    {
        "api": st.just(1),
        "host": st.text(max_size=10),
        "epoch": st.text(min_size=1, max_size=10),
        "seq": st.integers(0, 2**63 - 1),
        "time": st.floats(0, 2e9),
        "control": st.booleans(),
        "count": st.fixed_dictionaries({"io": st.integers(0, 9), "ui": st.integers(0, 9)}),
        "clock": st.fixed_dictionaries(
            {
                "time": st.floats(0, 2e9),
                "point": st.none() | st.text(max_size=8),
                "writable": st.booleans(),
            }
        ),
        "loggers": st.lists(st.text(max_size=5), max_size=3),
    }
)
VALID_HEAD = st.fixed_dictionaries(
    {
        "epoch": st.text(min_size=1, max_size=8),
        "seq": st.integers(0, 99),
        "ns": st.just("io"),
        "count": st.integers(0, 9),
    }
)
VALID_PAGE = st.lists(state_row(), max_size=5)
VALID_CHANGES = st.fixed_dictionaries(
    {
        "epoch": st.text(min_size=1, max_size=8),
        "seq": st.integers(0, 2**63 - 1),
        "more": st.booleans(),
        "time": st.floats(0, 2e9),
        "count": st.fixed_dictionaries({"io": st.integers(0, 9)}),
        "io": st.lists(change_row(), max_size=5),
        "ui": st.lists(change_row(), max_size=5),
    }
) | st.fixed_dictionaries(
    {
        "resync": st.just(True),
        "reason": st.text(max_size=10),
        "epoch": st.text(max_size=4),
        "seq": st.integers(0, 9),
    }
)
VALID_SAMPLES = st.fixed_dictionaries(
    {
        "samples": st.lists(
            st.tuples(
                st.integers(0, 2**63 - 1),
                st.floats(0, 2e9),
                st.text(max_size=10),
                HOSTILE_SCALARS,
                st.sampled_from(sorted(QUALITIES)),
            ).map(list),
            max_size=5,
        ),
        "next": st.integers(0, 99),
        "more": st.booleans(),
        "store": st.text(max_size=8),
    }
)


def encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bodies: the JSON of a (mutated) answer, sometimes cut or with bytes spliced in."""

    def dump(data: Any) -> bytes:
        return json.dumps(data).encode()  # bare NaN/Infinity tokens included

    return st.one_of(
        mutated(strategy).map(dump),
        st.tuples(mutated(strategy).map(dump), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),
        st.tuples(mutated(strategy).map(dump), st.binary(max_size=8), st.integers(0, 50)).map(
            lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
        ),
        st.binary(max_size=200),
        st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),  # past Python's recursion
        st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.just(b"1" * 5000),  # past Python's int digit limit
        st.just(b'"\\ud800"'),
    )


def _scalar_ok(value: Any) -> None:
    assert value is None or isinstance(value, str | int | float | bool)


def _registry_ready(value: Any) -> None:
    """What the registry would take: a value passing the kernel's contract, or a
    PointTypeError naming the point (which the mirror turns into a bad point)."""
    try:
        check_value("remote.x", value, None, max_string=65536)
    except ioplex.PointTypeError as exc:
        assert "remote.x" in str(exc)


# -- the parsers ----------------------------------------------------------------------------
@FUZZ
@given(encoded(VALID_INFO))
def test_info_answers(body: bytes) -> None:
    try:
        data = answers.parse(body, URL)
        if not isinstance(data, dict) or data.get("api") != 1:
            return  # the client calls this NotIoplex (a RemoteError)
        info = answers.info(data, URL)
    except RemoteError as exc:
        assert URL in str(exc)
        return
    assert info["host"] is None or (isinstance(info["host"], str) and info["host"])
    assert isinstance(info["epoch"], str) and info["epoch"]
    assert isinstance(info["control"], bool)
    assert info["clock"] is None or (
        (info["clock"]["point"] is None or isinstance(info["clock"]["point"], str))
        and isinstance(info["clock"]["writable"], bool)
    )


@FUZZ
@given(encoded(VALID_HEAD), encoded(VALID_PAGE))
def test_state_stream_lines(head: bytes, page: bytes) -> None:
    try:
        parsed = answers.state_head(answers.parse(head, URL), URL)
    except RemoteError:
        pass
    else:
        assert isinstance(parsed["epoch"], str)
        assert 0 <= parsed["seq"] < 2**63 and 0 <= parsed["count"] < 2**63
    try:
        rows = answers.state_rows(answers.parse(page, URL), URL)
    except RemoteError:
        return
    for row in rows:
        name, value, quality, type_name, writable = row[:5]
        assert isinstance(name, str) and isinstance(writable, bool)
        assert quality in QUALITIES and type_name in TYPES
        _scalar_ok(value)
        _registry_ready(value)


@FUZZ
@given(encoded(VALID_CHANGES), st.sampled_from([("io",), ("io", "ui"), ("ui",)]))
def test_change_answers(body: bytes, spaces: tuple[str, ...]) -> None:
    try:
        answer = answers.changes(answers.parse(body, URL), URL, spaces)
    except RemoteError:
        return
    if answer.get("resync"):
        assert isinstance(answer["reason"], str)
        return
    assert 0 <= answer["seq"] < 2**63 and isinstance(answer["more"], bool)
    assert math.isfinite(answer["time"])
    assert all(ns in spaces and type(n) is int for ns, n in answer["count"].items())
    for ns in spaces:
        for name, value, quality in answer[ns]:
            assert isinstance(name, str) and quality in QUALITIES
            _scalar_ok(value)
            _registry_ready(value)


@FUZZ
@given(encoded(st.fixed_dictionaries({"time": st.floats(0, 2e9)})))
def test_clock_answers(body: bytes) -> None:
    try:
        answer = answers.clock(answers.parse(body, URL), URL)
    except RemoteError:
        return
    assert math.isfinite(answer["time"])


@FUZZ
@given(encoded(VALID_SAMPLES))
def test_sample_answers(body: bytes) -> None:
    try:
        rows, store = answers.samples(answers.parse(body, URL), URL, "energy")
    except RemoteError as exc:
        assert URL in str(exc)
        return
    assert store is None or (isinstance(store, str) and store)
    for seq, stamp, point, value, quality in rows:
        assert type(seq) is int and 0 <= seq < 2**63
        assert type(stamp) is float and math.isfinite(stamp)
        assert isinstance(point, str) and isinstance(quality, Quality)
        _scalar_ok(value)


@FUZZ
@given(
    encoded(
        st.fixed_dictionaries(
            {"error": st.fixed_dictionaries({"code": st.text(), "message": st.text()})}
        )
    )
)
def test_error_answers(body: bytes) -> None:
    """An error answer's code and message: a string or None, the message one log line."""
    import httpx

    response = httpx.Response(400, content=body)
    code = _code(response)
    message = _message(response)
    assert code is None or isinstance(code, str)
    assert isinstance(message, str) and len(message) <= 6 * 200 + 1  # escaped, cut
    assert not any(c in message for c in "\r\n\x00\x1b")


# -- a real mirror against a hostile server ---------------------------------------------------
GARBAGE: list[tuple[str, bytes]] = [
    ("/info", b'{"api": 1, "host": "evil", "epoch": 7, "clock": []}'),
    ("/info", b"[" * 50_000 + b"]" * 50_000),
    ("/state", b'{"epoch": "e1", "seq": "0", "count": 1}\n'),
    ("/state", b'{"epoch": "e1", "seq": 0, "count": 1}\n[["x.1", [1, 2], "good", "int", false]]\n'),
    ("/state", b'{"epoch": "e1", "seq": 0, "count": 1}\n[["x.1", 5, "great", "int", false]]\n'),
    ("/state", b'{"epoch": "e1", "seq": 0, "count": 1}\n\xff\xfe\x00garbage\n'),
    ("/changes", b'{"epoch": "e1", "seq": -1, "time": 0}'),
    ("/changes", b'{"epoch": "e1", "seq": 0, "time": NaN, "io": []}'),
    ("/changes", b'{"epoch": "e1", "seq": 0, "time": 1e400, "io": [["x.1"]]}'),
    ("/changes", b'{"epoch": "e1", "seq": 0, "time": 1, "io": {"x.1": 1}}'),
]
"""What the hostile server answers, by path, one kind after the other."""


class HostileRemote:
    """A tiny API v1 server over real TLS on loopback: proper answers (one point, and two
    values this host refuses), or, while `garbage` is set, one of GARBAGE per request."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.garbage = True
        self.served: list[str] = []
        self.infos: list[float] = []
        self.turn = 0
        self.port = 0
        self.epoch = "e1"

    def proper(self, path: str, query: dict[str, list[str]]) -> tuple[bytes, str]:
        now = time.time()
        if path == "/info":
            body = {
                "api": 1,
                "host": "evil",
                "epoch": self.epoch,
                "seq": 0,
                "time": now,
                "control": False,
                "count": {"io": 3},
                "clock": {"point": None},
            }
            return json.dumps(body).encode(), "application/json"
        if path == "/state":
            names = query.get("name")
            rows = [
                ["x.1", 5, "good", "int", False, "evil", 0],
                ["huge", 2**70, "good", "int", False, "evil", 0],
                ["surrogate", "\ud800", "good", "str", False, "evil", 0],
            ]
            rows = [r for r in rows if not names or r[0] in names]
            lines = [
                json.dumps({"epoch": self.epoch, "seq": 0, "ns": "io", "count": len(rows)}),
                json.dumps(rows),
                json.dumps({"end": True, "count": len(rows)}),
            ]
            return ("\n".join(lines) + "\n").encode(), "application/x-ndjson"
        if path == "/changes":
            body = {"epoch": self.epoch, "seq": 0, "more": False, "time": now, "count": {"io": 3}}
            return json.dumps(body).encode(), "application/json"
        return b'{"error": {"code": "not_found", "message": "no"}}', "application/json"

    async def _connection(self, stream: Any) -> None:
        gone = (anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError, OSError)
        try:
            await self._answer(stream)
        except gone:
            pass  # the mirror gave up on this connection (a timeout, a restart): fine
        finally:
            with contextlib.suppress(*gone):
                await stream.aclose()

    async def _answer(self, stream: Any) -> None:
        with anyio.move_on_after(5):
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = await stream.receive()
                data += chunk
            request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
            target = urlsplit(request_line.split(" ")[1])
            path = target.path.removeprefix("/api/v1")
            self.served.append(path)
            if path == "/changes" and not self.garbage:
                await anyio.sleep(0.3)  # a short long poll
            status = b"200 OK"
            if path == "/info":
                self.infos.append(time.monotonic())
                if self.garbage:  # a new server run each time: realign, /state is asked again
                    self.epoch = f"e{len(self.infos)}"
            body, media = self.proper(path, parse_qs(target.query))
            where, junk = GARBAGE[self.turn % len(GARBAGE)]
            if self.garbage and where == path:  # garbage where it is due, proper elsewhere
                body = junk
                self.turn += 1
            elif self.garbage and path == "/changes":
                await stream.aclose()  # a dropped poll: the next garbage is due on reconnect
                return
            head = (
                f"HTTP/1.1 {status.decode()}\r\ncontent-type: {media}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            ).encode()
            await stream.send(head + body)

    async def serve(self, tg: Any) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tls = anyio.streams.tls.TLSListener(listener, self.context, standard_compatible=False)
        tg.start_soon(tls.serve, self._connection)


@pytest.mark.anyio
async def test_a_mirror_survives_a_hostile_remote_and_heals(hsyco, until, caplog) -> None:
    import anyio.streams.tls

    caplog.set_level(logging.INFO)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    hsyco.cert.configure_cert(context)
    remote = HostileRemote(context)
    async with anyio.create_task_group() as tg:
        await remote.serve(tg)
        config = hsyco.mirror_config(remote.port, instance="remote", protocol="api")
        config["host"]["restart_delay"] = 0.05
        config["host"]["restart_max_delay"] = 0.4
        async with ioplex.Host.from_config(config) as top:
            io = top.ioservers["remote"]
            # every kind of garbage is answered at least once, and retried
            await until(lambda: remote.turn >= 2 * len(GARBAGE), timeout=30, what="garbage")
            assert "Traceback" not in caplog.text
            for bad in ("KeyError", "TypeError", "IndexError", "AttributeError", "RecursionError"):
                assert bad not in caplog.text, caplog.text
            assert "malformed answer" in caplog.text
            assert f"https://127.0.0.1:{remote.port}/api/v1/" in caplog.text
            # rate-limited: each kind of garbage is logged once, however often it comes
            retries = [r for r in caplog.records if "retry" in r.getMessage()]
            assert len(retries) <= len(GARBAGE) + 3, [r.getMessage() for r in retries]
            # backoff: the attempts are spaced out, up to restart_max_delay
            gaps = [b - a for a, b in zip(remote.infos, remote.infos[1:])]
            assert gaps and max(gaps) >= 0.2, gaps
            # the remote behaves again: the mirror heals by itself
            remote.garbage = False
            await until(lambda: io.state is State.ONLINE, timeout=15, what="online")
            assert top.points["remote.x.1"].value == 5
            assert top.points["remote.x.1"].quality is Quality.GOOD
            for name in ("remote.huge", "remote.surrogate"):  # refused values: bad, empty
                point = top.points[name]
                assert point.value is None and point.quality is Quality.BAD
            for point in top.points.match("remote.*"):
                check_value(point.name, point.value, point.type, max_string=65536)
            assert "remote value refused" in caplog.text
            assert "Traceback" not in caplog.text
        tg.cancel_scope.cancel()
