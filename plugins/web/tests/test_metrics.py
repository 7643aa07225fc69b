"""/metrics scraped and parsed by prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

from ioplex import State
from ioplex_web.testing import USERS, client
from prometheus_client.parser import text_string_to_metric_families


def scrape(running: Any, user: str | None = "bob") -> dict[str, Any]:
    with client(running, user) as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    for s in families[name].samples:
        if (sample is None or s.name == sample) and all(
            s.labels.get(k) == v for k, v in labels.items()
        ):
            return s.value
    raise KeyError((name, labels))


def test_metrics(make_host: Any) -> None:
    running = make_host(
        {"users": USERS, "metrics_points": ["dummy.temp.*"]}, rate=0, extra_points={"x": 1}
    )
    io = running.host.ioservers["dummy"]
    for i in range(5):
        running.call(io.set, "light.1", 100 + i)
    running.call(io.set_state, State.RETRYING, "gone")
    running.call(io.set_state, State.ONLINE, None)
    m = scrape(running)
    assert value(m, "ioplex_build_info", host="webtest") == 1
    assert value(m, "ioplex_ioserver_up", ioserver="dummy") == 1
    assert (
        value(m, "ioplex_ioserver_reconnects", "ioplex_ioserver_reconnects_total", ioserver="dummy")
        == 1
    )
    assert value(m, "ioplex_point_updates", "ioplex_point_updates_total", ioserver="dummy") >= 5
    assert value(m, "ioplex_points", ioserver="dummy", quality="good") == 7
    assert value(m, "ioplex_logger_samples", "ioplex_logger_samples_total", logger="climate") >= 0
    assert value(m, "ioplex_bus_events", "ioplex_bus_events_total") >= 0
    running.call(running.host.loggers.flush)
    m = scrape(running)
    assert value(m, "ioplex_logger_batch_seconds", "ioplex_logger_batch_seconds_count") >= 1
    assert "ioplex_rule_fires" in m
    assert value(m, "ioplex_point_value", point="dummy.temp.living") == 21.5
    assert not [
        s for s in m["ioplex_point_value"].samples if s.labels["point"] != "dummy.temp.living"
    ]
    assert "process_cpu_seconds" in m  # process metrics for free
    # an I/O server going down shows
    running.call(io.set_state, State.RETRYING, "gone again")
    assert value(scrape(running), "ioplex_ioserver_up", ioserver="dummy") == 0


def test_metrics_need_a_login_and_can_be_off(make_host: Any) -> None:
    running = make_host({"users": USERS})
    with client(running) as c:
        assert c.get("/metrics").status_code == 401
    off = make_host({"users": USERS, "metrics": False})
    with client(off, "bob") as c:
        assert c.get("/metrics").status_code == 404


def test_two_hosts_have_separate_registries(make_host: Any) -> None:
    a, b = make_host(rate=0), make_host(rate=0)
    running_a = a.host.ioservers["dummy"]
    for i in range(3):
        a.call(running_a.set, "light.1", i + 10)
    ua = value(
        scrape(a, None), "ioplex_point_updates", "ioplex_point_updates_total", ioserver="dummy"
    )
    ub = value(
        scrape(b, None), "ioplex_point_updates", "ioplex_point_updates_total", ioserver="dummy"
    )
    assert ua >= ub + 3
