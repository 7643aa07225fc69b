"""The server toolkit (ioplex.serving): what every server plugin relies on."""

from __future__ import annotations

import errno
import json
import logging
import math

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex.serving import (
    Admission,
    AllowList,
    AuthThrottle,
    OutputBudgetExceeded,
    RateLimitedLog,
    RemoteWrites,
    accept_sockets,
    client_prefix,
    jsontext,
    parse_listen,
    serve_tcp,
)

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9598") == ("127.0.0.1", 9598)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen(" localhost:80 ") == ("localhost", 80)
    for bad in ("9598", "host:", ":80", "1.2.3.4:70000", "::1:80", "[nope]:80", "h:8o"):
        with pytest.raises(ValueError, match="host:port|brackets|IPv6"):
            parse_listen(bad)


def test_allow_lists_and_prefixes() -> None:
    allow = AllowList.parse(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"], "x.allow")
    assert allow.allows("10.1.2.3") and allow.allows("::ffff:127.0.0.1")
    assert allow.allows("2001:db8::5%eth0") and not allow.allows("192.0.2.1")
    assert not allow.allows("not an address") and not allow.allows(None)
    assert AllowList.parse("*", "x").any and AllowList.parse([], "x").any
    with pytest.raises(ValueError, match=r"x.allow\[1\]: 'bogus' is not an IP address"):
        AllowList.parse(["127.0.0.1", "bogus"], "x.allow")
    assert client_prefix("2001:db8:1:2:3:4:5:6") == client_prefix("2001:db8:1:2:ffff::1")
    assert client_prefix("2001:db8:1:2::1") != client_prefix("2001:db8:1:3::1")
    assert client_prefix("::ffff:192.0.2.1") == "192.0.2.1"


def test_throttle_locks_a_prefix_out_and_forgets_on_success(caplog) -> None:
    clock = Clock()
    throttle = AuthThrottle(
        free_failures=3, base_delay=2, max_delay=10, global_rate=1000, clock=clock
    )
    for _ in range(2):
        assert throttle.failed("2001:db8::1") == 0
    assert throttle.failed("2001:db8::2") == 2  # same /64: the third failure locks it
    assert throttle.locked_for("2001:db8::99") == 2
    assert throttle.locked_for("2001:db8:0:1::1") == 0  # another /64 is not affected
    assert throttle.failed("2001:db8::1") == 4  # doubling...
    for _ in range(5):
        last = throttle.failed("2001:db8::1")
    assert last == 10  # ...up to the cap
    clock.now += 10
    assert throttle.locked_for("2001:db8::1") == 0
    throttle.succeeded("2001:db8::1")
    assert throttle.failures_of("2001:db8::1") == 0


def test_throttle_global_cap_bounds_many_prefixes() -> None:
    clock = Clock()
    throttle = AuthThrottle(free_failures=5, global_rate=10, clock=clock)
    checked = 0
    for i in range(200):  # 200 addresses x 5 guesses, all at one instant
        for _ in range(5):
            ip = f"10.0.{i // 250}.{i % 250}"
            if throttle.locked_for(ip) == 0:
                checked += 1
                throttle.failed(ip)
    assert checked <= 11
    clock.now += 1.0
    assert throttle.locked_for("192.0.2.1") == 0  # the cap refills


def test_throttle_logs_a_summary_not_a_line_per_guess(caplog) -> None:
    throttle = AuthThrottle(free_failures=1000, global_rate=1e6)
    with caplog.at_level(logging.WARNING):
        for i in range(500):
            throttle.failed(f"10.0.0.{i % 200}")
    assert len(caplog.records) == 1


async def test_admission_evicts_the_oldest_unauthenticated_of_a_prefix() -> None:
    admission = Admission(max_connections=10, max_unauthenticated=3, login_deadline=60)
    first = [admission.admit("192.0.2.1") for _ in range(3)]
    good = admission.admit("192.0.2.1")  # a fourth: the oldest is evicted, not the newcomer
    assert good is not None and first[0].evicted and first[0].scope.cancel_called
    good.authenticated()
    flood = [admission.admit("192.0.2.1") for _ in range(20)]
    assert not good.evicted and all(t is not None for t in flood)
    assert admission.unauthenticated == 3
    other = admission.admit("198.51.100.7")
    assert other is not None and not other.evicted


async def test_admission_refuses_only_when_logged_in_sessions_hold_every_slot() -> None:
    admission = Admission(max_connections=2, max_unauthenticated=5, login_deadline=60)
    a, b = admission.admit("192.0.2.1"), admission.admit("192.0.2.2")
    assert a is not None and b is not None
    a.authenticated()
    c = admission.admit("192.0.2.3")
    assert c is not None and b.evicted
    c.authenticated()
    assert admission.admit("192.0.2.4") is None and admission.refused == 1
    with a:
        pass
    assert admission.admit("192.0.2.4") is not None


async def test_login_deadline_is_absolute_and_output_budget_bounds_prelogin() -> None:
    admission = Admission(login_deadline=0.2, output_budget=100)
    ticket = admission.admit("127.0.0.1")
    assert ticket is not None
    with ticket, ticket.scope:
        for _ in range(100):  # activity does not move the deadline
            await anyio.sleep(0.01)
    assert ticket.timed_out
    ticket = admission.admit("127.0.0.1")
    ticket.budget.spend(60)
    with pytest.raises(OutputBudgetExceeded):
        ticket.budget.spend(60)
    ticket.authenticated()
    ticket.budget.spend(10**9)  # no budget once logged in


class _FlakyListener:
    """accept() fails with EMFILE a number of times, then hands out one stream."""

    def __init__(self, failures: int, stream) -> None:
        self.failures = failures
        self.stream = stream
        self.calls = 0

    async def accept(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(errno.EMFILE, "Too many open files")
        if self.stream is None:
            await anyio.sleep_forever()
        stream, self.stream = self.stream, None
        return stream


async def test_accept_loop_waits_out_fd_exhaustion(caplog) -> None:
    handled = anyio.Event()

    class Stream:
        async def aclose(self) -> None:
            pass

    async def handler(stream) -> None:
        handled.set()

    listener = _FlakyListener(8, Stream())
    with caplog.at_level(logging.WARNING):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: serve_tcp(listener, handler, log=logging.getLogger("t")))
            with anyio.fail_after(10):
                await handled.wait()
            tg.cancel_scope.cancel()
    assert listener.calls > 8
    assert len([r for r in caplog.records if "cannot accept" in r.getMessage()]) == 1


async def test_accept_loop_survives_a_failing_handler(caplog) -> None:
    class Stream:
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    async def handler(stream) -> None:
        raise RuntimeError("bug")

    stream = Stream()
    with caplog.at_level(logging.ERROR):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: serve_tcp(_FlakyListener(0, stream), handler, log=logging.getLogger("t"))
            )
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
    assert stream.closed and "a connection failed" in caplog.text


