"""The README: its options table matches the schema, and its example rules are valid."""

from __future__ import annotations

import re
from pathlib import Path

import ioplex
from ioplex import schemadoc
from ioplex_events import parse_text

README = Path(__file__).parents[1] / "README.md"


def test_options_table_matches_the_schema():
    plugins = ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "events"})
    expected = schemadoc.plugin_markdown("events", plugins.settings_schema("events"), {})
    assert schemadoc.section(README.read_text()) == expected.strip("\n"), (
        f"regenerate with: ioplex schema events --update {README}"
    )


def test_example_rules_parse():
    text = README.read_text()
    blocks = re.findall(r"```\w*\n(.*?)```", text, re.DOTALL)
    rules = [b for b in blocks if " : " in b]
    assert rules
    for block in rules:
        parsed = parse_text(block, "README.md")
        assert len(parsed) == 4
        assert len(parsed[-1].actions) == 2


def test_event_forms_in_the_table_parse():
    text = README.read_text()
    section = text[text.index("### Events") : text.index("### Actions")]
    placeholders = {
        "p,c,t[,guid]": "0,10,6",
        "name": "x.y",
        "hhmmss": "073015",
        "hhmm": "0730",
        "value": "1",
        "class": "10",
        "type": "6",
        "[,guid]": "",
    }
    cells = re.findall(r"^\| (`.+?) \| (?:transient|condition|as)", section, re.MULTILINE)
    forms = [f for cell in cells for f in re.findall(r"`([^`]+)`", cell) if f[0].isalpha()]
    assert len(forms) >= 20
    for form in forms:
        for word, example in placeholders.items():
            form = form.replace(word, example)
        parse_text(f"{form} : LOG = 1", "README.md")
