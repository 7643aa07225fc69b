"""Two and three hosts in one process, replicating over real HTTPS on loopback."""

from __future__ import annotations

import ioplex
import pytest
from ioplex import Quality

pytestmark = pytest.mark.anyio

ODD_VALUES = [
    "a*b*c",
    "quotes \" and ' and \\ backslash",
    "line one\nline two\r\nthree\ttab",
    "unicode: ü € 漢字 🚀 \u200b \U0010fffd \ufeff",
    "nul \x00 and bell \x07 and del \x7f",
    "",
    "x" * 65_536,  # the host's default max_string, exactly
]


async def test_points_are_mirrored_with_type_writability_and_quality(kit, info_of, until):
    points = {"light.1": 0, "temp": 21.5, "door": False, "status": "ok*fine"}
    async with ioplex.Host.from_config(kit.serving(points=points, control=True)) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            for id, value in points.items():
                point = top.points[f"remote.dummy.{id}"]
                assert point.value == value and type(point.value) is type(value)
                assert point.type is type(value)
                assert point.writable is True
                assert point.quality is Quality.GOOD
            # the remote's own connection point is a point like any other
            assert top.points["remote.dummy.connection"].value == "online"
            assert top.points["remote.dummy.connection"].writable is False
            assert top.points["remote.connection"].value == "online"

            await leaf.write("dummy.temp", 19.25)
            await until(lambda: top.points["remote.dummy.temp"].value == 19.25)

            # remote quality is mirrored: the leaf's dummy going offline shows as bad here
            leaf.ioservers["dummy"].set_offline()
            await until(lambda: top.points["remote.dummy.temp"].quality is Quality.BAD)
            leaf.ioservers["dummy"].set_online()  # carried-over values come back stale
            await until(lambda: top.points["remote.dummy.temp"].quality is Quality.STALE)
            await leaf.write("dummy.temp", 20.0)  # confirmed: good again, here too
            await until(lambda: top.points["remote.dummy.temp"].quality is Quality.GOOD)


async def test_writes_go_to_the_remote_and_odd_values_round_trip(kit, info_of, until):
    async with ioplex.Host.from_config(
        kit.serving(points={"text": "", "n": 0, "f": 0.5}, control=True)
    ) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            for value in ODD_VALUES:
                await top.write("remote.dummy.text", value)
                assert leaf.points["dummy.text"].value == value
                await until(lambda value=value: top.points["remote.dummy.text"].value == value)
            # and in the other direction, changed on the remote
            for value in reversed(ODD_VALUES):
                await leaf.write("dummy.text", value)
                await until(lambda value=value: top.points["remote.dummy.text"].value == value)
            await top.write("remote.dummy.n", 2**53 + 1)
            await top.write("remote.dummy.f", 3)  # an int for a float point arrives as float
            await until(lambda: top.points["remote.dummy.f"].value == 3.0)
            assert leaf.points["dummy.n"].value == 2**53 + 1
            assert type(leaf.points["dummy.f"].value) is float
            await top.write("remote.dummy.f", None)
            await until(lambda: top.points["remote.dummy.f"].value is None)
            # what the value contract refuses is refused here, before anything is sent
            with pytest.raises(ioplex.PointTypeError):
                await top.write("remote.dummy.text", "lone surrogate \ud800")
            with pytest.raises(ioplex.PointTypeError):
                await top.write("remote.dummy.n", 2**63)
            with pytest.raises(ioplex.PointTypeError):
                await top.write("remote.dummy.text", "x" * 65_537)
            assert leaf.points["dummy.text"].value == ODD_VALUES[0]


async def test_a_refused_write_raises_and_changes_nothing(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points={"light.1": 7})) as leaf:  # control off
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            with pytest.raises(ioplex.WriteError, match="control.*false") as caught:
                await top.write("remote.dummy.light.1", 1)
            assert "remote.dummy.light.1" in str(caught.value)
            assert leaf.points["dummy.light.1"].value == 7
            assert top.points["remote.dummy.light.1"].value == 7


async def test_remote_driver_refusal_reaches_the_writer(kit, info_of):
    config = kit.serving(control=True, system=True)
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            # system.time is read-only on the remote (allow_set_clock false): read-only here too
            assert top.points["remote.system.time"].writable is False
            with pytest.raises(ioplex.ReadOnlyPointError):
                await top.write("remote.system.time", 0)


async def test_ui_variables_are_mirrored_when_asked(kit, info_of, until):
    async with ioplex.Host.from_config(kit.serving(control=True)) as leaf:
        leaf.ui.declare("status.text", "hello*world", writable=True)
        leaf.ui.declare("banner", "single segment", writable=False)
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info, ui=True)) as top:
            await top.wait_online("remote")
            assert top.ui["remote.status.text"].value == "hello*world"
            assert top.ui["remote.banner"].value == "single segment"
            assert "remote.dummy.light.1" in top.points
            await top.ui.write("remote.status.text", "from the top")
            assert leaf.ui["status.text"].value == "from the top"
            with pytest.raises(ioplex.ReadOnlyPointError):
                await top.ui.write("remote.banner", "no")
            leaf.ui.update(leaf.ui["banner"], "changed")
            await until(lambda: top.ui["remote.banner"].value == "changed")
        async with ioplex.Host.from_config(kit.replicating(info, name="other", io=False)) as other:
            await other.wait_online("remote")
            assert "remote.dummy.light.1" not in other.points
            assert "remote.status.text" not in other.ui


