"""Documentation that must not drift from the code: hooks, options tables, README commands."""

from __future__ import annotations

import re
from pathlib import Path

import ioplex
import pytest
from ioplex import schemadoc
from ioplex.plugins import make_manager

ROOT = Path(__file__).parent.parent
HOOK_TITLE = re.compile(r"^## (\w+)\(([^)]*)\)$", re.MULTILINE)


def documented_hooks() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "hooks.md").read_text()
    return {
        name: [a.strip() for a in args.split(",") if a.strip()]
        for name, args in HOOK_TITLE.findall(text)
    }


def test_every_hook_is_documented_with_its_signature() -> None:
    pm = make_manager()
    specs = {
        name: list(caller.spec.argnames)
        for name, caller in vars(pm.hook).items()
        if getattr(caller, "spec", None) is not None
    }
    assert specs, "no hook specs found"
    assert documented_hooks() == specs


def test_every_hookspec_documents_each_argument() -> None:
    pm = make_manager()
    for name, caller in vars(pm.hook).items():
        if getattr(caller, "spec", None) is None:
            continue
        doc = caller.spec.function.__doc__ or ""
        assert doc.strip(), f"hook {name} has no docstring"
        for arg in caller.spec.argnames:
            assert f":param {arg}:" in doc, f"hook {name} does not document {arg!r}"


def generated_section(path: Path) -> str:
    return schemadoc.section(path.read_text())


@pytest.mark.parametrize(
    "plugin", ["hsyco_remote", "ssh", "vscp_link", "events", "web", "mqtt", "postgres"]
)
def test_plugin_readme_options_match_schema(plugin: str) -> None:
    plugins = ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": plugin})
    assert plugin in plugins.info, f"plugin {plugin} is not installed"
    types = {n: t.schema for n, t in plugins.types.items() if t.plugin == plugin}
    expected = schemadoc.plugin_markdown(plugin, plugins.settings_schema(plugin), types)
    readme = ROOT / "plugins" / plugin / "README.md"
    assert generated_section(readme) == expected.strip("\n"), (
        f"regenerate with: ioplex schema {plugin} --update {readme}"
    )


def test_builtin_options_match_schema(builtins_only: ioplex.Plugins) -> None:
    expected = "\n".join(
        schemadoc.plugin_markdown(name, None, {name: builtins_only.types[name].schema})
        for name in ("system", "dummy")
    )
    assert generated_section(ROOT / "docs" / "builtins.md") == expected.strip("\n")


def test_every_option_has_a_description_and_a_default(builtins_only: ioplex.Plugins) -> None:
    plugins = ioplex.load_plugins()
    schemas = [
        (t.name, t.schema.get("properties", {}).get("options", {})) for t in plugins.types.values()
    ]
    for name, options in schemas:
        for option, sub in options.get("properties", {}).items():
            assert sub.get("description"), f"{name}: option {option} has no description"
            assert "default" in sub, f"{name}: option {option} has no default"
