"""The locations and outbox admin: our data is edited and pushed, partners' copies are read-only."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from credentials.models import Partner
from locations import services
from locations.models import Connector, Evse, Location, LocationSync, SyncState
from locations.paths import ObjectPath
from outbox.models import Delivery, DeliveryState
from tests.locations.conftest import example, own_location

pytestmark = pytest.mark.django_db


class FormValues(HTMLParser):
    """The values a browser would submit for the page's forms (first option if none selected)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        name = attr.get("name")
        if tag == "input" and name:
            kind = attr.get("type") or "text"
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in attr:
                    self.values[name] = attr.get("value") or "on"
                return
            self.values[name] = attr.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attr:
            self.values[self._select] = attr.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea:
            # Browsers drop the newline that starts a textarea's content.
            self.values[self._textarea] = self.values[self._textarea].removeprefix("\n")
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data


def form_values(client: Client, url: str) -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200
    parser = FormValues()
    parser.feed(response.content.decode())
    return {k: v for k, v in parser.values.items() if k not in ("action", "_selected_action")}


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m.message)) for m in get_messages(response.wsgi_request)]


def change_url(obj: Location | Evse) -> str:
    name = "location" if isinstance(obj, Location) else "evse"
    return reverse(f"admin:locations_{name}_change", args=[obj.pk])


def ours(location_id: str = "LOC1", **changes: Any) -> Location:
    return services.put(
        ObjectPath("NL", "ABC", location_id), own_location(location_id, **changes), owner=None
    ).location


def theirs(partner: Partner, location_id: str = "LOC1") -> Location:
    data = example()
    data["id"] = location_id
    return services.put(ObjectPath("BE", "BEC", location_id), data, owner=partner.pk).location


def sent_all() -> None:
    """Deliveries of the setup are done: what follows makes new rows."""
    Delivery.objects.update(state=DeliveryState.SENT)


# --- pages -------------------------------------------------------------------------------------


def test_pages_render_for_our_and_a_partners_location(
    admin_client: Client, cpo, django_assert_max_num_queries
):
    mine, copy = ours(), theirs(cpo.partner)

    with django_assert_max_num_queries(12):  # no query per row
        listing = admin_client.get(reverse("admin:locations_location_changelist"))
    html = listing.content.decode()
    assert listing.status_code == 200
    assert ">ours<" in html
    assert ">be-cpo<" in html

    own_page = admin_client.get(change_url(mine)).content.decode()
    assert 'name="name"' in own_page
    assert 'name="evses-0-status"' in own_page
    assert "BE*BEC*E041503001" in own_page  # in the pretty-printed OCPI JSON
    assert "&quot;country_code&quot;: &quot;NL&quot;" in own_page
    assert "2 connectors" in own_page

    partner_page = admin_client.get(change_url(copy)).content.decode()
    assert "Gent Zuid" in partner_page
    assert 'name="name"' not in partner_page
    assert 'name="evses-0-status"' not in partner_page
    assert "&quot;country_code&quot;: &quot;BE&quot;" in partner_page

    evse = copy.evses.get(uid="3256")
    evse_page = admin_client.get(change_url(evse)).content.decode()
    assert 'name="connectors-0-max_amperage"' not in evse_page
    assert (
        'name="connectors-0-max_amperage"'
        in admin_client.get(change_url(mine.evses.get(uid="3256"))).content.decode()
    )

    LocationSync.objects.create(partner=cpo.partner, state=SyncState.DONE, message="Full sync: …")
    partner_url = reverse("admin:credentials_partner_change", args=[cpo.partner.pk])
    partner_page = admin_client.get(partner_url).content.decode()
    assert "Locations pulled from the partner" in partner_page
    assert "Full sync: …" in partner_page


