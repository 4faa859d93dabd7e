"""The dashboard's figures from known data, and the admin index that shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from cockpit import dashboard
from credentials.models import ConnectionStatus, Initiative, Partner, PartnerState
from locations.models import LocationSync, SyncState
from outbox.models import Delivery, DeliveryState

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def partner(name: str, status: str = ConnectionStatus.CONNECTED, **fields) -> Partner:
    return Partner.objects.create(
        name=name,
        initiated_by=Initiative.PARTNER,
        state=fields.pop("state", PartnerState.REGISTERED),
        status=status,
        **fields,
    )


def delivery(to: Partner, *, at: datetime, state: str = DeliveryState.SENT, error: str = ""):
    return Delivery.objects.create(
        partner=to,
        module="locations",
        key="NL/ABC/LOC1",
        path="NL/ABC/LOC1",
        method="PUT",
        body={},
        state=state,
        last_error=error,
        created_at=at,
        next_attempt_at=at,
    )


@pytest.fixture
def known() -> dict[str, Partner]:
    """Three registered partners (one OFFLINE since 09:00, one SUSPENDED), one invited."""
    acme = partner("Acme")
    beta = partner(
        "Beta", ConnectionStatus.OFFLINE, status_since=NOW - timedelta(hours=3, minutes=30)
    )
    gamma = partner("Gamma", ConnectionStatus.SUSPENDED, status_since=NOW - timedelta(days=2))
    partner("Newco", ConnectionStatus.PLANNED, state=PartnerState.INVITED)
    partner("Gone", ConnectionStatus.OFFLINE, state=PartnerState.UNREGISTERED)
    # Acme: 3 sent this hour, 1 failed 2 hours ago, 1 sent 30 hours ago (outside the window).
    for _ in range(3):
        delivery(acme, at=NOW - timedelta(minutes=10))
    delivery(acme, at=NOW - timedelta(hours=2), state=DeliveryState.FAILED, error="HTTP 400")
    delivery(acme, at=NOW - timedelta(hours=30))
    # Beta: 2 pending (oldest 3 hours old, with an error on the way), 1 sending.
    delivery(beta, at=NOW - timedelta(hours=3), state=DeliveryState.PENDING, error="timeout")
    delivery(beta, at=NOW - timedelta(minutes=5), state=DeliveryState.PENDING)
    delivery(beta, at=NOW - timedelta(minutes=1), state=DeliveryState.SENDING)
    LocationSync.objects.create(
        partner=beta,
        state=SyncState.DONE,
        started_at=NOW - timedelta(hours=5),
        finished_at=NOW - timedelta(hours=5) + timedelta(seconds=42.5),
        synced_until=NOW - timedelta(hours=5),
        message="Full sync: 10 received, 10 stored.",
    )
    LocationSync.objects.create(partner=acme, state=SyncState.RUNNING, started_at=NOW)
    return {"acme": acme, "beta": beta, "gamma": gamma}


def test_partners_by_status(known):
    summary = dashboard.partners_by_status()

    assert summary.counts == {"CONNECTED": 1, "OFFLINE": 1, "PLANNED": 0, "SUSPENDED": 1}
    assert [(p.name, p.since) for p in summary.offline] == [
        ("Beta", NOW - timedelta(hours=3, minutes=30))
    ]
    assert [p.name for p in summary.suspended] == ["Gamma"]
    assert summary.not_registered == 1


def test_outbox(known):
    box = dashboard.outbox()

    assert (box.pending, box.failed) == (3, 1)
    assert box.oldest_pending == NOW - timedelta(hours=3)
    assert box.oldest_age(NOW) == 3 * 3600
    assert [(r.name, r.pending, r.failed, r.oldest_pending) for r in box.rows] == [
        ("Acme", 0, 1, None),
        ("Beta", 3, 0, NOW - timedelta(hours=3)),
    ]


def test_activity_per_hour_over_the_last_24_hours(known):
    rows = dashboard.activity(NOW)

    acme, beta = rows
    assert (acme.name, acme.total, acme.total_errors) == ("Acme", 4, 1)
    assert acme.deliveries[-1] == 3  # this hour, the newest
    assert (acme.deliveries[-3], acme.errors[-3]) == (1, 1)  # 10:xx
    assert sum(acme.deliveries[:-3]) == 0  # 30 hours ago is outside
    assert (beta.total, beta.total_errors) == (3, 1)
    assert beta.errors[-4] == 1  # 09:30


def test_last_pulls(known):
    pulls = {p.name: p for p in dashboard.last_pulls()}

    assert pulls["Beta"].module == "locations"
    assert pulls["Beta"].duration == 42.5
    assert pulls["Acme"].duration is None  # still running


def test_the_admin_index_is_the_dashboard(admin_client: Client, known):
    with time_machine.travel(NOW, tick=False):
        html = admin_client.get(reverse("admin:index")).content.decode()

    assert 'id="cockpit"' in html
    assert "1 partner OFFLINE" in html
    assert "1 delivery failed" in html
    assert '<span class="figure">3</span><span class="label">pending deliveries</span>' in html
    assert "3\xa0hours ago" in html  # the oldest pending delivery, and Beta offline since
    assert "2026-03-10 09:00:00 UTC" in html  # Beta's outage began (with the zone)
    assert "<svg" in html
    assert "3 deliveries, 0 with errors" in html
    assert "42.5 s" in html
    assert "Full sync: 10 received" in html
    # Which instance: our parties and public URL, not "Django administration"; no "View site".
    assert "Django administration" not in html
    assert "NL*ABC (CPO, EMSP) · http://testserver" in html
    assert "View site" not in html


def test_the_dashboard_says_healthy_when_it_is(admin_client: Client):
    partner("Acme")
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Roaming is healthy" in html
