"""``ioplex points/get/set/watch/status``: a running host, through its web API.

The URL comes from ``--url`` or ``IOPLEX_URL`` (default ``http://127.0.0.1:8080``);
credentials from ``IOPLEX_USER`` and ``IOPLEX_PASSWORD`` or from a file named by
``--credentials`` / ``IOPLEX_CREDENTIALS`` holding ``user:password`` — never from the
command line, where every user of the machine could read them. Exit status 0 on success,
1 when the host refused or failed, 2 for bad usage, 3 when the host cannot be reached.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import click
import httpx
from ioplex.points import printable
from ioplex.serving import jsontext

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
TIMEOUT = 30.0


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def _credentials(path: str | None) -> tuple[str, str] | None:
    path = path or os.environ.get("IOPLEX_CREDENTIALS")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            _fail(f"--credentials: cannot read {path}: {exc.strerror}", EXIT_USAGE)
        name, sep, password = text.partition(":")
        if not sep or not name:
            _fail(f"--credentials: {path} must hold user:password on one line", EXIT_USAGE)
        return name, password
    user, password = os.environ.get("IOPLEX_USER"), os.environ.get("IOPLEX_PASSWORD")
    if user and password is not None:
        return user, password
    return None


class Client:
    def __init__(self, url: str | None, credentials: str | None, cacert: str | None) -> None:
        self.url = (url or os.environ.get("IOPLEX_URL") or DEFAULT_URL).rstrip("/")
        cafile = cacert or os.environ.get("IOPLEX_CACERT")
        verify: Any = True
        if cafile:
            try:
                verify = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                _fail(f"--cacert: cannot use {cafile}: {exc}", EXIT_USAGE)
        self.http = httpx.Client(
            base_url=self.url, auth=_credentials(credentials), verify=verify, timeout=TIMEOUT
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {self.url}: {exc}", EXIT_UNREACHABLE)
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200] or response.reason_phrase
            hint = (
                " (set IOPLEX_USER and IOPLEX_PASSWORD, or --credentials FILE)"
                if response.status_code == 401
                else ""
            )
            _fail(f"{response.status_code}: {message}{hint}", EXIT_REFUSED)
        return jsontext.loads(response.content)


def _stamp(when: float | None) -> str:
    if when is None:
        return "-"
    return datetime.datetime.fromtimestamp(when).strftime("%H:%M:%S")


def _value(point: dict[str, Any]) -> str:
    value = point["value"]
    text = repr(printable(value, 200)) if isinstance(value, str) else json.dumps(value)
    unit = point.get("unit")
    return f"{text} {printable(str(unit), 20)}" if unit and value is not None else text


def convert(text: str, type_name: str | None) -> Any:
    """VALUE as the point's type: a str point takes the text as it is."""
    if type_name == "str":
        return text
    if type_name == "bool":
        low = text.strip().lower()
        if low in ("1", "true", "on", "yes"):
            return True
        if low in ("0", "false", "off", "no"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false, on/off, 1/0)")
    if type_name == "int":
        return int(text, 0)
    if type_name == "float":
        return float(text)
    if text == "null":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_commands(cli: click.Group) -> None:
    def common(func: Any) -> Any:
        func = click.option(
            "--url", help=f"The host's web server (default $IOPLEX_URL or {DEFAULT_URL})."
        )(func)
        func = click.option(
            "--credentials",
            type=click.Path(dir_okay=False),
            help="A file holding user:password (default $IOPLEX_CREDENTIALS; "
            "or $IOPLEX_USER and $IOPLEX_PASSWORD).",
        )(func)
        func = click.option(
            "--cacert",
            type=click.Path(dir_okay=False),
            help="CA or self-signed certificate to trust for HTTPS.",
        )(func)
        func = click.option("--ui", is_flag=True, help="UI variables instead of data points.")(func)
        return func

    def base(ui: bool) -> str:
        return "/api/v1/ui" if ui else "/api/v1/points"

    @cli.command(name="points")
    @click.argument("pattern", required=False, default="*")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @common
    def points(
        pattern: str,
        as_json: bool,
        url: str | None,
        credentials: str | None,
        cacert: str | None,
        ui: bool,
    ) -> None:
        """List the points of a running host matching PATTERN (default every point)."""
        client = Client(url, credentials, cacert)
        offset, items = 0, []
        while True:
            page = client.request(
                "GET", base(ui), params={"pattern": pattern, "offset": offset, "limit": 10000}
            )
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        if as_json:
            click.echo(jsontext.dumps(items, indent=2))
            return
        for p in items:
            click.echo(
                f"{p['name']}  {_value(p)}  {p['quality']}  {_stamp(p['changed'])}"
                + ("  writable" if p["writable"] else "")
            )

    @cli.command(name="get")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print the point as JSON.")
    @common
    def get(
        name: str,
        as_json: bool,
        url: str | None,
        credentials: str | None,
        cacert: str | None,
        ui: bool,
    ) -> None:
        """Print the value of the point NAME of a running host."""
        point = Client(url, credentials, cacert).request("GET", f"{base(ui)}/{quote(name)}")
        if as_json:
            click.echo(jsontext.dumps(point, indent=2))
        else:
            click.echo(
                _value(point) + ("" if point["quality"] == "good" else f"  ({point['quality']})")
            )

    @cli.command(name="set")
    @click.argument("name")
    @click.argument("value")
    @common
    def set_(
        name: str,
        value: str,
        url: str | None,
        credentials: str | None,
        cacert: str | None,
        ui: bool,
    ) -> None:
        """Write VALUE to the point NAME of a running host (role write)."""
        client = Client(url, credentials, cacert)
        path = f"{base(ui)}/{quote(name)}"
        try:
            point = client.http.get(path)
            type_name = point.json().get("type") if point.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            type_name = None
        try:
            converted = convert(value, type_name)
        except ValueError as exc:
            _fail(f"{name}: {exc}", EXIT_USAGE)
        client.request(
            "PUT",
            path,
            content=jsontext.dumps({"value": converted}),
            headers={"content-type": "application/json"},
        )

    @cli.command(name="watch")
    @click.argument("patterns", nargs=-1)
    @common
    def watch(
        patterns: tuple[str, ...],
        url: str | None,
        credentials: str | None,
        cacert: str | None,
        ui: bool,
    ) -> None:
        """Print the matching points of a running host, then every change (Ctrl-C stops);
        reconnects and resumes where it left off when the connection drops."""
        client = Client(url, credentials, cacert)
        path = "/api/v1/ui-watch" if ui else "/api/v1/watch"
        last_id: str | None = None
        import time

        delay = 0.5
        while True:
            headers = {"last-event-id": last_id} if last_id else {}
            try:
                with client.http.stream(
                    "GET",
                    path,
                    params={"pattern": list(patterns or ["*"])},
                    headers=headers,
                    timeout=httpx.Timeout(TIMEOUT, read=60),
                ) as r:
                    if r.status_code >= 400:
                        r.read()
                        client._answer(r)
                    delay = 0.5
                    event, data = "message", []
                    for line in r.iter_lines():
                        if line == "":
                            if data:
                                _show(event, "\n".join(data))
                            event, data = "message", []
                        elif line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            data.append(line[5:].lstrip())
                        elif line.startswith("id:"):
                            last_id = line[3:].strip() or last_id
            except KeyboardInterrupt:
                return
            except httpx.HTTPError as exc:
                click.echo(f"warning: connection to {client.url} lost ({exc}); retrying", err=True)
            time.sleep(delay)
            delay = min(delay * 2, 10)

    def _show(event: str, data: str) -> None:
        payload = jsontext.loads(data)
        if event == "snapshot":
            for p in payload["points"]:
                click.echo(
                    f"{_stamp(p['changed'])} {p['name']} = {_value(p)}"
                    + ("" if p["quality"] == "good" else f" ({p['quality']})")
                )
        elif event == "changes":
            for name, value, quality, when in payload:
                text = repr(printable(value, 200)) if isinstance(value, str) else json.dumps(value)
                click.echo(
                    f"{_stamp(when)} {name} = {text}"
                    + ("" if quality == "good" else f" ({quality})")
                )
        sys.stdout.flush()

    @cli.command(name="status")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @common
    def status(
        as_json: bool, url: str | None, credentials: str | None, cacert: str | None, ui: bool
    ) -> None:
        """Print the health of a running host's I/O servers and plugin services; exit 1
        when it is not ready."""
        client = Client(url, credentials, cacert)
        ios = client.request("GET", "/api/v1/ioservers")["items"]
        services = client.request("GET", "/api/v1/services")["items"]
        try:
            ready = client.http.get("/readyz").status_code == 200
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {client.url}: {exc}", EXIT_UNREACHABLE)
        if as_json:
            click.echo(
                jsontext.dumps({"ready": ready, "ioservers": ios, "services": services}, indent=2)
            )
        else:
            rows = [("KIND", "NAME", "STATE", "SINCE", "RECONNECTS", "DETAIL")]
            for e in ios + services:
                rows.append(
                    (
                        e["kind"],
                        e["name"],
                        e["state"],
                        _stamp(e["since"]),
                        str(e["reconnects"]),
                        printable(e["detail"] or e.get("last_error") or "", 60),
                    )
                )
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            for r in rows:
                click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
            click.echo("ready" if ready else "not ready")
        if not ready:
            sys.exit(EXIT_REFUSED)