def test_a_partners_copy_is_read_only_and_ours_is_not_deleted(admin_client: Client, cpo):
    mine, copy = ours(), theirs(cpo.partner)
    data = form_values(admin_client, change_url(mine))

    assert admin_client.post(change_url(copy), {**data, "name": "Mine now"}).status_code == 403
    delete = "admin:locations_location_delete"
    assert admin_client.get(reverse(delete, args=[mine.pk])).status_code == 403
    assert admin_client.get(reverse(delete, args=[copy.pk])).status_code == 200

    response = admin_client.post(
        reverse("admin:locations_location_changelist"),
        {"action": "delete_selected", "_selected_action": [mine.pk, copy.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert list(Location.objects.values_list("pk", flat=True)) == [mine.pk]


# --- saving ours -------------------------------------------------------------------------------


def test_saving_our_location_stamps_it_and_pushes_it(admin_client: Client, emsp):
    location = ours()
    before = location.last_updated
    sent_all()
    data = form_values(admin_client, change_url(location))
    data.update({"name": "Gent Centrum", "evses-1-status": "AVAILABLE"})

    response = admin_client.post(change_url(location), data)

    assert response.status_code == 302, response.context["errors"]
    location.refresh_from_db()
    assert location.last_updated > before
    document = services.document(location)
    assert document["name"] == "Gent Centrum"
    assert document["last_updated"] != "2015-06-29T20:39:09Z"
    assert document["evses"][1]["status"] == "AVAILABLE"
    assert Evse.objects.get(location=location, uid="3257").last_updated == location.last_updated
    assert Evse.objects.get(location=location, uid="3256").last_updated < location.last_updated
    delivery = Delivery.objects.get(partner=emsp.partner, state=DeliveryState.PENDING)
    assert (delivery.method, delivery.path) == ("PUT", "NL/ABC/LOC1")
    assert delivery.body == document


def test_saving_connectors_on_the_evse_page(admin_client: Client, emsp):
    location = ours()
    evse = location.evses.get(uid="3257")
    sent_all()
    data = form_values(admin_client, change_url(evse))
    data.update({"connectors-0-max_amperage": "32"})

    response = admin_client.post(change_url(evse), data)

    assert response.status_code == 302, response.context["errors"]
    connector = Connector.objects.get(evse=evse)
    location.refresh_from_db()
    assert connector.max_amperage == 32
    assert connector.last_updated == location.last_updated
    body = Delivery.objects.get(state=DeliveryState.PENDING).body
    assert body["evses"][1]["connectors"][0]["max_amperage"] == 32


@pytest.mark.parametrize("page", ["location", "evse"])
def test_an_evse_status_saved_in_the_admin_is_patched(admin_client: Client, emsp, page):
    """The README: a small change is PATCHed, whoever made it (admin included)."""
    location = ours()
    evse = location.evses.get(uid="3257")
    sent_all()
    obj = location if page == "location" else evse
    data = form_values(admin_client, change_url(obj))
    data["evses-1-status" if page == "location" else "status"] = "CHARGING"

    response = admin_client.post(change_url(obj), data)

    assert response.status_code == 302, response.context["errors"]
    delivery = Delivery.objects.get(partner=emsp.partner, state=DeliveryState.PENDING)
    assert (delivery.method, delivery.path) == ("PATCH", "NL/ABC/LOC1/3257")
    assert delivery.body["status"] == "CHARGING"
    location.refresh_from_db()
    assert services.document(location)["evses"][1]["status"] == "CHARGING"


def test_a_new_location_must_be_one_of_our_cpo_parties(admin_client: Client):
    url = reverse("admin:locations_location_add")
    data = form_values(admin_client, url)
    data.update(
        {
            "country_code": "DE",
            "party_id": "XYZ",
            "location_id": "NEW1",
            "address": "Main street 1",
            "city": "Berlin",
            "country": "DEU",
            "latitude": "52.52",
            "longitude": "13.404954",
            "time_zone": "Europe/Berlin",
            "operator": '{"name": 5}',
        }
    )

    refused = admin_client.post(url, data).content.decode()

    assert "DE/XYZ is not one of our CPO parties" in refused
    assert "NL/ABC" in refused
    assert "Use decimal degrees with 5 to 7 decimals" in refused
    assert "name: must be a string" in refused
    assert not Location.objects.exists()

    data.update(
        {
            "country_code": "nl",
            "party_id": "abc",
            "latitude": "52.520008",
            "operator": '{"name": "Us"}',
            "evses-TOTAL_FORMS": "1",
            "evses-0-uid": "E1",
            "evses-0-status": "AVAILABLE",
        }
    )
    response = admin_client.post(url, data)

    assert response.status_code == 302
    location = Location.objects.get()
    assert (location.country_code, location.party_id, location.partner) == ("NL", "ABC", None)
    assert services.document(location)["evses"][0]["uid"] == "E1"
    warnings = [text for level, text in messages_of(response) if level == "warning"]
    assert any("needs at least one connector" in text for text in warnings)


# --- actions -----------------------------------------------------------------------------------


def test_push_again_queues_our_shared_locations(
    admin_client: Client, emsp, cpo, django_capture_on_commit_callbacks
):
    mine, copy = ours(), theirs(cpo.partner)
    sent_all()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("admin:locations_location_changelist"),
            {"action": "push_again", "_selected_action": [mine.pk, copy.pk]},
        )

    assert ("success", "Queued 1 location for 1 partner; see the outbox for the deliveries.") in (
        messages_of(response)
    )
    assert Delivery.objects.filter(state=DeliveryState.PENDING, path="NL/ABC/LOC1").count() == 1
    assert len(callbacks) == 1


def test_retry_resets_failed_deliveries_only(
    admin_client: Client, emsp, django_capture_on_commit_callbacks
):
    ours()
    failed = Delivery.objects.get()
    failed.state, failed.last_error = DeliveryState.FAILED, "HTTP 400: refused"
    failed.next_attempt_at += timedelta(hours=1)
    failed.save()
    sent = Delivery.objects.create(
        partner=emsp.partner, module="locations", key="K", path="K", method="PUT", body={}
    )
    Delivery.objects.filter(pk=sent.pk).update(state=DeliveryState.SENT)
    changelist = reverse("admin:outbox_delivery_changelist")
    assert "HTTP 400: refused" in admin_client.get(changelist).content.decode()
    page = admin_client.get(reverse("admin:outbox_delivery_change", args=[failed.pk]))
    assert "&quot;evse_id&quot;: &quot;BE*BEC*E041503001&quot;" in page.content.decode()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            changelist, {"action": "retry", "_selected_action": [failed.pk, sent.pk]}
        )

    assert (
        "success",
        "1 delivery queued again (with the object's state now); 1 skipped (only failed or "
        "cancelled rows of objects we still send are retried).",
    ) in messages_of(response)
    failed.refresh_from_db()
    assert failed.state == DeliveryState.PENDING
    assert Delivery.objects.get(pk=sent.pk).state == DeliveryState.SENT
    assert len(callbacks) == 1


def test_pull_action_on_partners(
    admin_client: Client, cpo, emsp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("admin:credentials_partner_changelist"),
            {"action": "pull_all_locations", "_selected_action": [cpo.partner.pk, emsp.partner.pk]},
        )

    shown = messages_of(response)
    assert any(level == "success" and "queued for 1 partner (be-cpo)" in t for level, t in shown)
    assert (
        "warning",
        "Not pulled: de-emsp: it offers no locations SENDER endpoint.",
    ) in shown
    assert LocationSync.objects.get(partner=cpo.partner).state == SyncState.QUEUED
    assert len(callbacks) == 1
