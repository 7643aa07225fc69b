"""The command line, run as a user would: installed plugins, schemas, `run` and its signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def ioplex(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ioplex", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
        **kw,
    )


def install_into(target: Path, project: Path) -> Path:
    """Install a plugin project with pip into a directory of its own (not the test env)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(project)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return target


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory) -> Path:
    """tests/tiny_plugin installed with pip into a directory of its own (not the test env)."""
    return install_into(tmp_path_factory.mktemp("site"), HERE / "tiny_plugin")


def test_installed_plugin_is_found_and_a_broken_one_reported(tiny_site: Path) -> None:
    env = {"PYTHONPATH": str(tiny_site)}
    result = ioplex("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    tiny = next(p for p in report["plugins"] if p["name"] == "tiny")
    assert tiny == {
        "name": "tiny",
        "version": "1.2.3",
        "distribution": "ioplex-tiny",
        "builtin": False,
        "hooks": ["register_commands", "register_ioserver_types"],
        "types": ["tiny"],
    }
    [broken] = [e for e in report["errors"] if e["name"] == "broken"]
    assert broken["version"] == "1.2.3" and broken["distribution"] == "ioplex-tiny"
    assert "No module named 'a_module_that_is_not_installed'" in broken["error"]
    text = ioplex("plugins", env=env).stdout
    assert "tiny 1.2.3: types tiny" in text and "broken 1.2.3 (ioplex-tiny): FAILED TO LOAD" in text


@pytest.mark.parametrize(
    "allow, expected",
    [
        ("", {"system", "dummy"}),
        ("tiny", {"system", "dummy", "tiny"}),
        ("ioplex-tiny", {"system", "dummy", "tiny", "broken"}),
    ],
)
def test_load_plugins_allow_list(tiny_site: Path, allow: str, expected: set) -> None:
    result = ioplex(
        "plugins", "--json", env={"PYTHONPATH": str(tiny_site), "IOPLEX_LOAD_PLUGINS": allow}
    )
    report = json.loads(result.stdout)
    names = {p["name"] for p in report["plugins"]} | {e["name"] for e in report["errors"]}
    assert names == expected


def test_schema_command(tiny_site: Path) -> None:
    env = {"PYTHONPATH": str(tiny_site)}
    result = ioplex("schema", "tiny", "--markdown", env=env)
    assert "| start | `0` | integer | Initial count. |" in result.stdout
    schema = json.loads(ioplex("schema", "tiny", env=env).stdout)
    assert (
        schema["ioserver_types"]["tiny"]["properties"]["options"]["properties"]["start"]["default"]
        == 0
    )
    result = ioplex("schema", "tyni", env=env)
    assert result.returncode == 2 and "unknown plugin 'tyni'" in result.stderr


def test_run_stops_cleanly_on_signals(tmp_path: Path, tiny_site: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        '[host]\ndata_dir = "data"\n'
        '[ioservers.t]\nplugin = "tiny"\noptions = {start = 5}\n'
        '[ioservers.d]\nplugin = "dummy"\noptions = {points = {"a" = 1}, rate = 50}\n'
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ioplex", "run", str(config), "--watch", "d.*"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(tiny_site), "IOPLEX_LOAD_PLUGINS": "tiny"},
        )
        first = proc.stdout.readline()  # --watch prints the initial values once started
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
        out = first + out
        assert proc.returncode == 0, err
        assert "host ioplex started: 2 I/O servers" in err
        assert f"{signal.Signals(signum).name} received: stopping" in err
        assert "host ioplex stopped" in err
        assert " d.a = " in out  # --watch printed simulated changes
        assert (tmp_path / "data").is_dir()


def test_bad_config_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[ioservers.x]\nplugin = "nope"\n[host]\ndata_dir = "data"\n')
    result = ioplex("run", str(config), env={"IOPLEX_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert "ioservers.x.plugin: unknown I/O server type 'nope'" in result.stderr
    assert not (tmp_path / "data").exists()


def test_schema_update_rewrites_the_generated_section(tmp_path: Path, tiny_site: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# tiny\n\n<!-- BEGIN ioplex schema -->\nstale\n<!-- END ioplex schema -->\n\nmore\n"
    )
    env = {"PYTHONPATH": str(tiny_site)}
    result = ioplex("schema", "tiny", "--update", str(readme), env=env)
    assert result.returncode == 0, result.stderr
    text = readme.read_text()
    assert "stale" not in text and text.endswith("<!-- END ioplex schema -->\n\nmore\n")
    assert "| start | `0` | integer | Initial count. |" in text
    readme.write_text("# no markers\n")
    result = ioplex("schema", "tiny", "--update", str(readme), env=env)
    assert result.returncode == 2 and "no generated section" in result.stderr


def test_the_readme_example_config_is_valid() -> None:
    result = ioplex("check", str(HERE.parent / "examples" / "demo.toml"))
    assert result.returncode == 0, result.stderr
    assert "valid (2 I/O servers, 1 data logger)" in result.stdout


def test_plugins_add_subcommands(tiny_site: Path) -> None:
    result = ioplex("tiny-hello", env={"PYTHONPATH": str(tiny_site)})
    assert result.returncode == 0 and result.stdout == "hello from tiny\n", result.stderr
    assert "tiny-hello" in ioplex("--help", env={"PYTHONPATH": str(tiny_site)}).stdout


def test_host_schema_as_markdown() -> None:
    result = ioplex("schema", "host", "--markdown")
    assert result.returncode == 0
    assert result.stdout.startswith("### `[host]`") and "| max_string |" in result.stdout


def test_a_plugin_for_another_kernel_api_is_reported(tmp_path: Path) -> None:
    install_into(tmp_path, HERE / "old_plugin")
    result = ioplex("plugins", "--json", env={"PYTHONPATH": str(tmp_path)})
    [old] = [e for e in json.loads(result.stdout)["errors"] if e["name"] == "old"]
    assert old["error"].startswith("requires ioplex<0.1 but ioplex 0.1.0 is installed")
