"""The README: its options table matches the schema and its configuration validates."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import ioplex
from ioplex import schemadoc

README = Path(__file__).parents[1] / "README.md"


def test_options_table_matches_the_schema() -> None:
    plugins = ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "web"})
    expected = schemadoc.plugin_markdown("web", plugins.settings_schema("web"), {})
    assert schemadoc.section(README.read_text()) == expected.strip("\n"), (
        f"regenerate with: ioplex schema web --update {README}"
    )


def test_readme_configuration_validates(tmp_path: Path) -> None:
    (block,) = re.findall(r"```toml\n(.*?)```", README.read_text(), re.DOTALL)
    table = tomllib.loads(block)
    table["host"] = {"data_dir": str(tmp_path)}
    host = ioplex.Host.from_config(table, environ={"IOPLEX_WEB_OPERATOR": "long-enough-pw"})
    assert host.config.plugins["web"]["users"][0]["role"] == "write"


def test_readme_names_every_metric() -> None:
    from ioplex_web import metrics

    text = README.read_text()
    source = Path(metrics.__file__).read_text()
    names = set(re.findall(r'"(ioplex_[a-z_]+)"', source))
    assert names
    for name in names:
        assert name in text or f"{name}_total" in text, name


def test_the_wheel_carries_every_asset(tmp_path: Path) -> None:
    """The page must work from a plain `pip install ioplex-web`: no CDN, no build step."""
    import subprocess
    import sys
    import zipfile

    package = Path(__file__).parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(package),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("ioplex_web-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = package / "ioplex_web" / "static"
    for path in static.rglob("*"):
        if path.is_file():
            assert f"ioplex_web/static/{path.relative_to(static).as_posix()}" in names, path
    assert "ioplex_web/openapi.json" in names
    html = (static / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
