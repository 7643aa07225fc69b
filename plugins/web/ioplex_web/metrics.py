"""Prometheus metrics of one host, in a registry of its own (never prometheus_client's global
one: two hosts in a process, or a test, must not see each other's series).

Gauges are read from the host at scrape time; counters of point updates and rule firings
are kept by one registry listener. Per-point series exist only for the points matched by
``metrics_points`` (opt-in: a series per point multiplies a scrape's size).
"""

from __future__ import annotations

import fnmatch
import platform
import re
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ioplex import Quality, State
from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .health import HealthBoard

RULE_PREFIX = "events."
"""The events plugin's rules show as points ``events.<file>.<line>`` (their last firing)."""


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


class HostCollector(Collector):
    def __init__(
        self, host: Any, board: HealthBoard, points: tuple[str, ...], web: Any = None
    ) -> None:
        self.host = host
        self.board = board
        self.web = web
        self.updates: Counter[str] = Counter()
        self.fires: Counter[str] = Counter()
        self._per_point = (
            re.compile("|".join(fnmatch.translate(p) for p in points)).match if points else None
        )
        self._listener = host.points.listen(self._on_change, "*")
        self.batch_seconds = Histogram(
            "ioplex_logger_batch_seconds",
            "Time to commit one batch of data-logger samples",
            registry=None,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
        )
        self._loggers = host.loggers
        self._loggers.batch_observers.append(self._batch)

    def _batch(self, seconds: float, rows: int) -> None:
        self.batch_seconds.observe(seconds)

    def close(self) -> None:
        self._listener.close()
        if self._batch in self._loggers.batch_observers:
            self._loggers.batch_observers.remove(self._batch)

    def _on_change(self, event: Any) -> None:
        name = event[0]
        instance = name[: name.find(".")]
        self.updates[instance] += 1
        if instance == "events":
            self.fires[name[len(RULE_PREFIX) :]] += 1

    def collect(self) -> Any:
        host = self.host
        info = GaugeMetricFamily(
            "ioplex_build_info",
            "ioplex build and host",
            labels=["version", "web_version", "python", "host"],
        )
        info.add_metric(
            [_version("ioplex"), _version("ioplex-web"), platform.python_version(), host.name], 1
        )
        yield info
        up = GaugeMetricFamily(
            "ioplex_ioserver_up", "1 when the I/O server is online", labels=["ioserver"]
        )
        reconnects = CounterMetricFamily(
            "ioplex_ioserver_reconnects",
            "Times the I/O server came back online after being "
            "online (since the web server started)",
            labels=["ioserver"],
        )
        for entry in self.board.ioservers():
            up.add_metric([entry.name], 1.0 if entry.state == State.ONLINE else 0.0)
            reconnects.add_metric([entry.name], entry.reconnects)
        yield up
        yield reconnects
        updates = CounterMetricFamily(
            "ioplex_point_updates",
            "Point changes (value or quality) per I/O server",
            labels=["ioserver"],
        )
        for name in sorted(self.updates):
            updates.add_metric([name], self.updates[name])
        yield updates
        counts: Counter[tuple[str, str]] = Counter()
        for point in host.points.values():
            owner = point.owner
            counts[(owner.name if owner is not None else "", point.quality)] += 1
        gauge = GaugeMetricFamily(
            "ioplex_points", "Points per I/O server and quality", labels=["ioserver", "quality"]
        )
        for (io, quality), n in sorted(counts.items()):
            gauge.add_metric([io, str(quality)], n)
        yield gauge
        samples = CounterMetricFamily(
            "ioplex_logger_samples",
            "Samples committed per data logger since the host started",
            labels=["logger"],
        )
        dropped = CounterMetricFamily(
            "ioplex_logger_dropped",
            "Samples a data logger dropped because its queue was full",
            labels=["logger"],
        )
        for lid, lg in sorted(host.loggers.items()):
            samples.add_metric([lid], lg.recorded)
            dropped.add_metric([lid], lg.dropped)
        yield samples
        yield dropped
        yield CounterMetricFamily(
            "ioplex_bus_events", "Events published on the event bus", value=host.bus.published
        )
        yield CounterMetricFamily(
            "ioplex_registry_refused",
            "Values refused by the value contract",
            value=host.points.refused + host.ui.refused,
        )
        fires = CounterMetricFamily(
            "ioplex_rule_fires", "Firings per rule (events plugin)", labels=["rule"]
        )
        for rule in sorted(self.fires):
            fires.add_metric([rule], self.fires[rule])
        yield fires
        if self._per_point is not None:
            value = GaugeMetricFamily(
                "ioplex_point_value", "Opt-in per-point values (metrics_points)", labels=["point"]
            )
            for point in host.points.values():
                v = point.value
                if (
                    self._per_point(point.name)
                    and isinstance(v, (int, float))
                    and point.quality is Quality.GOOD
                ):
                    value.add_metric([point.name], float(v))
            yield value
        if self.web is not None:
            yield GaugeMetricFamily(
                "ioplex_web_watchers", "Open server-sent event streams", value=self.web.watchers
            )
            yield CounterMetricFamily(
                "ioplex_web_auth_failures",
                "Wrong passwords",
                value=self.web.access.throttle.failures,
            )


def make_registry(
    host: Any, board: HealthBoard, points: tuple[str, ...], web: Any = None
) -> tuple[CollectorRegistry, HostCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = HostCollector(host, board, points, web)
    registry.register(collector)
    registry.register(collector.batch_seconds)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry, collector
