"""Configuration problems are reported by `ioplex check` with their config path, before
anything starts; secrets never appear in them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ioplex
import pytest
from ioplex_web.testing import USERS, base_config


def problems(tmp_path: Path, web: dict[str, Any]) -> str:
    with pytest.raises(ioplex.ConfigError) as err:
        ioplex.Host.from_config(base_config(tmp_path, web))
    return str(err.value)


@pytest.mark.parametrize(
    ("web", "path", "words"),
    [
        ({"listen": "127.0.0.1:99999"}, "plugins.web.listen", "port"),
        ({"listen": "10.1.2.3:8080"}, "plugins.web.listen", "users"),
        ({"users": USERS, "allow": ["10.0.0.0/33"]}, "plugins.web.allow", "10.0.0.0/33"),
        ({"users": USERS, "control": ["bad pattern"]}, "plugins.web.control", "bad pattern"),
        ({"users": USERS, "metrics_points": ["a\u202eb"]}, "plugins.web.metrics_points", "U+202E"),
        ({"users": USERS, "certificate": "cert.pem"}, "plugins.web.key", "required"),
        (
            {"users": USERS, "certificate": "nope.pem", "key": "nope.key"},
            "plugins.web.certificate",
            "nope.pem",
        ),
        (
            {"users": [*USERS, {"name": "alice", "password": "another-secret"}]},
            "plugins.web.users[2].name",
            "twice",
        ),
        ({"users": [{"name": "eve", "password": "short"}]}, "plugins.web.users", ""),
    ],
)
def test_problems_name_the_path(tmp_path: Path, web: dict[str, Any], path: str, words: str) -> None:
    text = problems(tmp_path, web)
    assert path in text and words in text, text
    assert "short" not in text.replace("too short", "")  # the password is never shown
    for user in USERS:
        assert user["password"] not in text


def test_disabled_checks_nothing(tmp_path: Path) -> None:
    host = ioplex.Host.from_config(
        base_config(tmp_path, {"enabled": False, "listen": "10.1.2.3:8080"})
    )
    assert host.config.plugins["web"]["enabled"] is False
