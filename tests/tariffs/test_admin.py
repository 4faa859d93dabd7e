"""The tariffs admin (kit.admin.ObjectAdmin): ours edited as OCPI JSON through the service,
partners' copies read-only; the partner page's tariffs pull state and pull action."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from kit import services
from kit.models import ModuleSync, SyncState
from kit.spec import ObjectKey
from outbox.models import Delivery
from tariffs.models import Tariff
from tests.tariffs.conftest import example, own_tariff

pytestmark = pytest.mark.django_db
ADD = reverse("admin:tariffs_tariff_add")


def change(obj: Tariff) -> str:
    return reverse("admin:tariffs_tariff_change", args=[obj.pk])


def test_an_operator_adds_our_tariff_and_it_is_pushed(admin_client, emsp, monkeypatch):
    response = admin_client.post(ADD, {"document": json.dumps(own_tariff())})
    assert response.status_code == 302, response.content.decode()[:2000]
    tariff = Tariff.objects.get()
    assert tariff.partner is None
    assert json.loads(tariff.ocpi_json)["id"] == "T1"
    assert Delivery.objects.filter(module="tariffs", method="PUT").count() == 1


def test_an_invalid_tariff_is_shown_with_the_field_and_nothing_is_stored(admin_client):
    response = admin_client.post(ADD, {"document": json.dumps(own_tariff(currency="euro"))})
    assert response.status_code == 200
    assert "currency" in response.content.decode()
    assert not Tariff.objects.exists()


def test_a_tariff_of_a_party_that_is_not_ours_is_refused(admin_client):
    response = admin_client.post(ADD, {"document": json.dumps(example())})
    assert "not one of our CPO parties" in response.content.decode()
    assert not Tariff.objects.exists()


def test_an_edit_of_ours_is_stamped_and_pushed(admin_client, spec, emsp):
    services.put(spec, ObjectKey("NL", "ABC", "T1"), own_tariff(), owner=None)
    tariff = Tariff.objects.get()
    before = tariff.last_updated
    response = admin_client.post(
        change(tariff), {"document": json.dumps(own_tariff(currency="USD"))}
    )
    assert response.status_code == 302
    tariff.refresh_from_db()
    assert tariff.currency == "USD"
    assert tariff.last_updated > before


def test_a_partners_copy_is_read_only_and_may_be_deleted(admin_client, spec, cpo):
    services.put(spec, ObjectKey("DE", "ALL", "12"), example(), owner=cpo.partner.pk)
    copy = Tariff.objects.get()
    page = admin_client.get(change(copy)).content.decode()
    assert 'name="document"' not in page
    assert "&quot;currency&quot;: &quot;EUR&quot;" in page or "EUR" in page
    assert admin_client.post(change(copy), {"document": "{}"}).status_code == 403
    delete = reverse("admin:tariffs_tariff_delete", args=[copy.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Tariff.objects.exists()


def test_deleting_ours_pushes_a_delete(admin_client, spec, emsp):
    services.put(spec, ObjectKey("NL", "ABC", "T1"), own_tariff(), owner=None)
    delete = reverse("admin:tariffs_tariff_delete", args=[Tariff.objects.get().pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Tariff.objects.exists()
    assert Delivery.objects.filter(module="tariffs").latest("pk").method == "DELETE"


def test_the_partner_page_shows_the_tariffs_pull_and_the_action_queues_it(
    admin_client, cpo, django_capture_on_commit_callbacks
):
    ModuleSync.objects.create(partner=cpo.partner, module="tariffs", message="Full sync: tariffs")
    page = admin_client.get(reverse("admin:credentials_partner_change", args=[cpo.partner.pk]))
    assert "Tariffs pulled from the partner" in page.content.decode()
    assert "Full sync: tariffs" in page.content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(
            reverse("admin:credentials_partner_changelist"),
            {"action": "pull_all_tariffs", "_selected_action": [cpo.partner.pk]},
        )
    assert ModuleSync.objects.get(partner=cpo.partner, module="tariffs").state == SyncState.QUEUED
    assert len(callbacks) == 1
