"""The serving side's smaller fixes: rioget reads its password field raw and stamps answers
with the time of the last change, the certificate names the addresses clients use, filters
take a string, logger-only mirrors have a heartbeat, and logger samples respect io_filter."""

from __future__ import annotations

import ipaddress
import ssl
import time
from pathlib import Path

import anyio
import httpx
import ioplex
import pytest
from cryptography import x509
from ioplex_hsyco_remote import certificates
from ioplex_hsyco_remote.wire import bearer

pytestmark = pytest.mark.anyio


def context(info: dict) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=info["certificate"])


async def test_rioget_password_field_is_read_raw(kit, info_of):
    """HSYCO's documentation shows the password as typed: "pa%41ss" is sent as is."""
    async with ioplex.Host.from_config(kit.serving(password="pa%41ss*x")) as leaf:
        info = await info_of(leaf)
        async with httpx.AsyncClient(verify=context(info)) as client:
            raw = await client.get(f"{info['url']}/x/rioget?1*1*pa%41ss*x")
            assert raw.status_code == 200, raw.status_code
            assert (await client.get(f"{info['url']}/x/rioget?1*1*paAss*x")).status_code == 403


async def test_rioget_timestamp_is_the_time_of_the_last_change(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points={"a": 0})) as leaf:
        info = await info_of(leaf)
        url = f"{info['url']}/x/rioget?1*{{}}*{kit.password}"
        async with httpx.AsyncClient(verify=context(info)) as client:
            first = (await client.get(url.format(1))).json()["hsycostate"]["timestamp"]
            await anyio.sleep(0.3)
            before = time.time_ns() // 1000
            await leaf.write("dummy.a", 1)
            after = time.time_ns() // 1000
            await anyio.sleep(0.3)
            state = (await client.get(url.format(first))).json()["hsycostate"]
            assert state["io"] == {"dummy.a": "1"}
            assert before <= state["timestamp"] <= after  # the change's time, in µs
            again = (await client.get(url.format(1))).json()["hsycostate"]["timestamp"]
            assert again == state["timestamp"]  # nothing changed since: the same time


