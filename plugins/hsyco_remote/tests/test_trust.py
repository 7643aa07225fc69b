"""Certificates, fingerprints, passwords and addresses, end to end over HTTPS."""

from __future__ import annotations

import logging
import ssl

import httpx
import ioplex
import pytest
import trustme
from ioplex import State
from ioplex_hsyco_remote import certificates

pytestmark = pytest.mark.anyio

OTHER_FINGERPRINT = ":".join(["AB"] * 32)


async def failed(host: ioplex.Host, name: str, until) -> str:
    """The reason a refused instance waits for (never a permanent stop: it retries slowly)."""
    io = host.ioservers[name]
    await until(
        lambda: io.state is State.RETRYING and (io.detail or "").startswith("refused"),
        what=f"{name} to be refused",
    )
    return io.detail or ""


async def test_a_wrong_fingerprint_is_refused_before_any_request(kit, info_of, until, caplog):
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        caplog.set_level(logging.INFO)
        config = kit.replicating({**info, "fingerprint": OTHER_FINGERPRINT.lower()})
        # with a wrong password too: any request reaching the server would be logged as refused
        config["ioservers"]["remote"]["password"] = "wrong-password"
        async with ioplex.Host.from_config(config) as top:
            detail = await failed(top, "remote", until)
            assert "fingerprint mismatch" in detail
            assert info["fingerprint"] in detail  # what the server presented, to compare
            assert "ioservers.remote" in detail
            assert "remote.dummy.light.1" not in top.points
        # the handshake failed before HTTP: the server never saw a request, let alone the
        # password (it logs every request with a wrong password as refused)
        assert "refused GET" not in caplog.text
        assert "wrong-password" not in caplog.text


async def test_an_unknown_certificate_is_never_accepted_silently(kit, info_of, until):
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info, fingerprint="")) as top:
            detail = await failed(top, "remote", until)
            assert "self-signed certificate" in detail or "certificate verify failed" in detail
            assert "ioservers.remote.options.fingerprint" in detail
            assert "ioservers.remote.options.cafile" in detail


async def test_cafile_with_the_generated_certificate(kit, info_of):
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        config = kit.replicating(info, fingerprint="", cafile=info["certificate"])
        async with ioplex.Host.from_config(config) as top:
            await top.wait_online("remote")
            assert top.points["remote.dummy.light.1"].value == 0


async def test_generated_certificate_is_kept_across_restarts(kit, info_of, caplog):
    caplog.set_level(logging.INFO)
    config = kit.serving()
    async with ioplex.Host.from_config(config) as leaf:
        first = await info_of(leaf)
    async with ioplex.Host.from_config(config) as leaf:
        second = await info_of(leaf)
    assert first["fingerprint"] == second["fingerprint"]
    assert first["fingerprint"] == certificates.file_fingerprint(
        leaf.data_dir / "hsyco_remote" / "cert.pem"
    )
    assert caplog.text.count(f"fingerprint {first['fingerprint']}") == 2
    assert "generated now" in caplog.text
    key = leaf.data_dir / "hsyco_remote" / "key.pem"
    assert key.stat().st_mode & 0o077 == 0


async def test_configured_certificate_from_a_ca(kit, info_of, until, tmp_path):
    ca = trustme.CA()
    leaf_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    leaf_cert.private_key_and_cert_chain_pem.write_to_path(str(key_file))
    leaf_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))

    config = kit.serving(certificate=str(cert_file), key=str(key_file))
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        assert info["fingerprint"] == certificates.file_fingerprint(cert_file)
        good = kit.replicating(info, fingerprint="", cafile=str(ca_file))
        async with ioplex.Host.from_config(good) as top:
            await top.wait_online("remote")
        wrong = kit.replicating(info, name="wrong", fingerprint="", cafile=str(other_ca))
        async with ioplex.Host.from_config(wrong) as top:
            assert "certificate verify failed" in await failed(top, "remote", until)


