"""The tariffs sender (kit sender): our tariffs, paginated (offset, limit, date_from, date_to,
Link, X-Total-Count, X-Limit), from the database or the per-process copy; GET of one tariff."""

from __future__ import annotations

import pytest

from kit import listing, services
from kit.spec import ObjectKey
from tests.tariffs.conftest import SENDER, own_tariff

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[0, 1], ids=["database", "copy"])
def copy_seconds(request, settings):
    settings.OCPI_LIST_CACHE_SECONDS = request.param
    listing.forget()
    yield request.param
    listing.forget()


def put(spec, ident: str, **changes):
    services.put(spec, ObjectKey("NL", "ABC", ident), own_tariff(ident, **changes), owner=None)


def refresh():
    for found in listing._listings.values():
        found._checked = 0.0


def test_pages_follow_link_with_total_and_limit(api, emsp, spec, copy_seconds, settings):
    for n in range(5):
        put(spec, f"T{n}")
    reply = api.get(f"{SENDER}?limit=2", token=emsp.inbound_token)
    assert reply.code == 1000
    assert [t["id"] for t in reply.data] == ["T0", "T1"]
    assert reply.headers["X-Total-Count"] == "5"
    assert reply.headers["X-Limit"] == "2"
    assert "offset=2" in reply.headers["Link"]
    last = api.get(f"{SENDER}?offset=4&limit=2", token=emsp.inbound_token)
    assert [t["id"] for t in last.data] == ["T4"]
    assert "Link" not in last.headers


def test_date_filters_select_by_last_updated(api, emsp, spec, copy_seconds):
    put(spec, "OLD")
    put(spec, "NEW")
    services.put(  # an import keeps the file's stamp on creation
        spec,
        ObjectKey("NL", "ABC", "FILE"),
        own_tariff("FILE", last_updated="2015-01-01T00:00:00Z"),
        owner=None,
        keep_timestamp=True,
    )
    reply = api.get(f"{SENDER}?date_to=2016-01-01T00:00:00Z", token=emsp.inbound_token)
    assert [t["id"] for t in reply.data] == ["FILE"]
    reply = api.get(f"{SENDER}?date_from=2016-01-01T00:00:00Z", token=emsp.inbound_token)
    assert [t["id"] for t in reply.data] == ["OLD", "NEW"]


def test_a_deleted_tariff_leaves_the_list(api, emsp, spec, copy_seconds):
    put(spec, "T1")
    put(spec, "T2")
    assert api.get(SENDER, token=emsp.inbound_token).headers["X-Total-Count"] == "2"
    services.delete(spec, ObjectKey("NL", "ABC", "T1"), owner=None)
    refresh()
    reply = api.get(SENDER, token=emsp.inbound_token)
    assert [t["id"] for t in reply.data] == ["T2"]
    assert reply.headers["X-Total-Count"] == "1"


def test_a_changed_tariff_is_listed_in_its_new_state(api, emsp, spec, copy_seconds):
    put(spec, "T1")
    api.get(SENDER, token=emsp.inbound_token)
    put(spec, "T1", currency="USD")
    refresh()
    assert api.get(SENDER, token=emsp.inbound_token).data[0]["currency"] == "USD"


def test_partners_copies_are_not_listed(api, emsp, cpo, spec, copy_seconds):
    data = {**own_tariff("P1"), "country_code": "DE", "party_id": "ALL"}
    services.put(spec, ObjectKey("DE", "ALL", "P1"), data, owner=cpo.partner.pk)
    put(spec, "T1")
    assert [t["id"] for t in api.get(SENDER, token=emsp.inbound_token).data] == ["T1"]


def test_get_one_tariff(api, emsp, spec):
    put(spec, "T1")
    reply = api.get(f"{SENDER}/t1", token=emsp.inbound_token)
    assert (reply.code, reply.data["id"]) == (1000, "T1")
    missing = api.get(f"{SENDER}/NOPE", token=emsp.inbound_token)
    assert (missing.status, missing.code) == (404, 2001)


def test_a_bad_offset_is_2001(api, emsp):
    reply = api.get(f"{SENDER}?offset=-1", token=emsp.inbound_token)
    assert reply.code == 2001


def test_put_to_the_sender_is_405_in_the_envelope(api, emsp):
    reply = api.put(SENDER, token=emsp.inbound_token, body={"a": 1})
    assert (reply.status, reply.code) == (405, 2000)


def test_the_version_details_list_both_tariffs_interfaces(api, emsp):
    reply = api.get("/ocpi/2.2.1", token=emsp.inbound_token)
    found = {(e["identifier"], e["role"]) for e in reply.data["endpoints"]}
    assert {("tariffs", "SENDER"), ("tariffs", "RECEIVER")} <= found
