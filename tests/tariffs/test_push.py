"""Our tariffs reach the partners through the outbox (kit push): PUT on change, DELETE when
removed, targets by endpoint and role, full resend on registration and on return."""

from __future__ import annotations

from typing import Any

import pytest

from credentials.models import ConnectionStatus, PartnerEndpoint, PartnerRole
from credentials.signals import partner_status_changed
from kit import push, services, tasks
from kit.spec import ObjectKey
from ocpi_platform.ocpi.client import use_transport
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from tests.conftest import make_registered
from tests.fakes.module_partner import ModulePartner
from tests.tariffs.conftest import own_tariff

pytestmark = pytest.mark.django_db
KEY = ObjectKey("NL", "ABC", "T1")


@pytest.fixture
def fake():
    partner = ModulePartner(module="tariffs", accepted_tokens={"partner-token-c"})
    with use_transport(partner.transport()):
        yield partner


@pytest.fixture(autouse=True)
def _no_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "schedule", lambda *a, **k: None)


def test_a_new_tariff_of_ours_is_put_to_the_emsp(spec, emsp, fake):
    services.put(spec, KEY, own_tariff(), owner=None)
    [row] = Delivery.objects.filter(module="tariffs")
    assert (row.method, row.path, row.partner_id) == ("PUT", "NL/ABC/T1", emsp.partner.pk)
    assert (row.to_country_code, row.to_party_id) == ("BE", "XYZ")
    outbox.drain(emsp.partner.pk)
    [sent] = fake.pushes
    assert sent.method == "PUT"
    assert sent.path == "/ocpi/2.2.1/tariffs/NL/ABC/T1"
    assert sent.body["id"] == "T1"
    assert sent.headers["OCPI-to-party-id"] == "XYZ"


def test_a_removed_tariff_is_deleted_at_the_emsp_without_a_body(spec, emsp, fake):
    services.put(spec, KEY, own_tariff(), owner=None)
    outbox.drain(emsp.partner.pk)
    services.delete(spec, KEY, owner=None)
    outbox.drain(emsp.partner.pk)
    assert [r.method for r in fake.pushes] == ["PUT", "DELETE"]
    assert fake.pushes[1].body is None


def test_a_delete_folds_into_a_pending_put_and_a_put_back_into_the_delete(spec, emsp):
    services.put(spec, KEY, own_tariff(), owner=None)
    services.delete(spec, KEY, owner=None)
    [row] = Delivery.objects.filter(module="tariffs", state=DeliveryState.PENDING)
    assert row.method == "DELETE"
    services.put(spec, KEY, own_tariff(currency="USD"), owner=None)
    [row] = Delivery.objects.filter(module="tariffs", state=DeliveryState.PENDING)
    assert (row.method, row.body["currency"]) == ("PUT", "USD")


def test_a_retried_delete_stays_a_delete(spec, emsp, fake):
    services.put(spec, KEY, own_tariff(), owner=None)
    outbox.drain(emsp.partner.pk)
    services.delete(spec, KEY, owner=None)
    fake.answers.append((400, {"status_code": 2001, "timestamp": "2020-01-01T00:00:00Z"}))
    outbox.drain(emsp.partner.pk)
    failed = Delivery.objects.get(state=DeliveryState.FAILED)
    assert outbox.retry([failed]) == 1
    assert Delivery.objects.get(pk=failed.pk).method == "DELETE"


def test_a_partners_tariff_is_never_pushed(spec, emsp, cpo):
    data = {**own_tariff(), "country_code": "DE", "party_id": "ALL"}
    services.put(spec, ObjectKey("DE", "ALL", "T1"), data, owner=cpo.partner.pk)
    assert not Delivery.objects.exists()


def test_targets_are_partners_with_a_tariffs_receiver_endpoint(spec, emsp, cpo):
    locations_only = make_registered("locations-only", country_code="FR", party_id="LOC")
    PartnerEndpoint.objects.create(
        partner=locations_only.partner, identifier="locations", role="RECEIVER", url="https://x/"
    )
    assert [t.partner_id for t in push.targets(spec)] == [emsp.partner.pk]


def test_the_receiving_party_follows_the_role_order(spec, emsp):
    PartnerRole.objects.create(
        partner=emsp.partner, role="NSP", country_code="BE", party_id="NSP", business_details={}
    )
    [target] = push.targets(spec)
    assert target.receiver is not None
    assert (target.receiver.party_id, target.receiver.role) == ("XYZ", "EMSP")


def test_an_offline_partner_is_no_target(spec, emsp):
    emsp.partner.status = ConnectionStatus.OFFLINE
    emsp.partner.save()
    assert push.targets(spec) == []


def test_full_resend_puts_every_tariff_of_ours(spec, emsp):
    for ident in ("T1", "T2", "T3"):
        services.put(spec, ObjectKey("NL", "ABC", ident), own_tariff(ident), owner=None)
    Delivery.objects.all().delete()
    assert push.full_resend(spec, [emsp.partner.pk]) == 3
    assert sorted(Delivery.objects.values_list("key", flat=True)) == [
        "NL/ABC/T1",
        "NL/ABC/T2",
        "NL/ABC/T3",
    ]


def test_return_to_connected_queues_a_full_resend(
    spec, emsp, monkeypatch, django_capture_on_commit_callbacks
):
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.push_all, "delay", lambda **kw: calls.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        partner_status_changed.send(
            sender=None, partner=emsp.partner, old=ConnectionStatus.OFFLINE, new="CONNECTED"
        )
    assert {"module": "tariffs", "partner_id": emsp.partner.pk} in calls


def test_registration_queues_a_full_resend(spec, emsp, monkeypatch):
    from credentials.signals import partner_registered

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.push_all, "apply_async", lambda **kw: calls.append(kw["kwargs"]))
    partner_registered.send(sender=None, partner_id=emsp.partner.pk)
    assert {"module": "tariffs", "partner_id": emsp.partner.pk} in calls


def test_the_outbox_current_state_is_the_stored_document(spec, emsp):
    services.put(spec, KEY, own_tariff(currency="USD"), owner=None)
    current = outbox.current_state["tariffs"]("NL/ABC/T1")
    assert current is not None
    assert current["currency"] == "USD"
    services.delete(spec, KEY, owner=None)
    assert outbox.current_state["tariffs"]("NL/ABC/T1") is None
