"""Configuration of ssh I/O servers: defaults, validation messages, the points it declares."""

from __future__ import annotations

import ioplex
import pytest
from ioplex_ssh.driver import SSHDriver

ONLY_SSH = {"IOPLEX_LOAD_PLUGINS": "ssh"}


def load(table: dict) -> ioplex.Config:
    host = ioplex.Host.from_config(
        {"ioservers": {"ssh": {"plugin": "ssh", **table}}}, environ=ONLY_SSH
    )
    return host.config


def problems(table: dict) -> list[str]:
    with pytest.raises(ioplex.ConfigError) as info:
        load(table)
    return [str(p) for p in info.value.problems]


BASE = {"address": "127.0.0.1", "user": "u"}


def test_defaults_are_filled_in():
    cfg = load(BASE).ioservers["ssh"]
    assert cfg.settings == {"address": "127.0.0.1", "user": "u", "port": 22, "password": ""}
    assert cfg.options["stdout"] is True
    assert cfg.options["persistentconnection"] is True
    assert cfg.options["timeout"] == 30
    assert cfg.options["trust_on_first_use"] is False


@pytest.mark.parametrize("value", [True, False, "true", "false", "line"])
def test_stdout_accepts_booleans_and_line(value):
    assert load({**BASE, "options": {"stdout": value}}).ioservers["ssh"].options["stdout"] == value


def test_a_bad_stdout_value_names_the_option_and_the_choices():
    assert problems({**BASE, "options": {"stdout": "lines"}}) == [
        "ioservers.ssh.options.stdout: 'lines' is not one of ['true', 'false', 'line']"
    ]
    assert problems({**BASE, "options": {"stdout": 1}}) == [
        "ioservers.ssh.options.stdout: 1 is not of type 'boolean', 'string'"
    ]


def test_missing_and_unknown_settings_are_all_reported():
    found = problems({"port": 70000, "options": {"timout": 5}})
    assert "ioservers.ssh: 'address' is a required property" in found
    assert "ioservers.ssh: 'user' is a required property" in found
    assert any(p.startswith("ioservers.ssh.port: 70000") for p in found)
    assert "ioservers.ssh.options.timout: unknown option 'timout'; did you mean 'timeout'?" in found


def test_secrets_are_not_shown_in_errors():
    found = problems({**BASE, "password": 12345, "options": {"passphrase": 6789}})
    assert found == [
        "ioservers.ssh.options.passphrase: invalid secret value (not shown): fails 'type'",
        "ioservers.ssh.password: invalid secret value (not shown): fails 'type'",
    ]


@pytest.mark.anyio
async def test_points_and_what_a_write_accepts(tmp_path):
    config = {
        "host": {"data_dir": str(tmp_path)},
        "ioservers": {
            "ssh": {
                "plugin": "ssh",
                **BASE,
                "port": 1,
                "options": {"queue": 2, "persistentconnection": False},
            }
        },
    }
    host = ioplex.Host.from_config(config, environ=ONLY_SSH)
    async with host:
        names = sorted(n for n in host.points if n.startswith("ssh."))
        assert names == sorted(
            [
                "ssh.connection",
                "ssh.exec",
                "ssh.out",
                "ssh.err",
                "ssh.get",
                "ssh.put",
                "ssh.user",
                "ssh.password",
            ]
        )
        assert isinstance(host.ioservers["ssh"].driver, SSHDriver)
        with pytest.raises(ioplex.UnknownPointError, match="ssh.exec.x"):
            await host.write("ssh.exec.x", "true")
        with pytest.raises(ioplex.WriteError, match="timeout '0' is not a number of seconds"):
            await host.write("ssh.exec.0", "true")
        with pytest.raises(ioplex.WriteError, match="timeout '1e9' is not a number of seconds"):
            await host.write("ssh.exec.1e9", "true")
        with pytest.raises(ioplex.PointTypeError):
            await host.write("ssh.exec.37", 5)
        with pytest.raises(ioplex.WriteError, match="expected a string, got 5"):
            await host.write("ssh.exec", 5)
        with pytest.raises(ioplex.WriteError, match="empty command"):
            await host.write("ssh.exec", "  ")
        with pytest.raises(ioplex.WriteError, match="only 'close' can be written, got 'open'"):
            await host.write("ssh.connection", "open")
        with pytest.raises(ioplex.ReadOnlyPointError):
            await host.write("ssh.out", "x")
        with pytest.raises(ioplex.WriteError) as info:
            await host.write("ssh.password", 1234)
        assert "1234" not in str(info.value)