async def test_generated_certificate_names_the_listen_address_and_names(kit, info_of):
    config = kit.serving(
        listen="127.0.0.2:0",
        address="127.0.0.0/8",
        names=["127.0.0.3", "hsyco.example.org", "fd00::7"],
    )
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        # a client that checks the name against the certificate (cafile) reaches it by the
        # listen address, which is neither 127.0.0.1 nor localhost
        async with httpx.AsyncClient(verify=context(info)) as client:
            answer = await client.get(
                f"https://127.0.0.2:{info['port']}/x/rioget?1*1*" + kit.password
            )
            assert answer.status_code == 200
    cert = x509.load_pem_x509_certificate(Path(info["certificate"]).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = set(san.get_values_for_type(x509.IPAddress))
    assert {ipaddress.ip_address(a) for a in ("127.0.0.2", "127.0.0.3", "fd00::7")} <= addresses
    assert "hsyco.example.org" in san.get_values_for_type(x509.DNSName)
    fingerprint = info["fingerprint"]
    # the same names next time: the same certificate (pins stay valid); a new name: a new one
    async with ioplex.Host.from_config(config) as leaf:
        assert (await info_of(leaf))["fingerprint"] == fingerprint
    config["plugins"]["hsyco_remote"]["server"]["names"] = ["hsyco2.example.org"]
    async with ioplex.Host.from_config(config) as leaf:
        assert (await info_of(leaf))["fingerprint"] != fingerprint
        assert (leaf.data_dir / "hsyco_remote" / "cert.pem.old").exists()


def test_bad_names_are_reported_with_their_path():
    with pytest.raises(ValueError, match=r"server.names\[1\]: 'not a name!'"):
        certificates.check_names(["ok.example", "not a name!"], "server.names")


async def test_filters_and_control_take_a_string(kit, info_of):
    config = kit.serving(
        points={"a": 1, "b": 2}, io_filter="dummy.a", ui_filter="shown", control="dummy.a"
    )
    async with ioplex.Host.from_config(config) as leaf:
        leaf.ui.declare("shown", 1, writable=True)
        leaf.ui.declare("hidden", 2, writable=True)
        info = await info_of(leaf)
        async with httpx.AsyncClient(
            base_url=info["url"] + "/api/v1", verify=context(info), headers=bearer(kit.password)
        ) as client:
            body = (await client.get("/info")).json()
            assert body["count"] == {"io": 1, "ui": 1} and body["control"] is True
            ok = await client.post("/write", json={"name": "dummy.a", "value": 5})
            assert ok.status_code == 200 and ok.json()["value"] == 5
            hidden = await client.post("/write", json={"name": "dummy.b", "value": 5})
            assert hidden.status_code == 404


async def test_changes_without_namespaces_is_a_heartbeat(kit, info_of):
    """A logger-only mirror (io = false, ui = false) asks /changes?ns= for its heartbeat."""
    async with ioplex.Host.from_config(kit.serving(points={"a": 1})) as leaf:
        info = await info_of(leaf)
        async with httpx.AsyncClient(
            base_url=info["url"] + "/api/v1", verify=context(info), headers=bearer(kit.password)
        ) as client:
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(leaf.write, "dummy.a", 2)  # changes do not end the heartbeat
                answer = await client.get("/changes", params={"ns": "", "wait": 0.5})
            assert answer.status_code == 200
            body = answer.json()
            assert time.monotonic() - started >= 0.5
            assert "io" not in body and "ui" not in body and body["count"] == {}
            assert body["epoch"] and body["seq"] >= 1 and body["more"] is False


async def test_logger_samples_respect_io_filter_and_name_their_store(kit, info_of):
    loggers = {"all": {"points": ["dummy.*"]}}
    config = kit.serving(
        points={"shown": 0, "hidden": 0}, io_filter=["dummy.shown"], loggers=loggers
    )
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        for n in range(1, 6):
            await leaf.write("dummy.shown", n)
            await leaf.write("dummy.hidden", -n)
        await leaf.loggers.flush()
        async with httpx.AsyncClient(
            base_url=info["url"] + "/api/v1", verify=context(info), headers=bearer(kit.password)
        ) as client:
            first = (await client.get("/loggers/all/samples", params={"limit": 4})).json()
            assert first["store"] == leaf.loggers.store_id and first["store"]
            assert {s[2] for s in first["samples"]} == {"dummy.shown"}
            assert first["more"] is True and first["next"] >= first["samples"][-1][0]
            seen = list(first["samples"])
            after = first["next"]
            while True:
                page = (
                    await client.get("/loggers/all/samples", params={"after": after, "limit": 4})
                ).json()
                seen += page["samples"]
                after = page["next"]
                if not page["more"]:
                    break
    values = [s[3] for s in seen if s[3] is not None]
    assert values[-5:] == [1, 2, 3, 4, 5]
    assert all(s[2] == "dummy.shown" for s in seen)


async def test_a_client_outside_the_allow_list_sees_no_data(kit, info_of):
    """Not even the API document: openapi.json is behind the allow-list and the password."""
    async with ioplex.Host.from_config(kit.serving(address=["127.0.0.5"])) as leaf:
        info = await info_of(leaf)
        async with httpx.AsyncClient(
            base_url=info["url"], verify=context(info), headers=bearer(kit.password)
        ) as client:
            for path in ("/api/v1/openapi.json", "/api/v1/info", "/api/v1/state"):
                response = await client.get(path)
                assert response.status_code == 403, path
                assert response.json()["error"]["code"] == "address_not_allowed"
            rioget = await client.get(f"/x/rioget?1*1*{kit.password}")
            assert rioget.status_code == 403 and rioget.content == b""
