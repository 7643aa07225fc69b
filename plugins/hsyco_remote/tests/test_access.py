"""The serving side's gate: address allow-list, password, throttle per prefix with a global cap,
and session tokens (with a settable clock)."""

from __future__ import annotations

import pytest
from ioplex.serving import AllowList
from ioplex_hsyco_remote.access import (
    FREE_FAILURES,
    GLOBAL_RATE,
    MAX_LOCKOUT,
    SESSION_TTL,
    Gate,
    Verdict,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def allow(*entries: str) -> AllowList:
    return AllowList.parse(list(entries), "where")


def test_allow_list():
    gate = Gate("pw", allow("192.168.1.10", "10.0.0.0/8", "::1"))
    assert gate.address_allowed("192.168.1.10")
    assert gate.address_allowed("10.200.3.4")
    assert gate.address_allowed("::ffff:10.1.1.1")  # IPv4 seen through an IPv6 socket
    assert gate.address_allowed("::1")
    assert not gate.address_allowed("192.168.1.11")
    assert not gate.address_allowed("127.0.0.1")
    assert not gate.address_allowed(None)
    assert not gate.address_allowed("not an address")
    assert gate.check("127.0.0.1", "pw").verdict is Verdict.ADDRESS
    assert allow("10.0.0.1", "*").any
    assert Gate("pw", allow("*")).address_allowed("203.0.113.9")


def test_bad_allow_list_entries_name_where():
    with pytest.raises(ValueError, match=r"plugins.hsyco_remote.server.address\[1\]: 'nope'"):
        AllowList.parse(["10.0.0.1", "nope"], "plugins.hsyco_remote.server.address")


def test_passwords():
    gate = Gate("pä*ss%word", allow("*"))
    assert gate.check("10.0.0.1", "pä*ss%word").verdict is Verdict.OK
    assert gate.check("10.0.0.1", "p%C3%A4*ss%25word").verdict is Verdict.OK  # percent-encoded
    assert gate.check("10.0.0.1", "pa*ss%word").verdict is Verdict.PASSWORD
    assert gate.check("10.0.0.1", None).verdict is Verdict.PASSWORD
    assert gate.check("10.0.0.1", "").verdict is Verdict.PASSWORD
    # a password that looks percent-encoded is compared as typed too (HSYCO shows it so)
    assert Gate("pa%41ss", allow("*")).check("10.0.0.1", "pa%41ss").verdict is Verdict.OK


def test_throttle_grows_per_prefix_and_resets():
    clock = Clock()
    gate = Gate("pw", allow("*"), clock=clock)
    for _ in range(FREE_FAILURES):
        assert gate.check("10.0.0.1", "bad").verdict is Verdict.PASSWORD
    locked = gate.check("10.0.0.1", "pw")
    assert locked.verdict is Verdict.THROTTLED  # locked out: not even checked
    assert locked.retry_after == pytest.approx(1.0)
    assert gate.check("10.0.0.2", "pw").verdict is Verdict.OK  # other addresses are not affected
    clock.now += 1.0
    assert gate.check("10.0.0.1", "bad").verdict is Verdict.PASSWORD
    assert gate.check("10.0.0.1", "pw").retry_after == pytest.approx(2.0)  # doubles
    for _ in range(20):
        clock.now += MAX_LOCKOUT
        gate.check("10.0.0.1", "bad")
    assert gate.check("10.0.0.1", "pw").retry_after == pytest.approx(MAX_LOCKOUT)  # capped
    clock.now += MAX_LOCKOUT
    assert gate.check("10.0.0.1", "pw").verdict is Verdict.OK
    assert gate.check("10.0.0.1", "bad").verdict is Verdict.PASSWORD  # a success forgot them


def test_an_ipv6_network_is_one_prefix():
    gate = Gate("pw", allow("*"), clock=Clock())
    for i in range(FREE_FAILURES):
        gate.check(f"2001:db8:1:2::{i + 1}", "bad")  # five addresses of one /64
    assert gate.check("2001:db8:1:2::99", "pw").verdict is Verdict.THROTTLED
    assert gate.check("2001:db8:1:3::1", "pw").verdict is Verdict.OK


def test_a_global_cap_bounds_guesses_from_many_prefixes():
    clock = Clock()
    gate = Gate("pw", allow("*"), clock=clock)
    checked = 0
    for i in range(200):  # 200 addresses, each well within its own free failures
        for _ in range(3):
            if gate.check(f"10.1.{i // 250}.{i % 250}", "bad").verdict is Verdict.PASSWORD:
                checked += 1
    assert checked <= GLOBAL_RATE + 1  # the bucket, then nothing more in the same instant
    clock.now += 1.0
    assert gate.check("10.9.9.9", "pw").verdict is Verdict.OK  # the cap refills


def test_a_session_is_never_locked_out_by_others_failures():
    clock = Clock()
    gate = Gate("pw", allow("*"), clock=clock)
    login = gate.check("10.0.0.1", "pw")
    assert login.verdict is Verdict.OK and login.session
    for _ in range(FREE_FAILURES + 3):  # a neighbour behind the same NAT guesses
        gate.check("10.0.0.1", "bad")
    assert gate.check("10.0.0.1", "pw").verdict is Verdict.THROTTLED
    renewed = gate.check("10.0.0.1", None, login.session)
    assert renewed.verdict is Verdict.OK and renewed.session == login.session
    # renewed on use, forgotten after SESSION_TTL without use
    clock.now += SESSION_TTL * 0.9
    assert gate.check("10.0.0.1", None, login.session).verdict is Verdict.OK
    clock.now += SESSION_TTL * 0.9
    assert gate.check("10.0.0.1", None, login.session).verdict is Verdict.OK
    clock.now += SESSION_TTL + 1
    assert gate.check("10.0.0.1", None, login.session).verdict is Verdict.PASSWORD
    # a made-up token is no session, and a token never lets a foreign address in
    assert gate.check("10.0.0.2", None, "x" * 32).verdict is Verdict.PASSWORD
    fresh = gate.check("10.0.0.3", "pw").session
    assert (
        Gate("pw", allow("10.0.0.0/8")).check("192.0.2.1", None, fresh).verdict is Verdict.ADDRESS
    )
    # rioget clients get no session
    assert gate.check("10.0.0.4", "pw", new_session=False).session is None
