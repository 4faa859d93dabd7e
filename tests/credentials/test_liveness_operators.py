"""Operators' view of liveness: the partner list, the actions, the partner page, ocpi_ping."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from credentials import tokens
from credentials.models import (
    ConnectionStatus,
    Initiative,
    Partner,
    PartnerState,
    StatusChange,
)
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import now_utc

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:credentials_partner_changelist"
VERSIONS = "https://partner.test/ocpi/versions"


def make(name: str, *, status: str = ConnectionStatus.CONNECTED, minutes: int = 3) -> Partner:
    partner = Partner.objects.create(
        name=name,
        initiated_by=Initiative.PARTNER,
        state=PartnerState.REGISTERED,
        version="2.2.1",
        versions_url=VERSIONS,
        status=status,
        last_connection=now_utc() - timedelta(minutes=minutes),
        registered_at=now_utc(),
    )
    tokens.set_outbound_token(partner, f"token-of-{name}")
    partner.save()
    return partner


def versions_answer(request: httpx.Request) -> httpx.Response:
    if request.url.host == "down.test":
        return httpx.Response(502, text="<html>Bad gateway</html>")
    body = {
        "data": [{"version": "2.2.1", "url": "https://partner.test/ocpi/2.2.1"}],
        "status_code": 1000,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    return httpx.Response(200, json=body)


@pytest.fixture
def partner_web():
    with use_transport(httpx.MockTransport(versions_answer)):
        yield


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_list_shows_status_and_how_long_ago_each_partner_was_seen(admin_client: Client):
    make("Alive", minutes=3)
    offline = make("Gone", status=ConnectionStatus.OFFLINE, minutes=90)
    offline.ping_failures = 4
    offline.last_ping_error = "GET https://partner.test/ocpi/versions timed out."
    offline.save()

    page = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert "CONNECTED" in page
    assert "OFFLINE" in page
    assert "3\xa0minutes ago" in page
    assert "1\xa0hour ago" in page
    assert "4 failed pings: GET https://partner.test/ocpi/versions timed out." in page

    filtered = admin_client.get(reverse(CHANGELIST), {"status__exact": "OFFLINE"})
    assert [p.name for p in filtered.context["cl"].result_list] == ["Gone"]


def test_ping_now_queues_a_ping_of_the_pingable_selected_partners(
    admin_client: Client, monkeypatch
):
    from credentials import tasks

    queued: list[list[int]] = []
    monkeypatch.setattr(tasks.ping_partners, "delay", lambda **kw: queued.append(kw["partner_ids"]))
    alive = make("Alive")
    suspended = make("Paused", status=ConnectionStatus.SUSPENDED)
    invited = Partner.objects.create(name="Invited", initiated_by=Initiative.PARTNER)

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "ping_now", "_selected_action": [alive.pk, suspended.pk, invited.pk]},
        follow=True,
    )

    assert queued == [[alive.pk]]
    text = response.content.decode()
    assert "Ping started for Alive" in text
    assert "Not pinged (not registered, or suspended): " in text


def test_the_ping_task_pings_and_records(partner_web):
    from credentials.tasks import ping_partners

    partner = make("Alive")
    partner.ping_failures = 2
    partner.save()

    results = ping_partners(partner_ids=[partner.pk])

    assert [(r["partner"], r["ok"], r["status"]) for r in results] == [("Alive", True, "CONNECTED")]
    partner.refresh_from_db()
    assert partner.ping_failures == 0
    assert partner.last_ping_at is not None


def test_suspend_and_resume_from_the_admin_are_recorded_with_who_did_it(
    admin_client: Client, admin_user, django_capture_on_commit_callbacks
):
    partner = make("Acme")
    url = reverse(CHANGELIST)

    admin_client.post(url, {"action": "suspend", "_selected_action": [partner.pk]})
    partner.refresh_from_db()
    assert partner.status == ConnectionStatus.SUSPENDED
    again = admin_client.post(
        url, {"action": "suspend", "_selected_action": [partner.pk]}, follow=True
    )
    assert "No partner suspended" in again.content.decode()

    admin_client.post(url, {"action": "resume", "_selected_action": [partner.pk]})
    partner.refresh_from_db()
    assert partner.status == ConnectionStatus.CONNECTED

    changes = list(StatusChange.objects.filter(partner=partner).order_by("id"))
    assert [(c.old_status, c.new_status) for c in changes] == [
        ("CONNECTED", "SUSPENDED"),
        ("SUSPENDED", "CONNECTED"),
    ]
    assert all(f"by {admin_user.username} in the admin" in c.reason for c in changes)

    page = admin_client.get(reverse("admin:credentials_partner_change", args=[partner.pk]))
    text = page.content.decode()
    assert "status changes (newest" in text.lower()
    assert f"suspended by {admin_user.username} in the admin" in text


def test_ocpi_ping_prints_each_outcome_and_changes_status_like_the_beat_ping(partner_web, settings):
    settings.OCPI_PING_FAILURES = 1
    make("Alive")
    down = make("Down")
    down.versions_url = "https://down.test/ocpi/versions"
    down.save()
    make("Paused", status=ConnectionStatus.SUSPENDED)

    out = run("ocpi_ping", "--json")

    results = {r["partner"]: r for r in json.loads(out)}
    assert set(results) == {"Alive", "Down"}  # a suspended partner is not pinged
    assert results["Alive"]["ok"]
    assert results["Alive"]["status"] == "CONNECTED"
    assert not results["Down"]["ok"]
    assert results["Down"]["status"] == "OFFLINE"
    assert results["Down"]["changed"]
    assert "HTTP 502" in results["Down"]["reason"]

    text = run("ocpi_ping", "Alive")
    assert "Alive" in text
    assert " ok " in text


def test_ocpi_ping_of_one_partner_fails_when_it_does_not_answer(partner_web):
    down = make("Down")
    down.versions_url = "https://down.test/ocpi/versions"
    down.save()
    with pytest.raises(CommandError, match="did not answer the ping"):
        run("ocpi_ping", "Down")
    with pytest.raises(CommandError, match="No partner named"):
        run("ocpi_ping", "Nobody")
    make("Paused", status=ConnectionStatus.SUSPENDED)
    with pytest.raises(CommandError, match="suspended"):
        run("ocpi_ping", "Paused")


def test_ocpi_partners_shows_status_and_last_connection():
    make("Acme", status=ConnectionStatus.OFFLINE, minutes=10)
    listed = json.loads(run("ocpi_partners", "--json"))
    assert listed[0]["status"] == "OFFLINE"
    assert listed[0]["last_connection"]
    text = run("ocpi_partners")
    assert "OFFLINE" in text
    assert "10\xa0minutes ago" in text
