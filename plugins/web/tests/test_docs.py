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
