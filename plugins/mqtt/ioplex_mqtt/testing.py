"""Private brokers on loopback, for tests and benchmarks of mqtt I/O servers.

Testing against the real engines catches what a fake cannot (retained messages, last wills,
session takeover, a NATS cluster's JetStream-backed MQTT sessions). Each broker here runs in
the foreground from Debian's package, with its own config, data directory and free loopback
ports in a work directory, and is killed afterwards; nothing of the machine's own services
is touched. `ensure_package` installs a missing package with apt-get (as root), with the
container guard that keeps the package from starting a system-wide service::

    with Mosquitto(tmp_path) as broker:
        ...  # broker.port
    with NatsCluster(tmp_path, nodes=3) as cluster:
        ...  # cluster.mqtt_ports; cluster.kill(0); cluster.start(0)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import anyio
import ioplex
from ioplex.testing import ensure_debian_package, free_ports

MOSQUITTO = Path("/usr/sbin/mosquitto")
NATS_SERVER = Path("/usr/sbin/nats-server")
START_TIMEOUT = 30.0
ONLY_THIS_PLUGIN = {**os.environ, "IOPLEX_LOAD_PLUGINS": "mqtt"}
"""Hosts in tests load no other installed plugin."""


def ensure_package(binary: Path, package: str) -> Path:
    """`binary`, installing Debian's `package` first when it is missing."""
    return ensure_debian_package(package, binary)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def make_certificates(workdir: Path) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(
        name: str,
        key: Any,
        issuer: Any,
        issuer_key: Any,
        ca: bool,
        usage: Any = None,
        ip: str | None = None,
    ) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if ip is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    workdir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ioplex test CA")])
    ca = issue("ioplex test CA", ca_key, ca_name, ca_key, True)
    files: dict[str, Path] = {}

    def write(label: str, cert: Any, key: Any) -> None:
        files[f"{label}cert"] = workdir / f"{label}.crt"
        files[f"{label}cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            files[f"{label}key"] = workdir / f"{label}.key"
            files[f"{label}key"].write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            files[f"{label}key"].chmod(0o600)

    write("ca", ca, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    write(
        "server",
        issue(
            "127.0.0.1",
            server_key,
            ca_name,
            ca_key,
            False,
            ExtendedKeyUsageOID.SERVER_AUTH,
            "127.0.0.1",
        ),
        server_key,
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    write(
        "client",
        issue("site-a", client_key, ca_name, ca_key, False, ExtendedKeyUsageOID.CLIENT_AUTH),
        client_key,
    )
    return files


def mqtt_accepts(port: int, timeout: float = 5.0) -> bool:
    """Whether the MQTT server on `port` accepts a connection (CONNACK 0), by a bare
    MQTT 3.1.1 CONNECT with a clean session."""
    client = b"ioplex-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client).to_bytes(2, "big") + client
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    return False
                answer += chunk
            sock.sendall(b"\xe0\x00")  # DISCONNECT
            return answer == b"\x20\x02\x00\x00"
    except OSError:
        return False


class _Process:
    """A server process in the foreground, its output in a log file."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, port: int, ready: str | None = None) -> None:
        if self.running:
            return
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not (_listening(port) and (ready is None or ready in self.log(offset))):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.command[0]} did not start; its log:\n{self.log(offset)[-3000:]}"
                )
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def log(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as file:
                file.seek(offset)
                return file.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


class Mosquitto:
    """A Mosquitto on a loopback port of its own. ``users`` ({name: password}) turns on
    password authentication; `set_users` changes them (applied by SIGHUP, as an operator
    reloads). No persistence: a restart loses retained messages, which hosts republish."""

    def __init__(
        self, workdir: Path, users: dict[str, str] | None = None, tls: dict[str, Path] | None = None
    ) -> None:
        """`tls` ({"cafile", "certfile", "keyfile"}) makes the listener TLS-only, requiring
        a client certificate signed by the CA."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        (self.port,) = free_ports(1)
        self.config_path = workdir / "mosquitto.conf"
        self.passwords = workdir / "passwords"
        self.users = users
        self._write()
        self.server = _Process(
            [str(MOSQUITTO), "-c", str(self.config_path)], workdir / "mosquitto.log"
        )

    def _write(self) -> None:
        if self.users is not None:
            ensure_package(MOSQUITTO, "mosquitto")  # for mosquitto_passwd
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
            "max_inflight_messages 1000",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls['cafile']}",
                f"certfile {self.tls['certfile']}",
                f"keyfile {self.tls['keyfile']}",
                "require_certificate true",
            ]
        if os.geteuid() == 0:  # run as root it would switch to user mosquitto, which cannot
            lines.append("user root")  # enter the test's private (0700) directories
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {self.passwords}"]
            self.passwords.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            self.passwords.chmod(0o600)
            subprocess.run(
                ["mosquitto_passwd", "-U", str(self.passwords)],
                check=True,
                capture_output=True,
                timeout=30,
            )
        self.config_path.write_text("\n".join(lines) + "\n")

    def set_users(self, users: dict[str, str]) -> None:
        self.users = users
        self._write()
        self.server.signal(signal.SIGHUP)

    def start(self) -> None:
        ensure_package(MOSQUITTO, "mosquitto")
        self.server.start(self.port)

    def kill(self) -> None:
        self.server.kill()

    def freeze(self) -> None:
        self.server.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.server.signal(signal.SIGCONT)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thaw()
        self.kill()


class NatsCluster:
    """`nodes` nats-servers clustered on loopback, each with JetStream (its own store) and
    an MQTT listener; MQTT sessions and retained messages are replicated by JetStream."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(3 * nodes)
        self.client_ports = ports[:nodes]
        self.cluster_ports = ports[nodes : 2 * nodes]
        self.mqtt_ports = ports[2 * nodes :]
        self.servers: list[_Process] = []
        for i in range(nodes):
            config = workdir / f"n{i}.conf"
            routes = ", ".join(
                f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != i
            )
            store = workdir / f"n{i}-store"
            config.write_text(
                f'server_name: "n{i}"\n'
                f"listen: 127.0.0.1:{self.client_ports[i]}\n"
                f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, '
                f"max_file_store: 512MB }}\n"
                f'cluster {{ name: "ioplex-test", listen: 127.0.0.1:{self.cluster_ports[i]}, '
                f"routes: [{routes}] }}\n"
                f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]}, stream_replicas: {nodes} }}\n"
            )
            self.servers.append(
                _Process([str(NATS_SERVER), "-c", str(config)], workdir / f"n{i}.log")
            )

    def start(self, node: int | None = None) -> None:
        """Start one node (or all), returning once its MQTT listener accepts connections."""
        ensure_package(NATS_SERVER, "nats-server")
        nodes = range(len(self.servers)) if node is None else [node]
        for i in nodes:  # start all before waiting: JetStream needs a quorum to elect
            server = self.servers[i]
            if not server.running:
                offset = server.log_path.stat().st_size if server.log_path.exists() else 0
                with open(server.log_path, "ab") as log:
                    server.process = subprocess.Popen(
                        server.command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                server._offset = offset  # type: ignore[attr-defined]
        deadline = time.monotonic() + 2 * START_TIMEOUT
        for i in nodes:
            # the listener opens before JetStream (where MQTT sessions live) has a leader
            while not mqtt_accepts(self.mqtt_ports[i]):
                server = self.servers[i]
                if not server.running or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nats-server n{i} did not accept MQTT; its log:\n{server.log()[-3000:]}"
                    )
                time.sleep(0.2)

    def kill(self, node: int) -> None:
        self.servers[node].kill()

    def freeze(self, node: int) -> None:
        self.servers[node].signal(signal.SIGSTOP)

    def thaw(self, node: int) -> None:
        self.servers[node].signal(signal.SIGCONT)

    def close(self) -> None:
        for i, server in enumerate(self.servers):
            self.thaw(i)
            server.kill()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- hosts that use the brokers ----------------------------------------------------------------
def host_config(
    tmp_path: Path, name: str, port: int, points: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """A host `name` with dummy points and one mqtt instance named ``mqtt``."""
    data = tmp_path / name
    data.mkdir(parents=True, exist_ok=True)
    servers: dict[str, Any] = {
        "mqtt": {
            "plugin": "mqtt",
            "address": "127.0.0.1",
            "port": port,
            "options": {"keepalive": 5, "timeout": 3, **options},
        },
    }
    if points is not None:
        servers["dummy"] = {"plugin": "dummy", "options": {"points": points}}
    return {
        "host": {
            "name": name,
            "data_dir": str(data),
            "restart_delay": 0.1,
            "restart_max_delay": 0.5,
        },
        "ioservers": servers,
    }


@asynccontextmanager
async def running(config: dict[str, Any], online: bool = True) -> AsyncIterator[ioplex.Host]:
    host = ioplex.Host.from_config(config, environ=ONLY_THIS_PLUGIN)
    async with host:
        if online:
            await host.wait_online("mqtt", timeout=15)
        yield host


async def until(check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    """Wait until `check()` is truthy; fail with `what` after `timeout` seconds."""
    with anyio.move_on_after(timeout):
        while True:
            result = check()
            if result:
                return result
            await anyio.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what or check}")


def value(host: ioplex.Host, name: str) -> Any:
    point = host.points.get(name)
    return None if point is None else (point.value, point.quality.value)


HOST_PROCESS = """
import json, sys
import anyio, ioplex

async def main():
    host = ioplex.Host.from_config(json.loads(sys.argv[1]))
    async with host:
        print("started", flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


def host_process(config: dict[str, Any], log_path: Path) -> subprocess.Popen[bytes]:
    """A host running `config` in a process of its own (to SIGKILL it as a crash would)."""
    import json
    import sys

    log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
    try:
        return subprocess.Popen(
            [sys.executable, "-c", HOST_PROCESS, json.dumps(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=ONLY_THIS_PLUGIN,
            start_new_session=True,
        )
    finally:
        log.close()
