"""The README's options section is the generated schema documentation, unedited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_schema_block_is_current() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "ioplex", "schema", "vscp_link", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- BEGIN ioplex schema -->\n", "<!-- END ioplex schema -->"
    block = text[text.index(begin) + len(begin) : text.index(end)]
    assert block == generated, "regenerate: ioplex schema vscp_link --markdown"
