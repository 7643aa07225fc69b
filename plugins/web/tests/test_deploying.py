"""docs/deploying.md: its TOML is a valid configuration that serves, its systemd unit passes
`systemd-analyze verify`, and its Dockerfile is non-root with one /data volume and a
HEALTHCHECK whose command, run here, passes against a host started from that TOML."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import ioplex
import pytest
from ioplex.testing import ensure_debian_package
from ioplex_web.testing import RunningHost

DOC = Path(__file__).resolve().parents[3] / "docs" / "deploying.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_configuration_validates(tmp_path: Path) -> None:
    (config,) = blocks("toml")
    table = tomllib.loads(config)
    secret = tmp_path / "prometheus.secret"
    secret.write_text("scrape-password-1\n")
    table["plugins"]["web"]["users"][1]["password"] = {"file": str(secret)}
    table["host"]["data_dir"] = str(tmp_path / "data")
    host = ioplex.Host.from_config(table, environ={"IOPLEX_WEB_OPERATOR": "operator-pw-1"})
    assert host.config.plugins["web"]["listen"] == "[::]:8080"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    (unit,) = blocks("ini")
    for needed in (
        "Type=notify",
        "WatchdogSec=",
        "User=ioplex",
        "ProtectSystem=strict",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert needed in unit
    analyze = ensure_debian_package("systemd", "systemd-analyze")
    ioplex_bin = Path(sys.executable).parent / "ioplex"
    path = tmp_path / "ioplex.service"
    path.write_text(unit.replace("/opt/ioplex/bin/ioplex", str(ioplex_bin)))
    done = subprocess.run(
        [str(analyze), "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if str(path) in line or "ioplex.service" in line
    ]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def _dockerfile() -> str:
    (dockerfile,) = blocks("dockerfile")
    return dockerfile


def test_dockerfile_is_non_root_with_one_volume_and_a_health_check() -> None:
    text = _dockerfile()
    user = re.search(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user.group(1) not in ("root", "0")
    assert re.findall(r"^VOLUME (.*)$", text, re.MULTILINE) == ['["/data"]']
    assert "HEALTHCHECK" in text and "/healthz" in text


def test_the_health_check_command_passes_against_a_host(tmp_path: Path) -> None:
    (config,) = blocks("toml")
    table = tomllib.loads(config)
    table["host"]["data_dir"] = str(tmp_path / "data")
    table["plugins"]["web"]["listen"] = "127.0.0.1:0"  # tests stay on loopback...
    table["plugins"]["web"]["https"] = "always"  # ...with the TLS of "[::]:8080"
    secret = tmp_path / "prometheus.secret"
    secret.write_text("scrape-password-1\n")
    table["plugins"]["web"]["users"][0]["password"] = "operator-pw-1"
    table["plugins"]["web"]["users"][1]["password"] = {"file": str(secret)}
    table["plugins"]["web"]["allow"] = ["127.0.0.0/8"]
    table["plugins"]["web"]["certificate"] = ""
    running = RunningHost(table).start()
    try:
        assert running.url.startswith("https://127.0.0.1:")
        command = re.search(r"CMD (\[.*\])", _dockerfile().split("HEALTHCHECK", 1)[1]).group(1)
        argv = json.loads(command)
        argv[0] = sys.executable
        argv[2] = argv[2].replace("https://127.0.0.1:8080", running.url)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
    finally:
        running.stop()


@pytest.mark.skipif(
    os.environ.get("IOPLEX_TEST_DOCKER") != "1",
    reason="set IOPLEX_TEST_DOCKER=1 to build the image (needs Docker and PyPI)",
)
def test_the_image_builds(tmp_path: Path) -> None:  # pragma: no cover - optional
    (tmp_path / "Dockerfile").write_text(_dockerfile())
    done = subprocess.run(
        shlex.split(f"docker build -q -t ioplex-test {tmp_path}"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
