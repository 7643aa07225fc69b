"""Live values over server-sent events: snapshot then changes, resuming with Last-Event-ID,
falling back to a snapshot, and the bound on watchers."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from ioplex_web.testing import USERS, client


def events(response: httpx.Response, limit: int) -> list[tuple[str, str | None, Any]]:
    """(event, id, data) of the next `limit` events (comments skipped)."""
    out: list[tuple[str, str | None, Any]] = []
    event, eid, data = "message", None, []
    lines = response.__dict__.setdefault("_test_lines", response.iter_lines())
    for line in lines:
        if line == "":
            if data:
                out.append((event, eid, json.loads("\n".join(data))))
                if len(out) >= limit:
                    return out
            event, eid, data = "message", None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            eid = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return out


def test_snapshot_then_changes_and_resume(make_host: Any) -> None:
    running = make_host({"users": USERS}, rate=0)
    host = running.host
    with client(running, "bob") as c:
        with c.stream("GET", "/api/v1/watch", params={"pattern": "dummy.light.*"}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            ((kind, _snap_id, snap),) = events(r, 1)
            assert kind == "snapshot" and snap["done"] and snap["total"] == 2
            assert [p["name"] for p in snap["points"]] == ["dummy.light.1", "dummy.light.2"]
            running.call(host.ioservers["dummy"].set, "label", "not watched")
            running.call(host.ioservers["dummy"].set, "light.1", 41)
            ((kind, first_id, rows),) = events(r, 1)
            assert kind == "changes" and rows == [["dummy.light.1", 41, "good", rows[0][3]]]
        # changes while disconnected come back on reconnect, without a snapshot
        running.call(host.ioservers["dummy"].set, "light.1", 42)
        running.call(host.ioservers["dummy"].set, "light.2", 43)
        with c.stream(
            "GET",
            "/api/v1/watch",
            params={"pattern": "dummy.light.*"},
            headers={"last-event-id": first_id},
        ) as r:
            ((kind, _, rows),) = events(r, 1)
            assert kind == "changes"
            assert [row[:2] for row in rows] == [["dummy.light.1", 42], ["dummy.light.2", 43]]
        # an id from another run of the server (or garbage) gets a fresh snapshot
        for stale in ("0000-1", "garbage", first_id.split("-")[0] + "-999999999"):
            with c.stream(
                "GET",
                "/api/v1/watch",
                params={"pattern": "dummy.light.*"},
                headers={"last-event-id": stale},
            ) as r:
                ((kind, _, snap),) = events(r, 1)
                assert kind == "snapshot" and snap["points"][0]["value"] == 42


def test_watch_needs_a_login_and_is_bounded(make_host: Any) -> None:
    running = make_host({"users": USERS, "max_watchers": 2}, rate=0)
    with client(running) as anonymous:
        assert anonymous.get("/api/v1/watch").status_code == 401
    with client(running, "bob") as c:
        with c.stream("GET", "/api/v1/watch") as a, c.stream("GET", "/api/v1/watch") as b:
            assert events(a, 1)[0][0] == events(b, 1)[0][0] == "snapshot"
            r = c.get("/api/v1/watch")
            assert r.status_code == 503 and r.json()["error"]["code"] == "busy"
        # closed streams free their slots (as soon as the server sees the disconnect)
        deadline = time.monotonic() + 10
        while (
            c.get("/api/v1/metrics".replace("/api/v1", "")).text.count("ioplex_web_watchers 0.0")
            == 0
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        with c.stream("GET", "/api/v1/watch") as again:
            assert events(again, 1)[0][0] == "snapshot"


def test_ui_watch_and_values_out_of_json(make_host: Any) -> None:
    running = make_host({"users": USERS}, rate=0)
    with client(running, "alice") as c, c.stream("GET", "/api/v1/ui-watch") as r:
        assert events(r, 1)[0][2]["points"][0]["name"] == "dummy.alarm.text"
        c.put("/api/v1/ui/dummy.alarm.text", json={"value": "line\nbreak \u202e"})
        ((_kind, _, rows),) = events(r, 1)
        assert rows[0][:2] == ["dummy.alarm.text", "line\nbreak \u202e"]


def test_many_changes_in_one_event(make_host: Any) -> None:
    running = make_host({"users": USERS}, rate=0)
    io = running.host.ioservers["dummy"]
    with client(running, "bob") as c:  # noqa: SIM117 - the stream's lifetime is the point
        with c.stream("GET", "/api/v1/watch", params={"pattern": "dummy.light.1"}) as r:
            events(r, 1)

            def burst() -> None:
                for i in range(20_000):
                    io.set("light.1", i)

            running.call(burst)
            seen: list[int] = []
            while not seen or seen[-1] != 19_999:
                for kind, _, rows in events(r, 1):
                    if kind == "changes":
                        seen += [row[1] for row in rows]
                    elif kind == "snapshot":
                        seen.append(rows["points"][0]["value"])
            assert seen == sorted(seen) and seen[-1] == 19_999


def test_a_watcher_behind_the_ring_gets_a_reset_and_a_snapshot(make_host: Any) -> None:
    from ioplex_web.feed import RING_SIZE

    running = make_host({"users": USERS}, rate=0)
    io = running.host.ioservers["dummy"]
    with client(running, "bob") as c:  # noqa: SIM117 - the stream's lifetime is the point
        with c.stream("GET", "/api/v1/watch", params={"pattern": "dummy.light.1"}) as r:
            events(r, 1)

            def burst() -> None:  # all in one go: the stream cannot read in between
                for i in range(RING_SIZE + 10):
                    io.set("light.1", i)

            running.call(burst)
            kinds = events(r, 2)
            assert [k for k, _, _ in kinds] == ["reset", "snapshot"]
            assert kinds[1][2]["points"][0]["value"] == RING_SIZE + 9
