"""The README: its options table matches the schema, its configuration runs against a real
PostgreSQL and its SQL runs on what that host shipped."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import anyio
import ioplex
import psycopg
import pytest
from ioplex import schemadoc

from .conftest import ONLY_POSTGRES, running, settle

README = Path(__file__).parents[1] / "README.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), re.DOTALL)


def test_options_table_matches_the_schema() -> None:
    plugins = ioplex.load_plugins({"IOPLEX_LOAD_PLUGINS": "postgres"})
    expected = schemadoc.plugin_markdown("postgres", plugins.settings_schema("postgres"), {})
    assert schemadoc.section(README.read_text()) == expected.strip("\n"), (
        f"regenerate with: ioplex schema postgres --update {README}"
    )


@pytest.mark.anyio
async def test_the_example_ships_and_the_queries_run(tmp_path: Path, dsn: str) -> None:
    (toml,) = blocks("toml")
    config = tomllib.loads(toml)
    config["host"]["data_dir"] = str(tmp_path / "data")
    config["plugins"]["postgres"]["interval"] = 0.1
    async with running(config, environ={**ONLY_POSTGRES, "IOPLEX_PG_DSN": dsn}) as (host, shipper):
        await anyio.sleep(1.2)
        await settle(host, shipper)
        assert shipper.status()["loggers"]["temps/raw"]["rows"] > 10
    (queries,) = blocks("sql")
    statements = [s.strip() for s in queries.split(";") if s.strip()]
    assert len(statements) == 3
    with psycopg.connect(dsn) as conn:
        results = [conn.execute(s).fetchall() for s in statements]
    assert results[0], "hourly averages"
    assert {(r[0], r[1], r[2]) for r in results[1]} >= {
        ("site-a", "temps", "raw"),
        ("site-a", "temps", "hour"),
    }
    assert results[2][0][:2] == ("site-a", "temps") and results[2][0][2] > 10
