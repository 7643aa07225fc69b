"""Mirroring a real HSYCO server through rioget alone, against a fake written from HSYCO's
documentation (tests/fake_hsyco.py): full state, deltas, long polls, restarts, refusals."""

from __future__ import annotations

import logging

import anyio
import ioplex
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ioplex import Quality, State
from ioplex_hsyco_remote.refusals import RemoteError
from ioplex_hsyco_remote.riogetclient import parse_answer, query

pytestmark = pytest.mark.anyio

POINTS = {
    "dummy.light.1": "0",
    "dummy.temp": "21.5",
    "dummy.door": "false",
    "dummy.scene": "a*b*c",
    "dummy.label": "ü € 漢字 🚀",
    "dummy.empty": "",
    "system.time": "1763740800123",
}


async def test_full_state_deltas_and_odd_values(hsyco, until, caplog):
    caplog.set_level(logging.INFO)
    async with anyio.create_task_group() as tg:
        fake = await hsyco.server(POINTS, long_poll=0.5).start(tg)
        config = hsyco.mirror_config(fake.port, protocol="rioget")
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("hsyco")
            for name, value in POINTS.items():
                point = top.points[f"hsyco.{name}"]
                assert (point.value, point.type, point.quality) == (value, str, Quality.GOOD)
                assert point.meta["protocol"] == "rioget"
            assert top.ioservers["hsyco"].detail.startswith("rioget")
            assert fake.stats["full"] == 1

            fake.set("dummy.scene", "x*y")
            fake.set("dummy.new.point", "Grüße*")  # appears with its first change
            await until(
                lambda: (
                    top.points.get("hsyco.dummy.new.point") is not None
                    and top.points["hsyco.dummy.scene"].value == "x*y"
                )
            )
            assert top.points["hsyco.dummy.new.point"].value == "Grüße*"
            # idle: the long poll answers without io, and nothing changes here
            idle = fake.stats["idle"]
            await until(lambda: fake.stats["idle"] >= idle + 2, what="idle long polls")
            assert top.points["hsyco.dummy.scene"].value == "x*y"
            assert fake.stats["full"] == 1  # deltas only, by echoing the timestamp

            with pytest.raises(ioplex.WriteError, match="write API.*is not public") as caught:
                await top.write("hsyco.dummy.light.1", "1")
            assert "hsyco.dummy.light.1" in str(caught.value)
            assert fake.values["dummy.light.1"] == "0"
        tg.cancel_scope.cancel()
    assert hsyco.password not in caplog.text  # the password is in rioget's URL: never logged


async def test_opt_in_conversion_per_pattern(hsyco, until, caplog):
    async with anyio.create_task_group() as tg:
        fake = await hsyco.server(POINTS, long_poll=0.5).start(tg)
        config = hsyco.mirror_config(
            fake.port,
            protocol="rioget",
            convert={
                "dummy.light.*": "int",
                "dummy.temp": "float",
                "dummy.door": "bool",
                "system.time": "number",
            },
        )
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("hsyco")
            assert top.points["hsyco.dummy.light.1"].value == 0
            assert top.points["hsyco.dummy.temp"].value == 21.5
            assert top.points["hsyco.dummy.door"].value is False
            assert top.points["hsyco.system.time"].value == 1763740800123
            assert top.points["hsyco.dummy.scene"].value == "a*b*c"  # no pattern: a string
            fake.set("dummy.light.1", "dimmed")  # does not convert: empty and bad, logged
            await until(lambda: top.points["hsyco.dummy.light.1"].quality is Quality.BAD)
            assert top.points["hsyco.dummy.light.1"].value is None
            assert "hsyco.dummy.light.1" not in caplog.text or "dimmed" in caplog.text
            fake.set("dummy.light.1", "75")
            await until(lambda: top.points["hsyco.dummy.light.1"].value == 75)
            assert top.points["hsyco.dummy.light.1"].quality is Quality.GOOD
        tg.cancel_scope.cancel()


