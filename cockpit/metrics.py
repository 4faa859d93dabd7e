"""Prometheus metrics at /metrics (see the README section "Monitoring" for the alerts).

Two kinds:
- inbound requests are counted by the web process that served them (the middleware). With
  several gunicorn workers set PROMETHEUS_MULTIPROC_DIR to an empty folder (emptied at each
  start) so that /metrics adds up all of them; without it each process reports its own.
- everything else (partners, outbox, pings, pulls, heartbeats) is read from the database at
  scrape time, so it is the same whichever process answers and includes the workers' work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ocpi_platform.ocpi.types import now_utc

from . import dashboard
from .models import Heartbeat, LastPing

INBOUND_REQUESTS = Counter(
    "ocpi_inbound_requests",
    "Requests partners made to us, by OCPI module, HTTP method and HTTP status.",
    ["module", "method", "status"],
)
INBOUND_SECONDS = Histogram(
    "ocpi_inbound_request_duration_seconds",
    "Time to answer a partner's request, by OCPI module.",
    ["module"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def count_inbound(module: str, method: str, status: int, seconds: float) -> None:
    key = (module, method, status)
    children = _children.get(key)
    if children is None:
        children = (
            INBOUND_REQUESTS.labels(module, method, str(status)),
            INBOUND_SECONDS.labels(module),
        )
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = now_utc()
        status = dashboard.partners_by_status()
        partners = GaugeMetricFamily(
            "ocpi_partners", "Registered partners by HubClientInfo status.", labels=["status"]
        )
        for name, count in sorted(status.counts.items()):
            partners.add_metric([name], count)
        yield partners
        yield GaugeMetricFamily(
            "ocpi_partners_not_registered",
            "Partners invited, registering or failed (not unregistered).",
            value=status.not_registered,
        )

        box = dashboard.outbox()
        depth = GaugeMetricFamily(
            "ocpi_outbox_pending",
            "Deliveries pending or in flight, per partner.",
            labels=["partner"],
        )
        age = GaugeMetricFamily(
            "ocpi_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending delivery, per partner (absent: nothing pending).",
            labels=["partner"],
        )
        for row in box.rows:
            depth.add_metric([row.name], row.pending)
            oldest = row.oldest_age(now)
            if oldest is not None:
                age.add_metric([row.name], oldest)
        yield depth
        yield age

        outcomes = GaugeMetricFamily(
            "ocpi_outbox_deliveries",
            "Deliveries kept in the outbox by partner and outcome (state); SENT and CANCELLED "
            "rows are pruned after OCPI_RETENTION_DAYS, FAILED ones stay until handled.",
            labels=["partner", "state"],
        )
        for _pk, name, state, count in dashboard.deliveries_by_state():
            outcomes.add_metric([name, state], count)
        yield outcomes

        latency = GaugeMetricFamily(
            "ocpi_partner_ping_seconds",
            "Duration of the last ping (GET versions) of each partner.",
            labels=["partner"],
        )
        ping_ok = GaugeMetricFamily(
            "ocpi_partner_ping_ok", "1 if the last ping answered, else 0.", labels=["partner"]
        )
        for ping in LastPing.objects.select_related("partner").order_by("partner__name"):
            latency.add_metric([ping.partner.name], ping.millis / 1000)
            ping_ok.add_metric([ping.partner.name], 1 if ping.ok else 0)
        yield latency
        yield ping_ok

        duration = GaugeMetricFamily(
            "ocpi_pull_duration_seconds",
            "Duration of the last finished pull, per partner and module.",
            labels=["partner", "module"],
        )
        synced = GaugeMetricFamily(
            "ocpi_pull_last_success_timestamp_seconds",
            "Start of the last successful pull (Unix time), per partner and module.",
            labels=["partner", "module"],
        )
        for pull in dashboard.last_pulls():
            if pull.duration is not None:
                duration.add_metric([pull.name, pull.module], pull.duration)
            if pull.synced_until is not None:
                synced.add_metric([pull.name, pull.module], pull.synced_until.timestamp())
        yield duration
        yield synced

        beats = GaugeMetricFamily(
            "ocpi_heartbeat_age_seconds",
            "Seconds since the last sign of life of beat and of a worker.",
            labels=["process"],
        )
        for beat in Heartbeat.objects.order_by("name"):
            beats.add_metric([beat.name], (now - beat.at).total_seconds())
        yield beats


_database = CollectorRegistry(auto_describe=False)
_database.register(DatabaseCollector())


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
        local = generate_latest(processes)
    else:
        local = generate_latest(REGISTRY)
    return local + generate_latest(_database), CONTENT_TYPE_LATEST
