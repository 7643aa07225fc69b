"""Two separate OS processes: ``ioplex run`` serving a TOML config, this process replicating."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import ioplex
import pytest
from ioplex import Quality

pytestmark = pytest.mark.anyio


def leaf_toml(data_dir: Path, password: str, listen: str, light: int) -> str:
    return f"""
[host]
name = "leaf-process"
data_dir = {json.dumps(str(data_dir))}

[ioservers.dummy]
plugin = "dummy"

[ioservers.dummy.options]
points = {{ "light.1" = {light}, "temp" = 20.5 }}

[ioservers.sim]
plugin = "dummy"

[ioservers.sim.options]
points = {{ "counter" = 0 }}
rate = 200

[plugins.hsyco_remote.server]
listen = {json.dumps(listen)}
password = {{ env = "LEAF_PASSWORD" }}
control = true
"""


class LeafProcess:
    def __init__(self, tmp_path: Path, password: str) -> None:
        self.tmp_path = tmp_path
        self.password = password
        self.data_dir = tmp_path / "leaf-data"
        self.info_file = self.data_dir / "hsyco_remote" / "server.json"
        self.process: anyio.abc.Process | None = None
        self.stderr = b""

    async def start(self, listen: str, light: int) -> dict:
        config = self.tmp_path / "leaf.toml"
        config.write_text(leaf_toml(self.data_dir, self.password, listen, light))
        self.info_file.unlink(missing_ok=True)
        self.process = await anyio.open_process(
            [sys.executable, "-m", "ioplex", "run", str(config)],
            env={**_environ(), "LEAF_PASSWORD": self.password},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with anyio.fail_after(30):
            while not self.info_file.exists():
                if self.process.returncode is not None:
                    raise AssertionError(f"ioplex run exited: {await self._read_stderr()}")
                await anyio.sleep(0.05)
        return json.loads(self.info_file.read_text())

    async def _read_stderr(self) -> str:
        assert self.process is not None and self.process.stderr is not None
        with anyio.move_on_after(5):
            async for chunk in self.process.stderr:
                self.stderr += chunk
        return self.stderr.decode(errors="replace")

    async def stop(self) -> str:
        """SIGTERM, as a service manager would; returns what the process logged."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        log = await self._read_stderr()
        with anyio.fail_after(10):
            await self.process.wait()
        self.process = None
        return log

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}


async def test_leaf_in_another_process_restarted_mid_stream(kit, tmp_path, until):
    leaf = LeafProcess(tmp_path, kit.password)
    try:
        info = await leaf.start("127.0.0.1:0", light=0)
        config = kit.replicating(info, name="concentrator")
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("remote", timeout=20)
            assert top.points["remote.dummy.temp"].value == 20.5
            # the leaf's simulation streams changes; they arrive here
            counter = top.points["remote.sim.counter"]
            first = counter.value
            await until(lambda: counter.value != first, what="a simulated change")
            # a write here is carried out in the other process and comes back
            await top.write("remote.dummy.light.1", 7)
            await until(lambda: top.points["remote.dummy.light.1"].value == 7)

            log = await leaf.stop()  # mid-stream: the simulation is running
            assert "listening on https://127.0.0.1:" in log and info["fingerprint"] in log
            assert kit.password not in log
            await until(lambda: top.points["remote.connection"].value == "offline")
            assert top.points["remote.dummy.light.1"].quality is Quality.BAD

            again = await leaf.start(f"127.0.0.1:{info['port']}", light=3)
            assert again["fingerprint"] == info["fingerprint"]  # kept in the data directory
            await until(lambda: top.points["remote.connection"].value == "online", timeout=20)
            assert top.points["remote.dummy.light.1"].value == 3
            assert top.points["remote.dummy.light.1"].quality is Quality.GOOD
            await top.write("remote.dummy.light.1", 4)
            await until(lambda: top.points["remote.dummy.light.1"].value == 4)
            await leaf.stop()
    finally:
        leaf.kill()


async def test_the_examples_run_together(tmp_path, until):
    """examples/leaf.toml and examples/concentrator.toml, copied with their data directory
    moved into the test's: the leaf as `ioplex run` in its own process."""
    examples = Path(__file__).parents[1] / "examples"
    for name in ("leaf.toml", "concentrator.toml"):
        text = (examples / name).read_text().replace("../../../data/", "data/")
        (tmp_path / name).write_text(text.replace("8443", "0") if name == "leaf.toml" else text)
    environ = {**_environ(), "REMOTE_PASSWORD": "example-password"}
    leaf = await anyio.open_process(
        [sys.executable, "-m", "ioplex", "run", str(tmp_path / "leaf.toml")],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        info_file = tmp_path / "data" / "leaf" / "hsyco_remote" / "server.json"
        await until(info_file.exists, timeout=30, what="the leaf to listen")
        port = json.loads(info_file.read_text())["port"]
        config = (tmp_path / "concentrator.toml").read_text().replace("8443", str(port))
        (tmp_path / "concentrator.toml").write_text(config)
        host = ioplex.Host.from_config(
            tmp_path / "concentrator.toml", environ={"REMOTE_PASSWORD": "example-password"}
        )
        async with host:
            await host.wait_online("leaf", timeout=20)
            assert host.points["leaf.sensors.temp.living"].type is float
            assert isinstance(host.points["leaf.time.delta"].value, float)
            await host.write("leaf.lights.living", 1)
            await until(lambda: host.points["leaf.lights.living"].value == 1)
            assert host.ui["leaf.lights.banner"].value == "Welcome home"  # ui = true
            await host.ui.write("leaf.lights.page", "heating")
            await until(lambda: host.ui["leaf.lights.page"].value == "heating")
    finally:
        leaf.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            await leaf.wait()