async def test_auto_falls_back_to_rioget_and_says_so(hsyco, until, caplog):
    caplog.set_level(logging.INFO)
    async with anyio.create_task_group() as tg:
        fake = await hsyco.server(POINTS, long_poll=0.5).start(tg)
        async with ioplex.Host.from_config(hsyco.mirror_config(fake.port)) as top:
            await top.wait_online("hsyco")
            assert top.points["hsyco.dummy.scene"].value == "a*b*c"
            assert "rioget" in top.ioservers["hsyco"].detail
            assert fake.stats["not_found"] >= 1  # it asked /api/v1/info first
            assert "is not an ioplex host" in caplog.text
            assert "HSYCO's public rioget" in caplog.text
        tg.cancel_scope.cancel()


async def test_restart_and_a_wrong_password_phase(hsyco, until, caplog):
    """The fake restarts; then it runs with another password for a while (HSYCO drops such
    connections unanswered); once fixed, the mirror is back by itself with the new state."""
    caplog.set_level(logging.INFO)
    async with anyio.create_task_group() as tg:
        fake = await hsyco.server(POINTS, long_poll=0.5).start(tg)
        port = fake.port
        config = hsyco.mirror_config(port, protocol="rioget")
        async with ioplex.Host.from_config(config) as top:
            io = top.ioservers["hsyco"]
            await top.wait_online("hsyco")
            await fake.stop()
            await until(lambda: top.points["hsyco.connection"].value == "offline")
            assert top.points["hsyco.dummy.scene"].quality is Quality.BAD

            # a plain restart: realigned from timestamp 1, removed points forgotten
            points = {**POINTS, "dummy.scene": "after*restart"}
            del points["dummy.empty"]
            fake = await hsyco.server(points, port=port, long_poll=0.5).start(tg)
            await until(lambda: top.points["hsyco.dummy.scene"].value == "after*restart")
            assert top.points["hsyco.dummy.scene"].quality is Quality.GOOD
            assert "hsyco.dummy.empty" not in top.points

            # restarted with a wrong password: dropped without reply, diagnosed, retried
            await fake.stop()
            fake = await hsyco.server(points, port=port, long_poll=0.5, password="changed").start(
                tg
            )
            await until(
                lambda: io.state is State.RETRYING and "refused" in (io.detail or ""),
                what="the refusal in the instance state",
            )
            assert "without a reply" in io.detail
            assert "RemoteServerPassword" in io.detail and "RemoteServerAddress" in io.detail
            assert top.points["hsyco.dummy.scene"].quality is Quality.BAD
            await until(lambda: fake.stats["dropped"] >= 3, what="slow retries")
            assert caplog.text.count("closed the connection without a reply") == 1  # once

            # fixed: back by itself
            await fake.stop()
            points["dummy.scene"] = "fixed"
            fake = await hsyco.server(points, port=port, long_poll=0.5).start(tg)
            await until(lambda: top.points["hsyco.dummy.scene"].value == "fixed", timeout=10)
            assert io.state is State.ONLINE
            assert "accepted again" in caplog.text
            fake.set("dummy.light.1", "1")
            await until(lambda: top.points["hsyco.dummy.light.1"].value == "1")
        tg.cancel_scope.cancel()


async def test_address_not_allowed_is_diagnosed(hsyco, until):
    async with anyio.create_task_group() as tg:
        fake = await hsyco.server(POINTS, allowed=False).start(tg)
        async with ioplex.Host.from_config(hsyco.mirror_config(fake.port)) as top:
            io = top.ioservers["hsyco"]
            await until(lambda: io.state is State.RETRYING and "refused" in (io.detail or ""))
            assert "RemoteServerAddress" in io.detail
            fake.allowed = True
            await top.wait_online("hsyco")
        tg.cancel_scope.cancel()


