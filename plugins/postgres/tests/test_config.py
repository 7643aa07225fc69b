"""The [plugins.postgres] table: defaults, problems named by path and value (never the
DSN's password), and fuzzing of what the plugin parses from outside."""

from __future__ import annotations

from datetime import datetime

import ioplex
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ioplex_postgres import describe_dsn
from ioplex_postgres.shipper import _bound_end
from ioplex_postgres.tables import partition_end, partition_start

ONLY_POSTGRES = {"IOPLEX_LOAD_PLUGINS": "postgres", "PG": "postgresql://u:s3cret@db:5433/hist"}
LOGGERS = {"temps": {"points": ["d.*"]}, "energy": {"points": ["d.e"], "kind": "counter"}}


def load(table: dict) -> ioplex.Config:
    data = {
        "ioservers": {"d": {"plugin": "dummy"}},
        "loggers": LOGGERS,
        "plugins": {"postgres": table},
    }
    return ioplex.Host.from_config(data, environ=ONLY_POSTGRES).config


def problems(table: dict) -> list[str]:
    with pytest.raises(ioplex.ConfigError) as info:
        load(table)
    return [str(p) for p in info.value.problems]


def test_defaults() -> None:
    settings = load({"dsn": {"env": "PG"}}).plugins["postgres"]
    assert settings["loggers"] == ["*"]
    assert settings["levels"] == ["raw", "hour", "day", "month"]
    assert settings["table_prefix"] == "ioplex_" and settings["retention"] == "forever"
    assert settings["partition"] == "month" and settings["host"] is None


def test_problems_name_the_path_and_value() -> None:
    text = "\n".join(
        problems({"dsn": {"env": "PG"}, "table_prefix": "Bad-Prefix", "levels": ["raw", "week"]})
    )
    assert "plugins.postgres.table_prefix: 'Bad-Prefix'" in text
    assert "plugins.postgres.levels[1]: 'week'" in text
    assert "s3cret" not in text
    # checked once the table passed its schema: what a schema cannot say
    text = "\n".join(
        problems({"dsn": {"env": "PG"}, "retention": "-5d", "loggers": ["temps", "energi", "t*"]})
    )
    assert "plugins.postgres.retention" in text and "-5" in text
    assert "plugins.postgres.loggers[1]: 'energi' names no data logger" in text
    assert "defined: energy, temps" in text and "loggers[2]" not in text
    assert "s3cret" not in text


def test_an_invalid_dsn_is_reported_without_its_value() -> None:
    found = problems({"dsn": "host=db password=s3cret port"})
    assert any("plugins.postgres.dsn" in p for p in found)
    assert not any("s3cret" in p for p in found)


def test_describe_dsn_never_shows_the_password() -> None:
    assert describe_dsn("postgresql://u:s3cret@db:5433/hist") == "db:5433/hist"
    assert describe_dsn("host=h dbname=x password=s3cret") == "h:5432/x"
    assert "s3cret" not in describe_dsn("host=h password=s3cret port")


@given(
    st.text(max_size=200),
    st.text(min_size=6, max_size=20, alphabet=st.characters(categories=["L", "N"])),
)
def test_describe_dsn_fuzz(text: str, password: str) -> None:
    for dsn in (text, f"postgresql://u:{password}@{text}", f"{text} password={password}"):
        shown = describe_dsn(dsn)
        assert isinstance(shown, str)
        if password not in text:
            assert password not in shown


@given(st.text(max_size=200))
def test_partition_bounds_from_any_text(text: str) -> None:
    for bound in (text, f"FOR VALUES FROM ('x') TO ('{text}')"):
        got = _bound_end(bound)
        assert got is None or (isinstance(got, datetime) and got.tzinfo is not None)


def test_partition_bound_as_postgres_prints_it() -> None:
    got = _bound_end("FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-12-01 00:00:00+00')")
    assert got is not None and got.isoformat() == "2026-12-01T00:00:00+00:00"
    got = _bound_end("FOR VALUES FROM ('2026-11-01 01:00:00+01') TO ('2026-12-01 01:00:00+01')")
    assert (
        got is not None
        and got.timestamp() == datetime.fromisoformat("2026-12-01T00:00:00+00:00").timestamp()
    )


@given(st.floats(min_value=0, max_value=4e9), st.sampled_from(["day", "week", "month"]))
def test_partitions_tile_time(t: float, unit: str) -> None:
    start = partition_start(t, unit)
    end = partition_end(start, unit)
    assert start.timestamp() <= t < end.timestamp()
    assert partition_start(end.timestamp(), unit) == end
