"""``GET /metrics``: the server's counters in the Prometheus text format (``prometheus_client``).

Values are read when scraped (a custom collector), so nothing on the delivery path pays for
metrics. Every name starts with ``ssewatch_``; docs/metrics.md lists them with a scrape config
and a Grafana query. No user ids or payloads appear: only process-wide counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from tornado.web import RequestHandler

from dashboard.backend import Backend
from sse_core import ConnectionState, connection_status
from sse_core.http import EventStreamEndpoint

PREFIX = "ssewatch"

# (metric suffix, SubscriberStats field, help): one counter family each, labelled by consumer.
_STAT_COUNTERS = (
    ("events_replayed", "replayed", "Events delivered from retention (resumes, recoveries)."),
    ("events_dropped", "dropped", "Events not queued because a consumer's queue was full."),
    ("lagged", "lagged", "Times a consumer fell behind its bounded queue."),
    ("events_malformed", "malformed", "Malformed messages or stream entries skipped."),
    ("stream_gaps", "gaps", "Gaps retention could not fill (events may be missing)."),
    ("stream_recoveries", "recoveries", "Catch-ups from retention after a lag or reconnect."),
)


class ServerCollector(Collector):
    """Everything one ``ssewatch serve`` process knows, as Prometheus metric families."""

    def __init__(self, backend: Backend, endpoint: EventStreamEndpoint | None = None) -> None:
        self.backend = backend
        self.endpoint = endpoint

    def collect(self) -> Iterator[Metric]:
        telemetry = self.backend.telemetry
        delivered = CounterMetricFamily(
            f"{PREFIX}_events_delivered",
            "Events delivered to dashboard views, by category (live and back-filled).",
            labels=["category"],
        )
        for category, count in telemetry.delivered.items():
            delivered.add_metric([category.value], count)
        yield delivered
        if self.endpoint is not None:
            stats = self.endpoint.subscriber.stats
            yield CounterMetricFamily(
                f"{PREFIX}_sse_events_sent",
                "Events sent on GET /events connections (live and replayed).",
                value=stats.delivered + stats.replayed,
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_events_connections",
                "Open GET /events connections.",
                value=self.endpoint.active_streams,
            )
        totals = {"dashboard": telemetry.subscriber_stats()}
        if self.endpoint is not None:
            totals["events"] = self.endpoint.subscriber.stats
        for suffix, name, text in _STAT_COUNTERS:
            family = CounterMetricFamily(f"{PREFIX}_{suffix}", text, labels=["consumer"])
            for consumer, stats in totals.items():
                family.add_metric([consumer], getattr(stats, name))
            yield family
        replays = CounterMetricFamily(
            f"{PREFIX}_replays",
            "Replays loaded in the dashboard's replay panel, by whether they were complete.",
            labels=["complete"],
        )
        for complete, count in telemetry.replays.items():
            replays.add_metric([str(complete).lower()], count)
        yield replays
        yield GaugeMetricFamily(
            f"{PREFIX}_dashboard_sessions", "Open dashboard views.", value=telemetry.sessions
        )
        status = connection_status(self.backend.client)  # one server or a cluster
        yield GaugeMetricFamily(
            f"{PREFIX}_live_subscriptions",
            "Live subscriptions on the shared Redis pub/sub connection.",
            value=status.subscriptions,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_redis_connected",
            "1 while the shared Redis pub/sub connection is up (0: idle or reconnecting).",
            value=int(status.state is ConnectionState.CONNECTED),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_redis_reconnects",
            "Times the shared Redis pub/sub connection was re-established.",
            value=status.reconnects,
        )


def metrics_registry(backend: Backend, endpoint: EventStreamEndpoint | None) -> CollectorRegistry:
    """A registry of its own per server (never the global one: two servers in one process,
    as in tests, must not mix), with the process's CPU and memory as ``ssewatch_process_*``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(backend, endpoint))
    ProcessCollector(namespace=PREFIX, registry=registry)
    return registry


class MetricsHandler(RequestHandler):
    """``GET /metrics`` for Prometheus (runs on the server's loop, where the hub lives)."""

    registry: CollectorRegistry

    def initialize(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.finish(generate_latest(self.registry))


def metrics_route(
    backend: Backend, endpoint: EventStreamEndpoint | None, path: str = "/metrics"
) -> tuple[str, type[RequestHandler], dict[str, Any]]:
    return (path, MetricsHandler, {"registry": metrics_registry(backend, endpoint)})
