"""A delivered PUT resolves the refusals it made up for.

A PUT carries the current state of its object and of everything below it. Once one is delivered,
the partner's earlier refusals of that object and below it (FAILED rows) are resolved: CANCELLED,
with "resolved: delivery N sent the current state" after their error. They no longer count as
failures (``ocpi_outbox`` exits 0) and no longer turn later PATCHes into PUTs, even after the
housekeeping pruned the delivered PUT. Refusals above the PUT's object stay FAILED.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import call_command

from locations import services
from ocpi_platform import housekeeping
from ocpi_platform.ocpi.types import now_utc
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from tests.conftest import RegisteredPartner
from tests.fakes.locations_partner import LocationsPartner
from tests.outbox.test_push import CONNECTOR, EVSE, ours, rows, settle, stamp
from tests.outbox.test_unknown_object import REFUSED, select_evse, sent


@pytest.fixture(autouse=True)
def _file_lock(settings, tmp_path):
    settings.OCPI_LOCK_URL = ""
    settings.DATA_DIR = tmp_path
    settings.OCPI_RETENTION_DAYS = 30


def refused_then_fixed(emsp: RegisteredPartner, fake: LocationsPartner) -> Delivery:
    """The location's PUT and an EVSE PATCH are refused; then the partner takes the location
    (the next change goes as a PUT of it, delivered). Returns that delivered PUT."""
    ours()
    fake.answers = [REFUSED]
    outbox.drain(emsp.partner.pk)
    services.set_evse_status(EVSE, "CHARGING")  # a PUT of the location: refused again
    fake.answers = [REFUSED]
    outbox.drain(emsp.partner.pk)
    assert Delivery.objects.failed_count() == 2
    services.set_evse_status(EVSE, "BLOCKED")  # the cause is fixed: this PUT is delivered
    outbox.drain(emsp.partner.pk)
    assert sent(fake) == [("PUT", "NL/ABC/LOC1")] * 3
    [put] = rows(emsp, state=DeliveryState.SENT)
    return put


def test_a_delivered_put_resolves_the_refusals_it_made_up_for(emsp, fake):
    put = refused_then_fixed(emsp, fake)

    assert Delivery.objects.failed_count() == 0
    for row in rows(emsp, state=DeliveryState.CANCELLED):
        assert row.last_error.startswith("PUT ")  # the partner's refusal stays readable
        assert row.last_error.endswith(f"(resolved: delivery {put.pk} sent the current state)")
    assert len(rows(emsp, state=DeliveryState.CANCELLED)) == 2
    call_command("ocpi_outbox")  # exit status 0: nothing left failed


def test_resolved_refusals_stay_resolved_after_the_put_was_pruned(emsp, fake):
    """The issue: housekeeping pruned the SENT PUT that made up for the refusal, the FAILED row
    stayed; the next PATCH went as a full PUT again and ocpi_outbox kept exiting 1."""
    put = refused_then_fixed(emsp, fake)
    report = housekeeping.prune(at=now_utc() + timedelta(days=31))
    assert report.counts["deliveries"] == 3  # the SENT PUT and both resolved rows
    assert not Delivery.objects.filter(pk=put.pk).exists()

    services.set_evse_status(EVSE, "AVAILABLE")
    outbox.drain(emsp.partner.pk)

    assert sent(fake)[-1] == ("PATCH", EVSE.path)  # not a full PUT again
    assert Delivery.objects.failed_count() == 0
    call_command("ocpi_outbox")


def test_a_delivered_location_put_resolves_a_refused_evse_put_below_it(emsp, fake):
    ours()
    settle()
    fake.answers = [REFUSED]
    services.put(EVSE, select_evse(), owner=None)
    outbox.drain(emsp.partner.pk)  # the EVSE's PUT is refused
    [refused] = rows(emsp, state=DeliveryState.FAILED)
    services.patch(CONNECTOR, {"max_voltage": 400, "last_updated": stamp()}, owner=None)
    outbox.drain(emsp.partner.pk)  # goes as a PUT of the location: delivered

    assert sent(fake) == [("PUT", EVSE.path), ("PUT", "NL/ABC/LOC1")]
    assert Delivery.objects.get(pk=refused.pk).state == DeliveryState.CANCELLED
    assert Delivery.objects.failed_count() == 0


def test_a_delivered_evse_put_leaves_the_refused_location_put_failed(emsp, fake):
    """Resolution covers the PUT's object and what is below it only: the location stays
    refused, so the connector's PATCH still goes as a PUT of the whole location."""
    ours()
    fake.answers = [REFUSED]
    outbox.drain(emsp.partner.pk)  # the location's PUT is refused
    [refused] = rows(emsp, state=DeliveryState.FAILED)
    services.put(EVSE, select_evse(), owner=None)
    outbox.drain(emsp.partner.pk)  # the EVSE's PUT: delivered
    assert sent(fake)[-1] == ("PUT", EVSE.path)
    assert Delivery.objects.get(pk=refused.pk).state == DeliveryState.FAILED

    services.patch(CONNECTOR, {"max_voltage": 400, "last_updated": stamp()}, owner=None)
    outbox.drain(emsp.partner.pk)

    assert sent(fake)[-1] == ("PUT", "NL/ABC/LOC1")  # the PATCH→PUT rule still applies
    assert Delivery.objects.failed_count() == 0  # and that PUT, delivered, resolved it
    assert Delivery.objects.get(pk=refused.pk).state == DeliveryState.CANCELLED


def test_the_migration_resolves_refusals_already_made_up_for(emsp):
    """Rows from before: a FAILED PUT and a PUT of the same object delivered after it."""
    ours()
    [failed] = Delivery.objects.all()
    old = now_utc() - timedelta(days=10)
    Delivery.objects.filter(pk=failed.pk).update(
        state=DeliveryState.FAILED, last_error="refused", updated_at=old
    )
    other = Delivery.objects.create(
        partner=emsp.partner, module="locations", key="NL/ABC/LOC2", path="NL/ABC/LOC2",
        method="PUT", body={}, state=DeliveryState.FAILED, updated_at=old,
    )  # fmt: skip
    made_up = Delivery.objects.create(
        partner=emsp.partner, module="locations", key=failed.key, path=failed.path,
        method="PUT", body=failed.body, state=DeliveryState.SENT, updated_at=old,
        sent_at=old + timedelta(hours=1),
    )  # fmt: skip

    migration = importlib.import_module(
        "outbox.migrations.0004_delivery_claim_and_resolved_failures"
    )
    migration.resolve_made_up_failures(apps, None)

    failed.refresh_from_db()
    assert failed.state == DeliveryState.CANCELLED
    assert failed.last_error == f"refused (resolved: delivery {made_up.pk} sent the current state)"
    assert Delivery.objects.get(pk=other.pk).state == DeliveryState.FAILED  # nothing made it up
