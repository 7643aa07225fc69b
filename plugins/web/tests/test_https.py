"""HTTPS: a configured certificate pair, its fingerprint in server.json, and clients that
trust it (httpx, `ioplex get --cacert`)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from ioplex_web import certificate
from ioplex_web.testing import PASSWORDS, USERS


def test_configured_certificate(make_host: Any, tmp_path: Path) -> None:
    cert, key, generated = certificate.load_or_create(tmp_path / "pki", "site", "127.0.0.1")
    assert generated and oct(key.stat().st_mode & 0o777) == "0o600"
    running = make_host(
        {"users": USERS, "https": "always", "certificate": str(cert), "key": str(key)}, rate=0
    )
    assert running.url.startswith("https://127.0.0.1:")
    assert running.info["fingerprint"] == certificate.fingerprint(cert)
    with httpx.Client(
        base_url=running.url,
        verify=ssl.create_default_context(cafile=str(cert)),
        timeout=10,
        auth=("bob", PASSWORDS["bob"]),
    ) as c:
        assert c.get("/api/v1/points/dummy.light.2").json()["value"] == 1
        assert (
            "secure"
            in c.post("/api/v1/session", json={"name": "bob", "password": PASSWORDS["bob"]})
            .headers["set-cookie"]
            .lower()
        )
    try:
        httpx.get(running.url + "/healthz", timeout=10)
        raise AssertionError("an unknown certificate must not be trusted")
    except httpx.ConnectError:
        pass
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IOPLEX_")}
    environ.update(IOPLEX_URL=running.url, IOPLEX_USER="bob", IOPLEX_PASSWORD=PASSWORDS["bob"])
    done = subprocess.run(
        [sys.executable, "-m", "ioplex", "get", "--cacert", str(cert), "dummy.light.2"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    # plain HTTP to the HTTPS port gets no answer, and the server carries on
    try:
        plain = httpx.get(running.url.replace("https", "http") + "/healthz", timeout=10)
        assert plain.status_code >= 400
    except httpx.HTTPError:
        pass
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=10) as c:
        assert c.get(running.url + "/healthz").status_code == 200
