"""Defects met in the browser: periodic tasks page, times with a zone, the outbox's order and
titles, favicon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

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
