"""docs/writing-a-plugin.md, followed as an outside author would.

Its files (each code block preceded by ``<!-- file: PATH -->``) are extracted into an empty
directory outside the repository and installed in a fresh virtual environment together with
the kernel from this checkout; the plugin's own tests run there, and a host runs the tutorial's
site.toml against the tutorial's simulator: values arrive, a write reaches the device and is
read back, a killed device is reconnected.

The tutorial says ``pip install -e /path/to/ioplex`` and ``pip install -e '.[test]'``; the test
installs the same two projects in one pip call, offline and without ``-e`` (hatchling's
editable builds need the ``editables`` package, which an offline build cannot fetch). The new
environment borrows the running environment's site-packages through a ``.pth`` line for the
kernel's dependencies (anyio, pluggy, ...) without touching that environment. A ``.pth`` line
only adds a directory to the path, so the editable installs of this checkout's plugins found
there cannot import; ``IOPLEX_LOAD_PLUGINS=thermostat`` keeps them out of the reports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "writing-a-plugin.md"
FILE = re.compile(r"^<!-- file: (\S+) -->\n```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PACKAGE = "ioplex-thermostat"
UNIT = r"(?: \S+)?"
"""`--watch` may print a point's unit (its ``meta["unit"]``) after the value."""
EXPECTED = {
    f"{PACKAGE}/pyproject.toml",
    f"{PACKAGE}/README.md",
    f"{PACKAGE}/ioplex_thermostat/__init__.py",
    f"{PACKAGE}/ioplex_thermostat/schema.json",
    f"{PACKAGE}/ioplex_thermostat/simulator.py",
    f"{PACKAGE}/tests/conftest.py",
    f"{PACKAGE}/tests/test_thermostat.py",
    "site.toml",
    "set_setpoint.py",
}


def tutorial_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for path, text in FILE.findall(PAGE.read_text(encoding="utf-8")):
        assert path not in files, f"{PAGE.name} gives {path} twice"
        files[path] = text
    return files


def extract(into: Path) -> dict[str, str]:
    files = tutorial_files()
    for path, text in files.items():
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return files


def test_the_tutorial_gives_every_file_of_its_layout(tmp_path: Path) -> None:
    files = extract(tmp_path)
    assert set(files) == EXPECTED
    page = PAGE.read_text(encoding="utf-8")
    for path in files:  # the layout shown in §1 names each file of the package
        if path.startswith(PACKAGE):
            assert Path(path).name in page.split("## 2.")[0], path
    for path in (p for p in files if p.endswith(".py")):
        compile(files[path], path, "exec")
    ruff = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--line-length",
            "100",
            ".",
            "../set_setpoint.py",
        ],
        cwd=tmp_path / PACKAGE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


class Running:
    """A subprocess whose output (stdout and stderr together) is collected line by line."""

    def __init__(self, args: list[str], **kw: object) -> None:
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
        )
        self.lines: list[str] = []
        self.seen = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """The first line from here on matching `pattern`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            while self.seen < len(self.lines):
                line = self.lines[self.seen]
                self.seen += 1
                if found := re.search(pattern, line):
                    return found
            if (
                time.monotonic() > deadline
                or self.proc.poll() is not None
                and self.seen == len(self.lines)
                and not self._reader.is_alive()
            ):
                raise AssertionError(f"no line matching {pattern!r} in:\n" + self.output)
            time.sleep(0.05)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
            raise AssertionError(
                f"{self.proc.args} did not stop on {sig}:\n{self.output}"
            ) from None
        finally:
            self._reader.join(timeout)


def make_venv(path: Path) -> Path:
    """A fresh virtual environment that sees the running one's packages (not its .pth files)."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120
    )
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "_running_env.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kw)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_the_tutorial_runs_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "work"
    assert ROOT not in work.resolve().parents
    extract(work)
    python = make_venv(tmp_path / "venv")
    bindir = python.parent
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("PYTEST")
    }
    env |= {
        "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "IOPLEX_LOAD_PLUGINS": "thermostat",
        "THERMOSTAT_PIN": "1234",
    }

    # §0 and §6: the kernel from this checkout, then the plugin with its test extra.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-index",
            "--no-build-isolation",
            str(ROOT),
            f"{work / PACKAGE}[test]",
        ],
        env=env,
        timeout=300,
    )
    plugin_dir = work / PACKAGE
    tests = run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=plugin_dir,
        env=env,
        timeout=300,
    )
    assert "5 passed" in tests.stdout, tests.stdout
    plugins = run([str(bindir / "ioplex"), "plugins"], env=env, timeout=60)
    assert "thermostat 0.1.0: types thermostat" in plugins.stdout
    # §7: the README the tutorial shows is what the tool generates.
    readme = (plugin_dir / "README.md").read_text()
    run(
        [str(bindir / "ioplex"), "schema", "thermostat", "--update", "README.md"],
        cwd=plugin_dir,
        env=env,
        timeout=60,
    )
    assert (plugin_dir / "README.md").read_text() == readme

    # §8: the simulator, the host, a write. The tutorial's port 7000 becomes a free one.
    simulator = Running(
        [str(python), "-m", "ioplex_thermostat.simulator", "--port", "0"], cwd=work, env=env
    )
    host = None
    try:
        port = simulator.expect(r"listening on 127\.0\.0\.1:(\d+)")[1]
        site = work / "site.toml"
        assert "port = 7000\n" in site.read_text()
        site.write_text(site.read_text().replace("port = 7000\n", f"port = {port}\n"))
        check = run([str(bindir / "ioplex"), "check", "site.toml"], cwd=work, env=env, timeout=60)
        assert "site.toml: valid (1 I/O server, 0 data loggers)" in check.stdout

        host = Running(
            [str(bindir / "ioplex"), "run", "site.toml", "--watch", "living.*"], cwd=work, env=env
        )
        host.expect(r"living\.connection = 'online' \(good\)")
        host.expect(rf"living\.humidity = 45\.0{UNIT} \(good\)")
        temp = float(host.expect(rf"living\.temp = ([0-9.]+){UNIT} \(good\)")[1])
        assert 18.0 <= temp < 20.0

        written = run([str(python), "set_setpoint.py", "23.5"], cwd=work, env=env, timeout=60)
        assert "living.setpoint = 23.5 (good)" in written.stdout
        simulator.expect(r"setpoint 20\.0 -> 23\.5")  # the device changed
        host.expect(rf"living\.setpoint = 23\.5{UNIT} \(good\)", timeout=10)  # the host polled it

        # The device dies: the host notices, marks the points bad, and reconnects to a new one.
        simulator.stop(signal.SIGKILL)
        host.expect(r"living\.connection = 'offline' \(good\)")
        host.expect(rf"living\.setpoint = 23\.5{UNIT} \(bad\)")
        simulator = Running(
            [str(python), "-m", "ioplex_thermostat.simulator", "--port", port], cwd=work, env=env
        )
        simulator.expect("listening on")
        host.expect(r"living\.connection = 'online' \(good\)", timeout=30)
        host.expect(rf"living\.setpoint = 20\.0{UNIT} \(good\)")  # read afresh from the new device

        assert host.stop(signal.SIGINT) == 0, host.output
        assert "Traceback" not in host.output, host.output
    finally:
        if host is not None:
            host.stop(signal.SIGKILL)
        simulator.stop(signal.SIGKILL)
