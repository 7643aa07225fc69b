"""Adversarial figures, per surface, against one `ioplex run` host with both servers on loopback.

Prints, for the VSCP link server and the hsyco_remote HTTPS server:
- inputs tried and what the host logged: tracebacks (goal 0) and log lines;
- RSS of the host process before and after a pre-login HELP flood (goal: growth < 50 MB);
- time for a good client to log in during the flood plus 64 idle connections (goal < 1 s),
  against the same login on the idle host (the baseline of this run).

    .venv/bin/python bench/bench_adversarial.py [--seconds 10] [--inputs 3000]

Everything stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

PASSWORD = "bench-secret-password"
CONFIG = """
[host]
name = "bench"
data_dir = "data"

[ioservers.dummy]
plugin = "dummy"
options = {{ points = {{ "n" = 0, "t" = 1.5, "s" = "x" }} }}

[loggers.all]
points = ["dummy.*"]

[plugins.vscp_link.server]
enabled = true
listen = "127.0.0.1:{vscp}"

[[plugins.vscp_link.server.users]]
name = "bench"
password = "{password}"

[plugins.hsyco_remote.server]
listen = "127.0.0.1:{https}"
password = "{password}"
address = "127.0.0.1"
control = ["dummy.*"]
"""

VSCP_WORDS = [
    "NOOP",
    "HELP",
    "USER",
    "PASS",
    "SEND",
    "RETR",
    "RCVLOOP",
    "QUITLOOP",
    "CDTA",
    "CLRA",
    "STAT",
    "INFO",
    "CHID",
    "SGID",
    "GGID",
    "VERS",
    "SFLT",
    "SMSK",
    "WCYD",
    "INTERFACE LIST",
    "TEST",
    "MEASUREMENT",
    "+",
    "BINARY",
    "RESTART",
]
FIELDS = [
    "0",
    "10",
    "6",
    "-1",
    "65536",
    "0x1FF",
    "99999999999999999999",
    "",
    "-",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59",
    "FF:" * 15 + "FF",
    "1.5e400",
    "nan",
    "\u202e",
    "%s%n",
    "\x00",
    "0,0,0,0,0,0,0,0",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def vscp_line(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.2:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 60))) + b"\r\n"
    word = rng.choice(VSCP_WORDS)
    if rng.random() < 0.3:
        word = word[: rng.randint(1, len(word))]
    args = ",".join(rng.choice(FIELDS) for _ in range(rng.randint(0, 9)))
    return f"{word} {args}\r\n".encode("utf-8", "surrogatepass")


def vscp_session(port: int, user: str, password: str, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    read_reply(sock)
    for line in (f"USER {user}\r\n", f"PASS {password}\r\n"):
        sock.sendall(line.encode())
        read_reply(sock)
    return sock


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not (data.endswith(b"+OK\r\n") or b"-OK" in data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if b"+OK" in data.splitlines()[-1] if data.splitlines() else False:
            break
    return data


def time_login(port: int) -> float:
    start = time.perf_counter()
    sock = vscp_session(port, "bench", PASSWORD)
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed


def fuzz_vscp(port: int, inputs: int, rng: random.Random) -> int:
    tried = 0
    sock = vscp_session(port, "bench", PASSWORD)
    sock.settimeout(2.0)
    try:
        for _ in range(inputs):
            try:
                sock.sendall(vscp_line(rng))
                sock.recv(65536)
            except OSError:  # the server may close a session that asked for too much
                sock.close()
                sock = vscp_session(port, "bench", PASSWORD)
                sock.settimeout(2.0)
            tried += 1
    finally:
        sock.close()
    # and the same before login
    for _ in range(inputs // 10):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as pre:
                pre.recv(4096)
                pre.sendall(vscp_line(rng))
                pre.recv(4096)
        except OSError:
            pass
        tried += 1
    return tried


def help_flood(port: int, clients: int, seconds: float, stop: threading.Event) -> None:
    """Clients that never log in and never read, sending HELP as fast as the server takes it."""

    def one() -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.settimeout(1)
                    while time.monotonic() < deadline and not stop.is_set():
                        sock.sendall(b"HELP\r\n" * 64)
            except OSError:
                time.sleep(0.01)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 5)


def fuzz_https(
    base: str, verify: ssl.SSLContext, inputs: int, rng: random.Random
) -> tuple[int, int]:
    headers = {"Authorization": f"Bearer {PASSWORD}"}
    tried = errors_5xx = 0
    with httpx.Client(base_url=base, verify=verify, timeout=15) as client:
        for i in range(inputs):
            choice = i % 4
            try:
                if choice == 0:
                    junk = "".join(
                        rng.choice("0123456789*%C2B²\u202e&=?/") for _ in range(rng.randint(0, 40))
                    )
                    response = client.get(f"/x/rioget?{junk}")
                elif choice == 1:
                    stamp = "9" * rng.choice((1, 20, 5000))
                    response = client.get(f"/x/rioget?1*{stamp}*{PASSWORD}")
                elif choice == 2:
                    depth = rng.choice((1, 50, 100_000))
                    body = "[" * depth + "]" * depth
                    response = client.post("/api/v1/write", content=body, headers=headers)
                else:
                    value = rng.choice([10**400, 2**63, 1.5, "x" * 70_000, None, True, "ok"])
                    body = (
                        json.dumps({"name": "dummy.n", "value": value})
                        if not (isinstance(value, int) and value > 2**64)
                        else ('{"name": "dummy.n", "value": ' + "9" * 401 + "}")
                    )
                    response = client.post("/api/v1/write", content=body, headers=headers)
                errors_5xx += response.status_code >= 500
            except httpx.HTTPError:
                errors_5xx += 1
            tried += 1
    return tried, errors_5xx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the HELP flood")
    parser.add_argument("--inputs", type=int, default=3000, help="fuzz inputs per surface")
    args = parser.parse_args()
    rng = random.Random(20261129)
    with tempfile.TemporaryDirectory() as tmp:
        vscp_port, https_port = free_port(), free_port()
        config = Path(tmp, "bench.toml")
        config.write_text(CONFIG.format(vscp=vscp_port, https=https_port, password=PASSWORD))
        log_path = Path(tmp, "host.log")
        with log_path.open("w") as log:
            host = subprocess.Popen(
                [sys.executable, "-m", "ioplex", "run", str(config)],
                stderr=log,
                stdout=subprocess.DEVNULL,
                cwd=tmp,
            )
        try:
            info = Path(tmp, "data", "hsyco_remote", "server.json")
            deadline = time.monotonic() + 30
            while not info.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            server = json.loads(info.read_text())
            verify = ssl.create_default_context(cafile=server["certificate"])
            time.sleep(0.5)

            baseline = min(time_login(vscp_port) for _ in range(5))
            tried_vscp = fuzz_vscp(vscp_port, args.inputs, rng)
            tried_https, https_5xx = fuzz_https(server["url"], verify, args.inputs, rng)

            idle = [socket.create_connection(("127.0.0.1", vscp_port)) for _ in range(64)]
            rss_before = rss_mb(host.pid)
            stop = threading.Event()
            flood = threading.Thread(target=help_flood, args=(vscp_port, 20, args.seconds, stop))
            flood.start()
            time.sleep(args.seconds / 2)
            during = time_login(vscp_port)
            rss_peak = rss_mb(host.pid)
            flood.join()
            for sock in idle:
                sock.close()
            time.sleep(1)
            rss_after = rss_mb(host.pid)
            with httpx.Client(verify=verify, timeout=5) as client:
                alive = client.get(
                    f"{server['url']}/api/v1/info", headers={"Authorization": f"Bearer {PASSWORD}"}
                ).status_code
        finally:
            host.terminate()
            host.wait(30)
        text = log_path.read_text(errors="replace")
        tracebacks = text.count("Traceback")
        lines = len(text.splitlines())

    print(f"vscp_link server: {tried_vscp} hostile lines (logged in and before login)")
    print(f"hsyco_remote HTTPS: {tried_https} hostile requests, {https_5xx} answered 5xx (goal 0)")
    print(f"host log for all of it: {tracebacks} tracebacks in {lines} lines (goal: 0 tracebacks)")
    print(
        f"RSS before the pre-login HELP flood: {rss_before:.1f} MB, peak {rss_peak:.1f} MB, "
        f"after {rss_after:.1f} MB (growth {rss_peak - rss_before:+.1f} MB; goal < 50)"
    )
    print(
        f"good client login: {baseline * 1000:.1f} ms idle, {during * 1000:.1f} ms during the "
        f"flood with 64 idle connections (ratio {during / baseline:.1f}x; goal < 1 s)"
    )
    print(f"HTTPS after everything: {alive} (goal 200)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
