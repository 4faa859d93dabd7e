"""/metrics: bearer token only, and the figures from known data."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client

from cockpit.models import LastPing
from credentials.models import ConnectionStatus, Partner
from credentials.signals import partner_pinged
from locations.models import LocationSync, SyncState
from ocpi_platform.ocpi.types import now_utc
from outbox.models import DeliveryState
from tests.cockpit.test_dashboard import delivery, partner

pytestmark = pytest.mark.django_db
TOKEN = "metrics-secret-123"


@pytest.fixture
def metrics_on(settings):
    settings.OCPI_METRICS_TOKEN = TOKEN


def scrape(client: Client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` with exactly these labels (in any order), or None."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


def test_metrics_are_off_without_a_token(client: Client, settings):
    settings.OCPI_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_metrics_need_the_bearer_token(client: Client, metrics_on):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert TOKEN not in refused.content.decode()
    assert refused["WWW-Authenticate"].startswith("Bearer")


def test_partner_outbox_ping_and_pull_figures(client: Client, metrics_on):
    now = now_utc()
    acme = partner("Acme")
    beta = partner("Beta", ConnectionStatus.OFFLINE, status_since=now)
    delivery(beta, at=now - timedelta(seconds=600), state=DeliveryState.PENDING)
    delivery(beta, at=now, state=DeliveryState.PENDING)
    delivery(acme, at=now, state=DeliveryState.FAILED, error="HTTP 400")
    delivery(acme, at=now)
    partner_pinged.send(sender=Partner, partner_id=acme.pk, millis=250, ok=True)
    partner_pinged.send(sender=Partner, partner_id=beta.pk, millis=10_000, ok=False)
    LocationSync.objects.create(
        partner=acme,
        state=SyncState.DONE,
        started_at=now - timedelta(seconds=30),
        finished_at=now - timedelta(seconds=18),
        synced_until=now - timedelta(seconds=30),
    )

    text = scrape(client)

    assert value(text, "ocpi_partners", status="CONNECTED") == 1
    assert value(text, "ocpi_partners", status="OFFLINE") == 1
    assert value(text, "ocpi_partners", status="SUSPENDED") == 0
    assert value(text, "ocpi_outbox_pending", partner="Beta") == 2
    assert value(text, "ocpi_outbox_pending", partner="Acme") == 0
    age = value(text, "ocpi_outbox_oldest_pending_age_seconds", partner="Beta")
    assert age is not None
    assert 600 <= age < 660
    assert value(text, "ocpi_outbox_oldest_pending_age_seconds", partner="Acme") is None
    assert value(text, "ocpi_outbox_deliveries", partner="Acme", state="FAILED") == 1
    assert value(text, "ocpi_outbox_deliveries", partner="Acme", state="SENT") == 1
    assert value(text, "ocpi_partner_ping_seconds", partner="Acme") == 0.25
    assert value(text, "ocpi_partner_ping_ok", partner="Beta") == 0
    assert value(text, "ocpi_pull_duration_seconds", partner="Acme", module="locations") == 12
    assert LastPing.objects.count() == 2


def test_inbound_requests_are_counted_by_module_method_and_status(
    client: Client, metrics_on, registered
):
    def count(text: str) -> float:
        labels = {"module": "versions", "method": "GET", "status": "401"}
        return value(text, "ocpi_inbound_requests_total", **labels) or 0.0

    before = count(scrape(client))
    assert client.get("/ocpi/versions").status_code == 401  # no token
    assert client.get("/ocpi/versions").status_code == 401

    after = scrape(client)
    assert count(after) == before + 2
    assert 'ocpi_inbound_request_duration_seconds_count{module="versions"}' in after
    # The admin and the probes are not OCPI requests.
    assert 'module="admin"' not in after
