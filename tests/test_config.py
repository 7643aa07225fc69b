"""Configuration: every problem reported with its path, defaults filled, secrets resolved."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import ioplex
import pytest
from click.testing import CliRunner
from ioplex.cli import cli


def problems(config: dict, plugins: ioplex.Plugins, **kw) -> list[str]:
    with pytest.raises(ioplex.ConfigError) as info:
        ioplex.Host.from_config(config, plugins=plugins, **kw)
    return [str(p) for p in info.value.problems]


def test_defaults_are_filled(builtins_only: ioplex.Plugins) -> None:
    host = ioplex.Host.from_config({"ioservers": {"d": {"plugin": "dummy"}}}, plugins=builtins_only)
    assert host.config.host.name == "ioplex"
    assert host.config.host.data_dir == Path.cwd() / "data"
    options = host.config.ioservers["d"].options
    assert (options["points"], options["rate"], options["ui"]) == ({}, 0, {})


def test_every_problem_is_reported_with_its_path(builtins_only: ioplex.Plugins) -> None:
    found = problems(
        {
            "host": {"restart_delay": -1},
            "ioservers": {
                "a": {"plugin": "dumy"},
                "b": {"plugin": "dummy", "options": {"rate": "fast", "pionts": {}}},
                "c": {"plugin": "dummy", "adress": "x"},
            },
        },
        builtins_only,
    )
    # One pass: a mistake in [host] does not hide the instances' problems.
    assert found == [
        "host.restart_delay: -1 is less than or equal to the minimum of 0",
        "ioservers.a.plugin: unknown I/O server type 'dumy'; did you mean 'dummy'?",
        "ioservers.b.options.pionts: unknown option 'pionts'; did you mean 'points'?",
        "ioservers.b.options.rate: 'fast' is not of type 'number'",
        "ioservers.c.adress: unknown key 'adress'; expected one of: options",
    ]
    found = problems(
        {
            "ioservers": {
                "a": {"plugin": "dumy"},
                "b": {"plugin": "dummy", "options": {"rate": "fast", "pionts": {}}},
                "c": {"plugin": "dummy", "adress": "x"},
            },
            "plugins": {"sytem": {}},
        },
        builtins_only,
    )
    assert found == [
        "ioservers.a.plugin: unknown I/O server type 'dumy'; did you mean 'dummy'?",
        "ioservers.b.options.pionts: unknown option 'pionts'; did you mean 'points'?",
        "ioservers.b.options.rate: 'fast' is not of type 'number'",
        "ioservers.c.adress: unknown key 'adress'; expected one of: options",
        "plugins.sytem: unknown plugin 'sytem'; did you mean 'system'?",
    ]


def test_host_typos_and_unknown_plugins_are_reported_together(builtins_only) -> None:
    found = problems(
        {
            "host": {"nmae": "x"},
            "ioservers": {"a": {"plugin": "nosuchplugin"}},
            "plugins": {"nosuch": {}},
        },
        builtins_only,
    )
    assert found == [
        "host.nmae: unknown key 'nmae'; did you mean 'name'?",
        (
            "ioservers.a.plugin: unknown I/O server type 'nosuchplugin'; installed types: dummy, "
            "system (see `ioplex plugins`)"
        ),
        "plugins.nosuch: unknown plugin 'nosuch'; see `ioplex plugins`",
    ]


def test_secrets_with_defaults_and_wrong_forms(builtins_only) -> None:
    config = {"host": {"name": {"env": "SITE", "default": "fallback"}}}
    host = ioplex.Host.from_config(config, plugins=builtins_only, environ={})
    assert host.config.host.name == "fallback"
    host = ioplex.Host.from_config(config, plugins=builtins_only, environ={"SITE": "a"})
    assert host.config.host.name == "a"
    found = problems({"host": {"name": {"env": "SITE", "defualt": "x"}}}, builtins_only, environ={})
    assert found == [
        (
            "host.name: not a valid secret table (unexpected key 'defualt'); write "
            '{ env = "VAR" }, { env = "VAR", default = "value" } or { file = "path" }'
        )
    ]


def test_unknown_top_level_key_gets_a_suggestion(builtins_only: ioplex.Plugins) -> None:
    assert problems({"ioserver": {}}, builtins_only) == [
        "ioserver: unknown key 'ioserver'; did you mean 'ioservers'?"
    ]


@pytest.mark.parametrize(
    "points, message",
    [
        ({"light 1": 0}, "'light 1' is not a valid point id: it contains whitespace"),
        ({"light..1": 0}, "'light..1' is not a valid point id: it has an empty segment"),
        ({"a": [1]}, "[1] is not of type"),
    ],
)
def test_bad_point_ids(points: dict, message: str, builtins_only: ioplex.Plugins) -> None:
    [found] = problems(
        {"ioservers": {"d": {"plugin": "dummy", "options": {"points": points}}}}, builtins_only
    )
    assert found.startswith("ioservers.d.options.points") and message in found


def test_instance_names(builtins_only: ioplex.Plugins) -> None:
    assert problems({"ioservers": {"my server": {"plugin": "dummy"}}}, builtins_only) == [
        "ioservers: 'my server' is not a valid name: use letters, digits, '_' and '-' only"
    ]
    assert problems(
        {"ioservers": {"ssh": {"plugin": "dummy"}, "SSH": {"plugin": "dummy"}}}, builtins_only
    ) == [
        (
            "ioservers.SSH: duplicate I/O server name: 'ssh' is already defined "
            "(names are compared without case)"
        )
    ]


def test_broken_and_duplicate_toml(tmp_path: Path, builtins_only: ioplex.Plugins) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[ioservers.a]\nplugin = "dummy"\n[ioservers.a]\nplugin = "dummy"\n')
    with pytest.raises(ioplex.ConfigError) as info:
        ioplex.Host.from_config(path, plugins=builtins_only)
    assert str(info.value).startswith(f"{path}: invalid TOML: ")
    assert "line 3" in str(info.value)
    path.write_text("[host\n")
    with pytest.raises(ioplex.ConfigError, match="invalid TOML"):
        ioplex.Host.from_config(path, plugins=builtins_only)
    with pytest.raises(ioplex.ConfigError, match="cannot read config"):
        ioplex.Host.from_config(tmp_path / "missing.toml", plugins=builtins_only)


SECRET_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "password": {"type": "string", "writeOnly": True, "minLength": 12, "description": "x"},
        "user": {"type": "string", "description": "x"},
        "mode": {"enum": ["a", "b"], "description": "x"},
    },
}


class SecretPlugin:
    __name__ = "secretive"

    @staticmethod
    @ioplex.hookimpl
    def register_ioserver_types(register):
        register("secretive", lambda io: object(), SECRET_SCHEMA)


@pytest.fixture
def with_secrets(builtins_only: ioplex.Plugins) -> ioplex.Plugins:
    builtins_only.register(SecretPlugin(), "secretive")
    return builtins_only


def test_secrets_from_env_and_file(tmp_path: Path, with_secrets: ioplex.Plugins) -> None:
    (tmp_path / "pw").write_text("correct horse battery\n")
    path = tmp_path / "site.toml"
    path.write_text(
        '[ioservers.a]\nplugin = "secretive"\npassword = {env = "PW"}\n'
        '[ioservers.b]\nplugin = "secretive"\npassword = {file = "pw"}\n'
    )
    host = ioplex.Host.from_config(
        path, plugins=with_secrets, environ={"PW": "from the environment"}
    )
    assert host.config.ioservers["a"].settings["password"] == "from the environment"
    assert host.config.ioservers["b"].settings["password"] == "correct horse battery"
    with pytest.raises(
        ioplex.ConfigError, match="ioservers.a.password: environment variable 'PW' is not set"
    ):
        ioplex.Host.from_config(path, plugins=with_secrets, environ={})


def test_secrets_never_appear_in_errors(with_secrets: ioplex.Plugins) -> None:
    found = problems(
        {"ioservers": {"a": {"plugin": "secretive", "password": "hunter2", "mode": {"env": "M"}}}},
        with_secrets,
        environ={"M": "swordfish"},
    )
    assert found == [
        "ioservers.a.mode: '***' is not one of ['a', 'b']",  # a value that came from {env}
        "ioservers.a.password: invalid secret value (not shown): fails 'minLength'",
    ]


def test_check_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[ioservers.d]\nplugin = "dummy"\noptions = {points = {"a" = 1}}\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[ioservers.ssh]\nplugin = "dummy"\noptions = {rate = -1, pionts = {}}\n')
    runner = CliRunner()
    result = runner.invoke(cli, ["check", str(good)], env={"IOPLEX_LOAD_PLUGINS": ""})
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["check", str(bad)], env={"IOPLEX_LOAD_PLUGINS": ""})
    assert result.exit_code == 2
    assert f"error: {bad}: ioservers.ssh.options.pionts: unknown option 'pionts'" in result.output
    assert (
        f"error: {bad}: ioservers.ssh.options.rate: -1 is less than the minimum of 0"
        in result.output
    )
    assert "2 problems found; nothing was started." in result.output
    assert not (tmp_path / "data").exists()  # nothing created either


class Ranged:
    """A plugin with a rule no schema can say: options.low must not exceed options.high."""

    __name__ = "ranged"
    SCHEMA: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "options": {
                "type": "object",
                "additionalProperties": False,
                "default": {},
                "properties": {
                    "low": {"type": "integer", "default": 0, "description": "x"},
                    "high": {"type": "integer", "default": 10, "description": "x"},
                },
            }
        },
    }

    @staticmethod
    @ioplex.hookimpl
    def register_ioserver_types(register):
        register("ranged", lambda io: object(), Ranged.SCHEMA)

    @staticmethod
    @ioplex.hookimpl
    def check_config(settings, ioservers):
        assert settings is None  # no settings schema
        for name, io in ioservers.items():
            if io.options["low"] > io.options["high"]:
                yield ioplex.Problem(
                    f"ioservers.{name}.options.low",
                    f"{io.options['low']} exceeds high ({io.options['high']})",
                )


class Crashing:
    __name__ = "crashing"

    @staticmethod
    @ioplex.hookimpl
    def check_config(settings, ioservers):
        raise RuntimeError("bug in the check")


def test_plugins_check_what_schemas_cannot(builtins_only: ioplex.Plugins) -> None:
    builtins_only.register(Ranged(), "ranged")
    ok = {"ioservers": {"a": {"plugin": "ranged"}, "d": {"plugin": "dummy"}}}
    ioplex.Host.from_config(ok, plugins=builtins_only)
    bad = {
        "ioservers": {
            "a": {"plugin": "ranged", "options": {"low": 11}},
            "b": {"plugin": "ranged", "options": {"low": 5, "high": 4}},
        }
    }
    assert problems(bad, builtins_only) == [
        "ioservers.a.options.low: 11 exceeds high (10)",
        "ioservers.b.options.low: 5 exceeds high (4)",
    ]
    builtins_only.register(Crashing(), "crashing")
    assert problems(ok, builtins_only) == [
        (
            "plugins.crashing: plugin 'crashing' failed to check its configuration: "
            "RuntimeError: bug in the check"
        )
    ]
