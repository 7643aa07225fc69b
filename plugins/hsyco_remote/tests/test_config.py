"""Bad configuration gets a clear error naming what and where; the README's option tables
are exactly what `ioplex schema hsyco_remote --markdown` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ioplex
import pytest
from ioplex import State

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[1] / "README.md"


def problems(config: dict) -> str:
    with pytest.raises(ioplex.ConfigError) as caught:
        ioplex.Host.from_config(config)
    return str(caught.value)


def test_schema_errors_name_the_setting(kit):
    config = kit.serving(listen="nonsense")
    config["plugins"]["hsyco_remote"]["server"]["contrl"] = True
    text = problems(config)
    assert "plugins.hsyco_remote.server.listen: 'nonsense' does not match" in text
    assert (
        "plugins.hsyco_remote.server.contrl: unknown key 'contrl'; did you mean 'control'?" in text
    )

    info = {"port": 8443, "fingerprint": "12:34"}
    text = problems(kit.replicating(info, drift=-1, dataloggerspollinterval=0))
    assert "ioservers.remote.options.fingerprint" in text
    assert "ioservers.remote.options.drift" in text
    assert "ioservers.remote.options.dataloggerspollinterval" in text
    config = kit.replicating({"port": 8443, "fingerprint": ""})
    del config["ioservers"]["remote"]["password"]
    assert "ioservers.remote: 'password' is a required property" in problems(config)
    config = kit.replicating({"port": 8443, "fingerprint": ""})
    config["ioservers"]["remote"]["password"] = 42
    text = problems(config)
    assert "ioservers.remote.password: invalid secret value (not shown)" in text
    assert "42" not in text


@pytest.mark.parametrize(
    "server, message",
    [
        (
            {"listen": "127.0.0.1:99999"},
            "plugins.hsyco_remote.server.listen: '127.0.0.1:99999' is not",
        ),
        ({"address": ["10.0.0.1", "ten"]}, "plugins.hsyco_remote.server.address[1]: 'ten' is not"),
        ({"io_filter": ["dummy.[x"]}, "plugins.hsyco_remote.server.io_filter[0]: invalid pattern"),
        ({"certificate": "cert.pem"}, "plugins.hsyco_remote.server.key: required when certificate"),
        (
            {"certificate": "missing.pem", "key": "missing.key"},
            "plugins.hsyco_remote.server.certificate/key: cannot read",
        ),
        (
            {"password": "", "control": True},
            "plugins.hsyco_remote.server.password: required to run the server (control, listen are set)",
        ),
    ],
)
def test_server_settings_checked_before_anything_starts(kit, server, message):
    config = kit.serving()
    config["plugins"]["hsyco_remote"]["server"].update(server)
    with pytest.raises(ioplex.ConfigError) as info:  # `ioplex check` reports them too
        ioplex.Host.from_config(config)
    assert message in str(info.value)


def test_tls_trust_checked_before_anything_starts(kit, tmp_path):
    config = kit.replicating({"port": 8443, "fingerprint": ""})
    config["ioservers"]["remote"]["options"]["cafile"] = str(tmp_path / "missing-ca.pem")
    with pytest.raises(ioplex.ConfigError) as info:
        ioplex.Host.from_config(config)
    assert "ioservers.remote.options.cafile: cannot load" in str(info.value)


async def test_no_password_no_server(kit):
    config = kit.serving()
    del config["plugins"]
    async with ioplex.Host.from_config(config) as host:
        await until_state(host)
        assert not (host.data_dir / "hsyco_remote").exists()


async def until_state(host: ioplex.Host) -> None:
    import anyio

    with anyio.fail_after(5):
        while host.services.get("hsyco_remote") is not State.STOPPED:
            await anyio.sleep(0.01)


async def test_port_in_use_is_retried_with_a_clear_message(kit, info_of, caplog, until):
    async with ioplex.Host.from_config(kit.serving()) as first:
        info = await info_of(first)
        config = kit.serving(name="second", listen=f"127.0.0.1:{info['port']}")
        async with ioplex.Host.from_config(config) as second:
            await until(lambda: second.services.get("hsyco_remote") is State.RETRYING)
    assert (
        f"cannot listen on 127.0.0.1:{info['port']} (plugins.hsyco_remote.server.listen)"
        in caplog.text
    )


def test_a_replicated_logger_without_its_local_table_is_a_config_error(kit):
    info = {"port": 8443, "fingerprint": ""}
    config = kit.replicating(info)
    config["ioservers"]["other"] = kit.mirror_table(info, fingerprint="", dataloggers="energy")
    text = problems(config)  # `ioplex check` says it too: before anything runs
    assert "ioservers.other.options.dataloggers: 'energy'" in text
    assert '[loggers."other.energy"]' in text
    config["loggers"] = {"other.energy": {"points": []}}
    ioplex.Host.from_config(config)


@pytest.mark.parametrize(
    "interval, ok", [(0.001, False), (0, False), (1.5, False), (1, True), (60, True)]
)
def test_dataloggerspollinterval_is_a_positive_integer(kit, interval, ok):
    info = {"port": 8443, "fingerprint": ""}
    config = kit.replicating(
        info,
        dataloggers="energy",
        dataloggerspollinterval=interval,
        loggers={"remote.energy": {"points": []}},
    )
    if ok:
        ioplex.Host.from_config(config)
    else:
        assert "ioservers.remote.options.dataloggerspollinterval" in problems(config)


def test_readme_has_the_schema_tables():
    output = subprocess.run(
        [sys.executable, "-m", "ioplex", "schema", "hsyco_remote", "--markdown"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- BEGIN ioplex schema -->\n", "<!-- END ioplex schema -->"
    assert begin in text and end in text
    assert text.split(begin, 1)[1].split(end, 1)[0] == output
