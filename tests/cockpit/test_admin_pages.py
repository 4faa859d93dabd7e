"""Defects met in the browser: periodic tasks page, times with a zone, the outbox's order and
titles, favicon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from credentials.admin import reason_cause
from journal.models import Direction, Entry
from outbox.models import DeliveryState
from tests.cockpit.test_dashboard import delivery, partner

pytestmark = pytest.mark.django_db


def test_the_periodic_task_page_shows_its_registered_task(admin_client: Client):
    every = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(
        name="outbox-sweep", task="outbox.tasks.sweep", interval=every
    )

    html = admin_client.get(
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    ).content.decode()

    assert '<option value="outbox.tasks.sweep" selected>' in html
    assert "cockpit.tasks.heartbeat" in html  # the registered tasks are offered
    assert "Translation: ${additional}" not in html  # the script that wrote "undefined"


def test_times_show_their_zone_and_the_outbox_lists_newest_first(admin_client: Client):
    acme = partner("Acme Roaming")
    at = datetime(2026, 3, 10, 9, 5, tzinfo=UTC)
    old = delivery(acme, at=at, state=DeliveryState.FAILED, error="HTTP 400: " + "x" * 300)
    new = delivery(acme, at=at + timedelta(hours=1))

    listing = admin_client.get(reverse("admin:outbox_delivery_changelist"))
    html = listing.content.decode()

    assert [d.pk for d in listing.context["cl"].result_list] == [new.pk, old.pk]
    assert "2026-03-10 09:05:00 UTC" in html
    assert 'PUT locations</span> <span class="ocpi-path">NL/ABC/LOC1</span>' in html
    assert "xxx</span>" in html  # the error's end is shown (wrapped column, full text as title)

    page = admin_client.get(reverse("admin:outbox_delivery_change", args=[old.pk]))
    assert "to Acme Roaming (FAILED)" in page.content.decode()  # the title names the partner


def test_favicon_is_no_404(client: Client):
    assert client.get("/favicon.ico").status_code == 204
    assert 'rel="icon"' in client.get(reverse("admin:login")).content.decode()


# --- key columns at 1,400 px: the cause of a failure first, few and narrow columns --------------

LONG_URL = "https://ocpi.partner-platform-production.example.com/ocpi/2.2.1/locations/NL/ABC/LOC1"


def test_reason_cause_cuts_urls_to_their_host_and_drops_the_rows_call():
    refused = f"PUT {LONG_URL} failed: ConnectError: [Errno 111] Connection refused"

    assert (
        reason_cause(refused, drop_call=True)
        == "failed: ConnectError: [Errno 111] Connection refused"
    )
    assert reason_cause(f"Registration failed: GET {LONG_URL} failed with HTTP 401: x") == (
        "Registration failed: GET ocpi.partner-platform-production.example.com failed with "
        "HTTP 401: x"
    )
    assert reason_cause("unknown token") == "unknown token"


def test_the_outbox_list_shows_the_errors_cause_first_in_few_columns(admin_client: Client):
    acme = partner("Acme Roaming")
    error = f"PUT {LONG_URL} failed with HTTP 401: Unknown token."
    row = delivery(acme, at=datetime(2026, 3, 10, 9, 5, tzinfo=UTC), state="FAILED", error=error)
    row.http_status, row.ocpi_status, row.attempts = 401, 2001, 3
    row.save()

    listing = admin_client.get(reverse("admin:outbox_delivery_changelist"))
    html = listing.content.decode()

    assert f'title="{error}">failed with HTTP 401: Unknown token.</span>' in html
    assert '<span class="ocpi-nowrap">401 / 2001</span>' in html
    assert "3 attempts" in html  # under the state: no column of its own
    assert list(listing.context["cl"].list_display) == [
        "action_checkbox",
        "id",
        "partner_link",
        "message",
        "state_badge",
        "answer",
        "short_error",
        "times",
    ]


def test_the_journal_list_shows_status_and_the_errors_cause(admin_client: Client):
    acme = partner("Acme Roaming")
    error = f"PUT {LONG_URL} failed: ConnectError: [Errno 111] Connection refused"
    Entry.objects.create(
        partner=acme,
        created_at=datetime(2026, 3, 10, 9, 5, 1, 250000, tzinfo=UTC),
        direction=Direction.OUT,
        method="PUT",
        path=LONG_URL,
        http_status=None,
        duration_ms=12,
        error=error,
    )

    html = admin_client.get(reverse("admin:journal_entry_changelist")).content.decode()

    assert ">failed: ConnectError: [Errno 111] Connection refused</span>" in html
    assert "→ PUT" in html  # direction and method in one column
    assert "09:05:01.250 UTC" in html
    assert "no answer" in html
