"""The serving side's gate: address allow-list, password, throttle (with a settable clock)."""

from __future__ import annotations

import pytest

from ioplex_hsyco_remote.access import (
    FREE_FAILURES,
    MAX_LOCKOUT,
    Gate,
    Verdict,
    parse_allowed,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_allow_list():
    gate = Gate("pw", parse_allowed(["192.168.1.10", "10.0.0.0/8", "::1"], "where"))
    assert gate.address_allowed("192.168.1.10")
    assert gate.address_allowed("10.200.3.4")
    assert gate.address_allowed("::ffff:10.1.1.1")  # IPv4 seen through an IPv6 socket
    assert gate.address_allowed("::1")
    assert not gate.address_allowed("192.168.1.11")
    assert not gate.address_allowed("127.0.0.1")
    assert not gate.address_allowed(None)
    assert not gate.address_allowed("not an address")
    assert gate.check("127.0.0.1", "pw") is Verdict.ADDRESS
    assert parse_allowed(["10.0.0.1", "*"], "where") is None
    assert Gate("pw", None).address_allowed("203.0.113.9")


def test_bad_allow_list_entries_name_where():
    with pytest.raises(ValueError, match=r"plugins.hsyco_remote.server.address\[1\]: 'nope'"):
        parse_allowed(["10.0.0.1", "nope"], "plugins.hsyco_remote.server.address")


def test_passwords():
    gate = Gate("pä*ss%word", None)
    assert gate.check("10.0.0.1", "pä*ss%word") is Verdict.OK
    assert gate.check("10.0.0.1", "p%C3%A4*ss%25word") is Verdict.OK  # percent-encoded
    assert gate.check("10.0.0.1", "pa*ss%word") is Verdict.PASSWORD
    assert gate.check("10.0.0.1", None) is Verdict.PASSWORD
    assert gate.check("10.0.0.1", "") is Verdict.PASSWORD


def test_throttle_grows_and_resets():
    clock = Clock()
    gate = Gate("pw", None, clock=clock)
    for _ in range(FREE_FAILURES):
        assert gate.check("10.0.0.1", "bad") is Verdict.PASSWORD
    assert gate.check("10.0.0.1", "pw") is Verdict.THROTTLED  # locked out: not even checked
    assert gate.check("10.0.0.2", "pw") is Verdict.OK  # other addresses are not affected
    assert gate.retry_after("10.0.0.1") == pytest.approx(1.0)
    clock.now += 1.0
    assert gate.check("10.0.0.1", "bad") is Verdict.PASSWORD
    assert gate.retry_after("10.0.0.1") == pytest.approx(2.0)  # doubles
    for _ in range(20):
        clock.now += MAX_LOCKOUT
        gate.check("10.0.0.1", "bad")
    assert gate.retry_after("10.0.0.1") == pytest.approx(MAX_LOCKOUT)  # capped
    clock.now += MAX_LOCKOUT
    assert gate.check("10.0.0.1", "pw") is Verdict.OK
    assert gate.retry_after("10.0.0.1") == 0  # a success forgets the failures
    assert gate.check("10.0.0.1", "bad") is Verdict.PASSWORD


def test_refusals_worth_a_warning():
    gate = Gate("pw", parse_allowed(["10.0.0.0/8"], "where"))
    assert gate.worth_logging("10.0.0.1", Verdict.PASSWORD)
    assert gate.worth_logging("10.0.0.1", Verdict.PASSWORD)  # each (throttling bounds them)
    assert gate.worth_logging("203.0.113.5", Verdict.ADDRESS)
    assert not gate.worth_logging("203.0.113.5", Verdict.ADDRESS)  # a scan: once per address
    assert not gate.worth_logging("10.0.0.1", Verdict.THROTTLED)