async def test_a_certificate_for_another_name_is_refused(kit, info_of, until, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("example.test")  # signed by the trusted CA, but not for 127.0.0.1
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "c.key", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    async with ioplex.Host.from_config(
        kit.serving(certificate=str(cert_file), key=str(key_file))
    ) as leaf:
        info = await info_of(leaf)
        config = kit.replicating(info, fingerprint="", cafile=str(ca_file))
        async with ioplex.Host.from_config(config) as top:
            assert "mismatch" in await failed(top, "remote", until)


async def test_a_wrong_password_is_retried_slowly_with_a_clear_error(kit, info_of, until, caplog):
    caplog.set_level(logging.INFO)
    async with ioplex.Host.from_config(kit.serving()) as leaf:
        info = await info_of(leaf)
        config = kit.replicating(info)
        config["ioservers"]["remote"]["password"] = "not-the-password"
        async with ioplex.Host.from_config(config) as top:
            detail = await failed(top, "remote", until)
            assert "ioservers.remote.password: refused by" in detail
            assert "wrong or missing password" in detail
            assert "wrong password from 127.0.0.1" in caplog.text  # the server's log
            # logged once per change of reason, not once per attempt
            assert caplog.text.count("ioservers.remote.password: refused by") == 1
            assert "not-the-password" not in caplog.text
            assert kit.password not in caplog.text


async def test_a_client_address_not_allowed_gets_nothing(kit, info_of, until):
    async with ioplex.Host.from_config(kit.serving(address=["10.0.0.0/8", "192.168.1.7"])) as leaf:
        info = await info_of(leaf)
        async with ioplex.Host.from_config(kit.replicating(info)) as top:
            detail = await failed(top, "remote", until)
            assert "does not allow this host's address" in detail
            assert "plugins.hsyco_remote.server.address" in detail
        context = ssl.create_default_context(cafile=info["certificate"])
        async with httpx.AsyncClient(verify=context) as client:
            response = await client.get(
                f"{info['url']}/api/v1/info", headers={"Authorization": f"Bearer {kit.password}"}
            )
            assert response.status_code == 403
            assert "hsyco" not in response.text and "light" not in response.text
            response = await client.get(f"{info['url']}/x/rioget?1*1*{kit.password}")
            assert response.status_code == 403 and response.content == b""


def test_fingerprint_formats():
    digest = "ab" * 32
    expected = ":".join(["AB"] * 32)
    assert certificates.normalize_fingerprint(digest) == expected
    assert certificates.normalize_fingerprint("SHA256:" + ":".join(["ab"] * 32)) == expected
    with pytest.raises(ValueError, match="64 hex digits"):
        certificates.normalize_fingerprint("ab:cd")


async def _forward(listen_host: str, target_port: int, *, task_status) -> None:
    """A TCP forwarder on another loopback address (the "LAN address" of these tests)."""
    import anyio
    import anyio.abc

    async def pump(source, sink) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        await sink.aclose()

    async def handle(client) -> None:
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", target_port) as upstream,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(pump, client, upstream)
            tg.start_soon(pump, upstream, client)

    listener = await anyio.create_tcp_listener(local_host=listen_host, local_port=0)
    task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
    await listener.serve(handle)


async def test_cafile_with_a_lan_address_listed_in_names(kit, info_of, until):
    """The generated certificate carries the addresses in `names`: a mirror reaching the
    server by such an address verifies it with cafile (127.0.0.3 stands for a LAN address)."""
    import anyio

    async with anyio.create_task_group() as tg:
        async with ioplex.Host.from_config(kit.serving(names=["127.0.0.3"])) as leaf:
            info = await info_of(leaf)
            port = await tg.start(_forward, "127.0.0.3", info["port"])
            config = kit.replicating(
                {**info, "port": port}, fingerprint="", cafile=info["certificate"]
            )
            config["ioservers"]["remote"]["address"] = "127.0.0.3"
            async with ioplex.Host.from_config(config) as top:
                await top.wait_online("remote")
                assert top.points["remote.dummy.light.1"].value == 0
        # without the name, the same address is refused (and retried, never accepted)
        async with ioplex.Host.from_config(kit.serving(name="plain")) as leaf:
            info = await info_of(leaf)
            port = await tg.start(_forward, "127.0.0.3", info["port"])
            config = kit.replicating(
                {**info, "port": port}, name="top2", fingerprint="", cafile=info["certificate"]
            )
            config["ioservers"]["remote"]["address"] = "127.0.0.3"
            async with ioplex.Host.from_config(config) as top:
                assert "127.0.0.3" in await failed(top, "remote", until)
        tg.cancel_scope.cancel()
