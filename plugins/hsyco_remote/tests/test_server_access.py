"""Who gets in, on real HTTPS: throttling per prefix with a global cap across 200 source
addresses, sessions that others' failures cannot lock out, and `control` as a list of patterns
with sensitive points only writable when named."""

from __future__ import annotations

import ssl
import time
from typing import Any, ClassVar

import anyio
import httpx
import ioplex
import pytest
from ioplex.plugins import load_plugins
from ioplex_hsyco_remote import access
from ioplex_hsyco_remote.access import FREE_FAILURES
from ioplex_hsyco_remote.wire import SESSION_HEADER, bearer

pytestmark = pytest.mark.anyio

RATE = 3.0
"""The global cap on wrong guesses a second, for the test."""
GUESSES = FREE_FAILURES - 1
"""Wrong guesses per address: fewer than its free failures, so only the global cap can stop
them."""


class Valves:
    """A driver whose device confirms writes later (so a write's answer cannot read the new
    value back) and whose ``exec`` runs commands: a sensitive point."""

    written: ClassVar[list[tuple[str, Any]]] = []

    def __init__(self, ioserver: Any) -> None:
        ioserver.declare("valve", 0, writable=True)
        ioserver.declare("exec", "", writable=True, sensitive=True)
        ioserver.declare("exec.last", "", writable=True, sensitive=True)

    @ioplex.hookimpl
    async def connect(self, ioserver: Any) -> None:
        ioserver.set_online()
        await anyio.sleep_forever()

    @ioplex.hookimpl
    def write(self, ioserver: Any, point: Any, value: Any, namespace: str) -> None:
        Valves.written.append((point.name, value))


class ValvesPlugin:
    @ioplex.hookimpl
    def register_ioserver_types(self, register: Any) -> None:
        register(
            "valves",
            Valves,
            {"type": "object", "properties": {}, "additionalProperties": False},
            "test valves",
        )


def plugins() -> ioplex.Plugins:
    loaded = load_plugins()
    loaded.register(ValvesPlugin(), "valves_test")
    return loaded


_contexts: dict[str, ssl.SSLContext] = {}


def client(
    info: dict, password: str | None = None, local: str | None = None, **headers: str
) -> httpx.AsyncClient:
    context = _contexts.get(info["certificate"])
    if context is None:
        context = _contexts[info["certificate"]] = ssl.create_default_context(
            cafile=info["certificate"]
        )
    transport = httpx.AsyncHTTPTransport(verify=context, local_address=local)
    base = bearer(password) if password is not None else {}
    return httpx.AsyncClient(
        base_url=info["url"] + "/api/v1",
        transport=transport,
        headers={**base, **headers},
        timeout=20,
    )


async def test_200_addresses_are_throttled_by_the_global_cap(kit, info_of, monkeypatch):
    # A low cap, so that the bound holds by a wide margin however slow this machine is
    monkeypatch.setattr(access, "GLOBAL_RATE", RATE)
    config = kit.serving(address="127.0.0.0/8")
    async with ioplex.Host.from_config(config) as leaf:
        info = await info_of(leaf)
        statuses: dict[int, int] = {}

        async def guess(i: int) -> None:
            async with client(info, "wrong", local=f"127.0.2.{i + 1}") as guesser:
                for _ in range(GUESSES):  # each address stays within its free failures
                    status = (await guesser.get("/info")).status_code
                    statuses[status] = statuses.get(status, 0) + 1

        async def member(group: int) -> None:
            for j in range(20):
                await guess(group * 20 + j)

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for group in range(10):  # ten botnet members at a time, 200 addresses in all
                tg.start_soon(member, group)
        elapsed = time.monotonic() - started
        assert set(statuses) <= {401, 429}
        checked = statuses.get(401, 0)
        # 200 × GUESSES guesses; only what the global cap lets through was checked
        assert checked <= RATE * (elapsed + 1) + 1, (statuses, elapsed)
        assert statuses.get(429, 0) == 200 * GUESSES - checked
        assert checked < 200 * GUESSES / 4, (statuses, elapsed)


async def test_a_session_keeps_working_while_its_address_is_locked_out(kit, info_of):
    async with ioplex.Host.from_config(kit.serving(points={"a": 1})) as leaf:
        info = await info_of(leaf)
        async with client(info, kit.password) as concentrator:
            first = await concentrator.get("/info")
            assert first.status_code == 200
            token = first.headers[SESSION_HEADER]
            assert len(token) >= 32
        async with client(info, "wrong") as neighbour:  # the same address, e.g. behind NAT
            for _ in range(FREE_FAILURES + 2):
                await neighbour.get("/info")
            locked = await neighbour.get("/info")
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        async with client(info, kit.password) as fresh:  # the password alone is refused now
            assert (await fresh.get("/info")).status_code == 429
        async with client(info, kit.password, **{SESSION_HEADER: token}) as concentrator:
            for _ in range(3):
                response = await concentrator.get("/changes", params={"wait": 0})
                assert response.status_code == 200
                assert response.headers[SESSION_HEADER] == token  # renewed, the same
        async with client(info, None, **{SESSION_HEADER: "forged" * 6}) as forger:
            assert (await forger.get("/info")).status_code == 429  # a bad token is no session
        # rioget clients (HSYCO's) keep the per-request password and get no token
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=info["certificate"])
        ) as rioget:
            answer = await rioget.get(f"{info['url']}/x/rioget?1*1*{kit.password}")
            assert answer.status_code == 429 and SESSION_HEADER.lower() not in answer.headers


@pytest.mark.parametrize(
    ("control", "writable"),
    [
        (True, {"valves.valve", "dummy.a"}),
        ("*", {"valves.valve", "dummy.a"}),
        (["valves.*"], {"valves.valve", "valves.exec", "valves.exec.last"}),
        (["valves.valve", "valves.exec"], {"valves.valve", "valves.exec"}),
        (["val*.exec*", "dummy.?"], {"dummy.a"}),
        (["valves.exec.*"], {"valves.exec.last"}),
        (False, set()),
    ],
)
async def test_control_patterns_and_sensitive_points(kit, info_of, control, writable):
    config = kit.serving(
        points={"a": 1}, control=control, ioservers={"valves": {"plugin": "valves"}}
    )
    Valves.written.clear()
    async with ioplex.Host.from_config(config, plugins=plugins()) as leaf:
        info = await info_of(leaf)
        await leaf.wait_online("valves")
        async with client(info, kit.password) as remote:
            allowed = set()
            for name, value in (
                ("valves.valve", 7),
                ("valves.exec", "rm -rf /"),
                ("valves.exec.last", "x"),
                ("dummy.a", 2),
            ):
                response = await remote.post("/write", json={"name": name, "value": value})
                if response.status_code == 200:
                    allowed.add(name)
                    # the answer shows the value written, not the one the device still shows
                    assert response.json()["value"] == value
                else:
                    code = response.json()["error"]["code"]
                    assert (response.status_code, code) in {
                        (403, "not_allowed"),
                        (403, "control_disabled"),
                    }
            assert allowed == writable
    assert {name for name, _ in Valves.written} == writable - {"dummy.a"}
    assert leaf.points["valves.valve"].value == 0  # the device never confirmed