async def test_ui_variables_declared_in_toml_are_mirrored(kit, info_of, until):
    """The dummy I/O server's `ui` option declares UI variables from the configuration."""
    config = kit.serving(control=True)
    config["ioservers"]["panel"] = {
        "plugin": "dummy",
        "options": {"ui": {"scene": "evening", "level": 3}},
    }
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info, ui=True)) as top:
            await top.wait_online("remote")
            assert top.ui["remote.panel.scene"].value == "evening"
            assert top.ui["remote.panel.level"].value == 3
            await top.ui.write("remote.panel.scene", "night")
            assert leaf.ui["panel.scene"].value == "night"


@pytest.mark.parametrize("startupevents", [False, True])
async def test_startup_events(kit, info_of, until, startupevents):
    async with ioplex.Host.from_config(kit.serving(points={"a": 1, "b": "x"}, system=True)) as leaf:
        leaf.ui.declare("note", "n")
        info = await info_of(leaf)
        top = ioplex.Host.from_config(kit.replicating(info, startupevents=startupevents, ui=True))
        seen: list[str] = []
        async with top:
            top.points.listen(lambda e: seen.append(e.name), "remote.*")
            top.ui.listen(lambda e: seen.append(e.name), "*")
            await top.wait_online("remote")
            alignment_events = set(seen) - {"remote.connection"}  # the instance's own status
            if startupevents:
                assert {
                    "remote.dummy.a",
                    "remote.dummy.b",
                    "remote.dummy.connection",
                    "remote.note",
                    "remote.time.delta",
                } <= alignment_events
            else:
                assert alignment_events == set()
            await leaf.write("dummy.a", 2)  # after the alignment, changes are events either way
            await until(lambda: "remote.dummy.a" in seen)


async def test_discovery_follows_the_remote(kit, info_of, until):
    async with ioplex.Host.from_config(kit.serving(points={"a": 1, "b": 2})) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            await top.wait_online("remote")
            dummy = leaf.ioservers["dummy"]
            # a point declared quietly is found by discovery; a removed one disappears
            dummy.declare("quiet.new", 5, quiet=True)
            dummy.undeclare("b")
            found = await top.discover("remote")
            assert "dummy.quiet.new" in found and "dummy.b" not in found
            assert top.points["remote.dummy.quiet.new"].value == 5
            assert "remote.dummy.b" not in top.points
            # a point declared with an event is picked up from the change stream by itself
            dummy.declare("loud.new", "hi", writable=True)
            await until(lambda: "remote.dummy.loud.new" in top.points)
            assert top.points["remote.dummy.loud.new"].writable is True
            # a removal changes the remote's point count: the long poll answers with it at
            # once and a rediscovery follows (at most one a second), with no other change
            dummy.undeclare("a")
            await until(lambda: "remote.dummy.a" not in top.points, what="rediscovery")
            dummy.declare("quiet.again", 6, quiet=True)
            await until(lambda: "remote.dummy.quiet.again" in top.points, what="rediscovery")


async def test_without_discovery_points_are_kept(kit, info_of, until):
    async with ioplex.Host.from_config(kit.serving(points={"a": 1, "b": 2})) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info, discovery=False)) as top:
            await top.wait_online("remote")
            assert await top.discover("remote") is None
            leaf.ioservers["dummy"].undeclare("b")
            await leaf.write("dummy.a", 3)
            await until(lambda: top.points["remote.dummy.a"].value == 3)
            assert "remote.dummy.b" in top.points


async def test_filters_limit_what_is_mirrored(kit, info_of):
    config = kit.serving(
        points={"light.1": 1, "light.2": 2, "secret.code": 1234},
        io_filter=["dummy.light.*"],
        ui_filter=["public.*"],
    )
    async with ioplex.Host.from_config(config) as leaf:
        leaf.ui.declare("public.note", "visible")
        leaf.ui.declare("private.note", "hidden")
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info, ui=True)) as top:
            await top.wait_online("remote")
            mirrored = sorted(n for n in top.points if n != "remote.connection")
            assert mirrored == ["remote.dummy.light.1", "remote.dummy.light.2"]
            assert sorted(top.ui) == ["remote.public.note"]


async def test_three_level_chain(kit, info_of, until):
    """leaf → concentrator → top: writes travel down, changes travel up."""
    async with ioplex.Host.from_config(kit.serving(points={"light.1": 0}, control=True)) as leaf:
        leaf_info = await info_of(leaf)
        concentrator_config = kit.replicating(leaf_info, name="conc", instance="leaf")
        concentrator_config["plugins"] = {
            "hsyco_remote": {
                "server": {"listen": "127.0.0.1:0", "password": kit.password, "control": True}
            }
        }
        async with ioplex.Host.from_config(concentrator_config) as conc:
            conc_info = await info_of(conc)
            async with ioplex.Host.from_config(kit.replicating(conc_info, instance="conc")) as top:
                await top.wait_online("conc")
                await until(lambda: "conc.leaf.dummy.light.1" in top.points)
                await leaf.write("dummy.light.1", 1)
                await until(lambda: top.points["conc.leaf.dummy.light.1"].value == 1)
                await top.write("conc.leaf.dummy.light.1", 2)
                assert leaf.points["dummy.light.1"].value == 2
                await until(lambda: top.points["conc.leaf.dummy.light.1"].value == 2)
                # the leaf refusing (read-only there) reaches the top's writer
                leaf.ioservers["dummy"].point("light.1").writable = False
                with pytest.raises(ioplex.WriteError, match="read-only"):
                    await conc.write("leaf.dummy.light.1", 3)  # conc still thinks writable
                # the leaf going away makes its points bad two levels up
                leaf.ioservers["dummy"].set_offline()
                await until(lambda: top.points["conc.leaf.dummy.light.1"].quality is Quality.BAD)
