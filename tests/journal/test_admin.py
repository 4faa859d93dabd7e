"""The journal and the doctor on the partner's admin page (Django's test client)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from journal import recorder
from journal.models import BodyCapture, Direction, Entry

pytestmark = pytest.mark.django_db


def change_url(partner) -> str:
    return reverse("admin:credentials_partner_change", args=[partner.pk])


def test_the_partner_page_shows_its_newest_calls_and_the_tools(
    admin_client: Client, api, registered
):
    api.get("/ocpi/versions", token=registered.inbound_token, headers={"X-Correlation-ID": "c-77"})

    page = admin_client.get(change_url(registered.partner)).content.decode()

    assert "Request journal (newest 20)" in page
    assert "c-77" in page  # the inbound call's correlation id
    assert "/ocpi/versions" in page
    assert "Run doctor" in page
    assert "Journal bodies 15 min" in page
    assert f"?partner__id__exact={registered.partner.pk}&amp;direction__exact=IN" in page
    assert registered.inbound_token not in page


def test_the_journal_filters_by_partner_direction_and_outcome(admin_client, api, registered):
    api.get("/ocpi/versions", token=registered.inbound_token, headers={"X-Correlation-ID": "ok-1"})
    api.get("/ocpi/versions", token="wrong", headers={"X-Correlation-ID": "bad-1"})
    url = reverse("admin:journal_entry_changelist")

    mine = admin_client.get(f"{url}?partner__id__exact={registered.partner.pk}").content.decode()
    errors = admin_client.get(f"{url}?outcome=error").content.decode()
    inbound = admin_client.get(f"{url}?direction__exact=IN&q=bad-1").content.decode()

    assert "ok-1" in mine
    assert "bad-1" not in mine
    assert "bad-1" in errors
    assert "ok-1" not in errors
    assert "bad-1" in inbound


def test_bodies_are_turned_on_for_a_while_and_off(admin_client, registered):
    url = reverse("admin:journal_partner_bodies", args=[registered.partner.pk])

    response = admin_client.post(url, {"journal_bodies_minutes": "15"})

    assert response.status_code == 302
    assert BodyCapture.objects.filter(partner=registered.partner).exists()
    assert recorder.bodies_wanted(registered.partner.pk)
    assert (
        "bodies journaled until"
        in admin_client.get(change_url(registered.partner)).content.decode()
    )
    admin_client.post(url, {"journal_bodies_minutes": "0"})
    assert not recorder.bodies_wanted(registered.partner.pk)
    assert admin_client.get(url).status_code == 405  # POST only


def test_a_viewer_sees_the_journal_but_cannot_run_the_doctor(registered):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_partner"))
    client = Client()
    client.force_login(viewer)

    assert client.get(change_url(registered.partner)).status_code == 200
    assert client.get(reverse("admin:journal_entry_changelist")).status_code == 200
    doctor_url = reverse("admin:journal_partner_doctor", args=[registered.partner.pk])
    assert client.post(doctor_url, {"run_doctor": "1"}).status_code == 403
    bodies_url = reverse("admin:journal_partner_bodies", args=[registered.partner.pk])
    assert client.post(bodies_url, {"journal_bodies_minutes": "15"}).status_code == 403


def test_an_entry_shows_its_redacted_bodies(admin_client, api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}
    recorder.capture_bodies(invited.partner.pk, 15)
    from tests.conftest import partner_offer

    api.post("/ocpi/2.2.1/credentials", token=invited.token_a, body=partner_offer())
    entry = Entry.objects.get(direction=Direction.IN)

    page = admin_client.get(reverse("admin:journal_entry_change", args=[entry.pk])).content
    assert b"partner-token-b" not in page
    assert b"***" in page