def test_rate_limited_log(caplog) -> None:
    clock = Clock()
    ratelog = RateLimitedLog(logging.getLogger("t"), interval=60, clock=clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            ratelog.warning("k", "refused %s", "x")
        clock.now += 61
        ratelog.warning("k", "refused %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "refused x",
        "refused y (and 99 more like it in the last 61 s)",
    ]


def test_remote_writes_and_sensitive_points() -> None:
    everything = RemoteWrites(True)
    assert everything.allows("dummy.x", False) and not everything.allows("ssh.exec", True)
    star = RemoteWrites(["*"])
    assert star.allows("a.b", False) and not star.allows("ssh.exec", True)
    named = RemoteWrites(["ssh.exec", "ssh.exec.*", "ss?.put", "dummy.*"])
    assert named.allows("ssh.exec", True) and named.allows("ssh.exec.5", True)
    assert not named.allows("ssh.put", True)  # a wildcard in the instance part
    assert named.allows("dummy.light", False) and not named.allows("other.x", False)
    assert not RemoteWrites(False).enabled
    with pytest.raises(ValueError, match=r"control\[0\]"):
        RemoteWrites(["a b"])


def test_json_out_and_in() -> None:
    text = jsontext.dumps({"v": [math.nan, math.inf, -math.inf, 1.5]})
    assert json.loads(text) == {"v": ["NaN", "Infinity", "-Infinity", 1.5]}
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="nested deeper"):
        jsontext.loads(deep)
    with pytest.raises(ValueError, match="nested deeper than 3"):
        jsontext.loads('{"a": {"b": {"c": {}}}}', max_depth=3)
    with pytest.raises(ValueError, match="NaN is not JSON"):
        jsontext.loads('{"v": NaN}')
    with pytest.raises(ValueError, match="not UTF-8"):
        jsontext.loads(b'"\xff"')
    assert jsontext.loads(b'{"a": [1, 2]}') == {"a": [1, 2]}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        st.recursive(
            st.integers() | st.text(max_size=5),
            lambda c: st.lists(c) | st.dictionaries(st.text(max_size=3), c),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_fuzz_json_bodies(data) -> None:
    try:
        jsontext.loads(data)
    except ValueError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_listen_and_allow(text: str) -> None:
    try:
        parse_listen(text)
    except ValueError:
        pass
    try:
        AllowList.parse([text], "x").allows(text)
    except ValueError:
        pass


async def test_callback_driven_tickets_close_on_eviction_and_expiry() -> None:
    admission = Admission(max_unauthenticated=1, login_deadline=60)
    closed: list[str] = []
    first = admission.admit("192.0.2.1", close=lambda: closed.append("first"))
    second = admission.admit("192.0.2.1", close=lambda: closed.append("second"))
    assert first.evicted and closed == ["first"] and not second.evicted
    second.expire()
    assert second.timed_out and closed == ["first", "second"] and admission.timed_out == 1
    third = admission.admit("192.0.2.1", close=lambda: closed.append("third"))
    third.authenticated()
    third.expire()  # too late: it logged in
    assert closed == ["first", "second"] and not third.timed_out


async def test_accept_sockets_hands_over_raw_sockets() -> None:
    import socket

    got = anyio.Event()
    seen: list[bytes] = []

    async def handle(conn: socket.socket, address) -> None:
        with conn:
            await anyio.wait_readable(conn)
            seen.append(conn.recv(100))
            got.set()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: accept_sockets(sock, handle, log=logging.getLogger("t")))
            async with await anyio.connect_tcp(*sock.getsockname()) as client:
                await client.send(b"hello")
                with anyio.fail_after(5):
                    await got.wait()
            tg.cancel_scope.cancel()
    assert seen == [b"hello"]


def test_write_statuses() -> None:
    from ioplex import PointTypeError, ReadOnlyPointError, UnknownPointError, WriteError
    from ioplex.serving import write_status

    assert write_status(UnknownPointError("x")) == (404, "unknown_point")
    assert write_status(ReadOnlyPointError("x")) == (409, "read_only")
    assert write_status(PointTypeError("x")) == (422, "wrong_type")
    assert write_status(TimeoutError()) == (504, "timeout")
    assert write_status(WriteError("device said no")) == (502, "write_failed")
    assert write_status(ConnectionResetError()) == (502, "write_failed")


def test_head_meter_bounds_heads_however_they_arrive() -> None:
    from ioplex.serving import HeadMeter

    meter = HeadMeter(100)
    assert not meter.too_long(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # a whole small head
    assert meter.too_long(b"GET /" + b"a" * 200)  # one big read
    meter.reset()
    for _ in range(9):
        assert not meter.too_long(b"X-A: " + b"b" * 5)  # in pieces, 90 bytes so far
    assert meter.too_long(b"c" * 20)
    meter.reset()
    assert not meter.too_long(b"GET / HTTP/1.1\r\n\r")  # the blank line split across reads
    assert not meter.too_long(b"\n" + b"next request body")
