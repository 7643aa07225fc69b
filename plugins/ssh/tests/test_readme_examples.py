"""The README's example programs, run against the real sshd so the docs cannot rot."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[1] / "README.md"


def example(name: str) -> dict[str, Any]:
    """The namespace of the README's `<!-- example: name -->` block, executed (not as main)."""
    text = README.read_text()
    found = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, f"README.md has no example {name!r}"
    namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
    exec(compile(found.group(1), f"README.md example {name}", "exec"), namespace)  # noqa: S102
    return namespace


async def test_every_day_at(config, start, event):
    every_day_at = example("daily")["every_day_at"]
    settings = config()
    settings["host"]["clock"] = "virtual"
    async with start(settings) as host:
        now = dt.datetime.fromtimestamp(host.time())
        midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        host.clock.set(midnight.timestamp() - 0.3)  # 23:59:59.7 on the host's clock
        with host.subscribe("ssh.out", "ssh.exec") as events:
            async with anyio.create_task_group() as tg:
                tg.start_soon(every_day_at, host, 0, 0, "ssh.exec", "echo midnight")
                assert (await event(events, "ssh.out", timeout=3)).value == "midnight"
                assert (await event(events, "ssh.exec")).value == 0
                tg.cancel_scope.cancel()


async def test_backup(config, start, files, remote):
    backup = example("backup")["backup"]
    (files / "data_backup").mkdir()
    (files / "data_backup" / "hsyco.script").write_bytes(b"s" * 100)
    (files / "data_backup" / "db.log").write_bytes(b"l" * 50)
    target = remote.user.home / "nightly"
    target.mkdir()
    os.chown(target, remote.user.uid, -1)
    async with start(config()) as host:
        results = await backup(host, str(target))
        assert list(results.values()) == [150, 100]
        tree = sorted(p.relative_to(target) for p in target.rglob("*"))
        # the next night gives the same tree: the contents are copied into the target again
        assert list((await backup(host, str(target))).values()) == [150, 100]
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == tree
    assert sorted(map(str, tree)) == ["db.log", "hsyco.script"]
    assert (target / "db.log").read_bytes() == b"l" * 50
    assert (target / "hsyco.script").stat().st_mode & 0o777 == 0o600


async def test_console(config, start):
    console = example("console")["console"]
    async with start(config()) as host, anyio.create_task_group() as tg:
        tg.start_soon(console, host)
        await anyio.sleep(0.05)
        with host.ui.subscribe("exitcode.text") as shown:
            await host.ui.write("exec", "echo hello; echo oops >&2; exit 2")
            with anyio.fail_after(10):
                await shown.__anext__()
        assert host.ui["stdout.text"].value == "hello"
        assert host.ui["stderr.text"].value == "oops"
        assert host.ui["exitcode.text"].value == "2"
        tg.cancel_scope.cancel()


def test_the_commands_example_config_is_valid(data_dir):
    import tomllib

    import ioplex

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.DOTALL)
    rows = next(b for b in blocks if "[[ioservers.ssh.options.commands]]" in b)
    config = tomllib.loads(
        '[ioservers.ssh]\nplugin = "ssh"\naddress = "127.0.0.1"\nuser = "u"\n' + rows
    )
    host = ioplex.Host.from_config(
        {"host": {"data_dir": str(data_dir)}, **config}, environ={"IOPLEX_LOAD_PLUGINS": "ssh"}
    )
    ids = [row["id"] for row in host.config.ioservers["ssh"].options["commands"]]
    assert ids == ["load", "disk.free", "pump"]
