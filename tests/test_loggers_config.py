"""Logger configuration: defaults, durations, and bad tables reported with their config path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ioplex
import pytest
from ioplex.loggers.settings import DurationError, format_duration, parse_duration

DUMMY = {"dummy": {"plugin": "dummy", "options": {"points": {"kwh": 0}}}}


def problems(make_host: Callable[..., ioplex.Host], loggers: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ioplex.ConfigError) as info:
        make_host({"ioservers": DUMMY, "loggers": loggers})
    return {p.path: p.message for p in info.value.problems}


def test_defaults_are_filled_in(make_host: Callable[..., ioplex.Host]) -> None:
    host = make_host({"ioservers": DUMMY, "loggers": {"energy": {"points": ["dummy.kwh"]}}})
    logger = host.loggers["energy"]
    assert logger.kind == "range"
    assert logger.levels == ("raw", "hour", "day", "month")
    assert logger.settings.retention == {
        "raw": 7 * 86400,
        "minute": 7 * 86400,
        "hour": 2 * 365 * 86400,
        "day": 10 * 365 * 86400,
        "month": None,
    }
    assert logger.settings.timezone is None and logger.settings.source is None  # the system zone
    assert host.config.loggers["energy"]["pollinterval"] == 60


def test_durations() -> None:
    assert parse_duration(3600) == 3600
    assert parse_duration("90s") == 90 and parse_duration("15min") == 900
    assert parse_duration("36h") == 36 * 3600 and parse_duration("7d") == 7 * 86400
    assert parse_duration("2w") == 14 * 86400 and parse_duration("6mo") == 180 * 86400
    assert parse_duration("2y") == 2 * 365 * 86400 and parse_duration("1.5d") == 1.5 * 86400
    assert parse_duration("forever") is None and parse_duration("Forever") is None
    for bad in (-5, 0, "-7d", "0d", "7 days", "7", "d", True, 1.5e400):
        with pytest.raises(DurationError):
            parse_duration(bad)
    with pytest.raises(DurationError, match="use 'min' for minutes or 'mo' for months"):
        parse_duration("6m")
    assert format_duration(2 * 365 * 86400) == "2y" and format_duration(None) == "forever"
    assert format_duration(90) == "90s"


def test_bad_tables_are_reported_with_path_and_value(make_host: Callable[..., ioplex.Host]) -> None:
    found = problems(
        make_host,
        {
            "energy": {
                "points": ["dummy.kwh", "dummy.[oops", "bad pattern"],
                "retention": {"raw": -5, "hour": "-2y", "day": "10 years"},
            },
            "temp": {"points": ["dummy.*"], "timezone": "Mars/Olympus", "wrap": 100},
            "mirror": {"source": "dumy"},
        },
    )
    assert "'[' is never closed" in found["loggers.energy.points[1]"]
    assert "'dummy.[oops'" in found["loggers.energy.points[1]"]
    assert "'bad pattern'" in found["loggers.energy.points[2]"]
    assert found["loggers.energy.retention.raw"].startswith("retention must be positive, got -5")
    assert "'-2y'" in found["loggers.energy.retention.hour"]
    assert "invalid duration '10 years'" in found["loggers.energy.retention.day"]
    assert "unknown time zone 'Mars/Olympus'" in found["loggers.temp.timezone"]
    assert "counter loggers only" in found["loggers.temp.wrap"]
    assert found["loggers.mirror.source"] == "unknown I/O server 'dumy'; did you mean 'dummy'?"
    assert len(found) == 8


def test_schema_errors_name_the_key(make_host: Callable[..., ioplex.Host]) -> None:
    found = problems(make_host, {"energy": {"kind": "gauge", "pollinterval": -1, "level": []}})
    assert "'gauge' is not one of ['range', 'counter']" in found["loggers.energy.kind"]
    assert "-1" in found["loggers.energy.pollinterval"]
    assert found["loggers.energy.level"] == "unknown key 'level'; did you mean 'levels'?"
    found = problems(make_host, {"energy": {"levels": ["hour", "week"]}})
    assert "'week' is not one of" in found["loggers.energy.levels[1]"]
    found = problems(make_host, {"bad id!": {}})
    assert any("bad id!" in message for message in found.values())


def test_ioplex_check_reports_logger_problems(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from ioplex.cli import cli

    config = tmp_path / "site.toml"
    config.write_text(
        '[ioservers.dummy]\nplugin = "dummy"\n'
        '[loggers.energy]\npoints = ["dummy.kwh"]\nkind = "meter"\nretention.raw = "-1d"\n'
    )
    result = CliRunner().invoke(cli, ["check", str(config)])
    assert result.exit_code == 2
    assert "loggers.energy.kind: 'meter' is not one of ['range', 'counter']" in result.output


def test_docs_options_tables_match_the_schema() -> None:
    from ioplex import schemadoc
    from ioplex.config import HOST_SCHEMA

    schema = HOST_SCHEMA["properties"]["loggers"]["additionalProperties"]
    expected = (
        "`[loggers.<id>]`:\n\n"
        + schemadoc.table(schema)
        + "\n\n`[loggers.<id>.retention]`:\n\n"
        + schemadoc.table(schema["properties"]["retention"])
    )
    text = (Path(__file__).parent.parent / "docs" / "loggers.md").read_text()
    section = text.split("<!-- BEGIN ioplex schema -->\n", 1)[1].split("\n<!-- END", 1)[0]
    assert section == expected


def toml_blocks() -> list[str]:
    text = (Path(__file__).parent.parent / "docs" / "loggers.md").read_text()
    return [block.split("\n```", 1)[0] for block in text.split("```toml\n")[1:]]


def test_docs_examples_are_valid_configurations(
    make_host: Callable[..., ioplex.Host],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import tomllib

    example, tariffs = toml_blocks()
    instances = {name: {"plugin": "dummy"} for name in ("knx", "meters", "remote")}
    with caplog.at_level("WARNING", "ioplex.loggers"):
        host = make_host({"ioservers": instances, **tomllib.loads(example)})
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    energy = host.loggers["energy"].settings
    assert energy.tariffs is not None and energy.tariffs.as_dict() == {
        "peak": 0.32,
        "offpeak": 0.21,
    }
    assert host.loggers["temperatures"].settings.every == 900
    table = tomllib.loads("[loggers.energy]\nkind = 'counter'\n" + tariffs)
    host = make_host(table)
    assert list(host.loggers["energy"].settings.tariffs.as_dict()) == ["peak", "mid", "offpeak"]