async def test_a_throttle_keeps_the_quality(hsyco, until):
    async with anyio.create_task_group() as tg:
        fake = await hsyco.server(POINTS, long_poll=0.3).start(tg)
        config = hsyco.mirror_config(fake.port, protocol="rioget", throttlehold=30)
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("hsyco")
            seen: list[tuple[str, Quality]] = []
            top.points.listen(lambda e: seen.append((e.name, e.quality)), "hsyco.*")
            fake.throttle(3, retry_after=1)
            await until(lambda: fake.stats["throttled"] == 3, timeout=10)
            fake.set("dummy.temp", "22")
            await until(lambda: top.points["hsyco.dummy.temp"].value == "22", timeout=10)
            assert all(q is Quality.GOOD for _, q in seen), seen  # never bad meanwhile
            assert top.points["hsyco.connection"].value == "online"
            assert top.ioservers["hsyco"].driver.stats["throttled"] == 3
        tg.cancel_scope.cancel()


async def test_a_throttle_longer_than_the_hold_turns_points_bad(hsyco, until):
    async with anyio.create_task_group() as tg:
        fake = await hsyco.server(POINTS, long_poll=0.3).start(tg)
        config = hsyco.mirror_config(fake.port, protocol="rioget", throttlehold=1)
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("hsyco")
            fake.throttle(1000, retry_after=1)
            await until(lambda: top.points["hsyco.dummy.temp"].quality is Quality.BAD, timeout=10)
            fake.throttle(0)
            await top.wait_online("hsyco")
            assert top.points["hsyco.dummy.temp"].quality is Quality.GOOD
        tg.cancel_scope.cancel()


def test_rioget_needs_no_private_api_options(hsyco):
    config = hsyco.mirror_config(
        8443, protocol="rioget", ui=True, clocksync=True, dataloggers="energy"
    )
    with pytest.raises(ioplex.ConfigError) as caught:
        ioplex.Host.from_config(config)
    text = str(caught.value)
    for option in ("ui", "clocksync", "dataloggers"):
        assert f"ioservers.hsyco.options.{option}: needs HSYCO's private API" in text
    config = hsyco.mirror_config(8443, protocol="rioget", convert={"a.[x": "int"})
    with pytest.raises(ioplex.ConfigError, match=r"options.convert: invalid pattern"):
        ioplex.Host.from_config(config)
    config = hsyco.mirror_config(8443, protocol="rioget", convert={"a.*": "decimal"})
    with pytest.raises(
        ioplex.ConfigError, match=r"options.convert.\"a.\*\": .decimal. is not one of"
    ):
        ioplex.Host.from_config(config)


def test_the_password_field_is_sent_raw():
    assert query(1, "hsyco%41pw*x") == b"1*1*hsyco%41pw*x"
    assert query(1403628740123000, "a b#ü") == b"1*1403628740123000*a%20b%23%C3%BC"


def test_documented_answer_shapes():
    answer = parse_answer(
        b'{"hsycostate":{"timestamp":1403628740123000,"system":"system","topotime":1403171030000}}'
    )
    assert (answer.timestamp, answer.io, answer.system) == (1403628740123000, {}, "system")
    answer = parse_answer(
        '{"hsycostate":{"timestamp":2,"topotime":1,"io":{"a.b":"x*y","c.d":"ü"}}}'.encode()
    )
    assert answer.io == {"a.b": "x*y", "c.d": "ü"} and answer.system is None


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        JSONISH.map(lambda v: __import__("json").dumps(v).encode()),
        st.dictionaries(
            st.sampled_from(["timestamp", "io", "system", "topotime", "x"]), JSONISH
        ).map(lambda d: __import__("json").dumps({"hsycostate": d}).encode()),
    )
)
def test_hostile_answers_raise_only_remote_error(body):
    try:
        answer = parse_answer(body)
    except RemoteError:
        return
    assert answer.timestamp > 0
    assert all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in answer.io.items()
    )
