"""The sender list served from each web process's copy (locations.listing).

The copy must list exactly what the database would: every change, new location, location no
longer shared, with date windows, after a refresh; between refreshes it may be behind.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from locations import listing, services
from locations.models import Location
from locations.paths import ObjectPath
from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.types import now_utc, parse_datetime
from tests.locations.conftest import SENDER, own_location

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_copy(settings: Any) -> Any:
    settings.OCPI_LIST_CACHE_SECONDS = 60  # refreshed only when a test says so
    listing.forget()
    yield
    listing.forget()


def put(location_id: str, **changes: Any) -> None:
    data = own_location(location_id, **changes)
    services.put(ObjectPath("NL", "ABC", location_id), data, owner=None, keep_timestamps=True)


def request(offset: int = 0, limit: int = 100, **dates: Any) -> PageRequest:
    return PageRequest(offset, limit, 100, dates.get("date_from"), dates.get("date_to"))


def refreshed(page: PageRequest) -> tuple[int, list[str]]:
    """What the copy serves after its next refresh."""
    listing._listing._checked = 0.0
    return listing.page(page)


def from_db(page: PageRequest) -> tuple[int, list[str]]:
    return services.list_page(page)


def test_the_copy_lists_what_the_database_lists():
    for n in range(1, 8):
        put(f"LOC{n}", last_updated=f"2020-01-0{n}T00:00:00Z")

    for page in (
        request(),
        request(2, 3),
        request(6, 3),
        request(9, 3),
        request(date_from=parse_datetime("2020-01-03T00:00:00Z")),
        request(1, 2, date_to=parse_datetime("2020-01-05T00:00:00Z")),
    ):
        assert listing.page(page) == from_db(page), page


def test_changes_appear_after_a_refresh_and_not_before():
    put("LOC1")
    put("LOC2")
    assert listing.page(request())[0] == 2

    services.set_evse_status(ObjectPath("NL", "ABC", "LOC1", "3256"), "CHARGING")
    put("LOC3")
    assert listing.page(request())[0] == 2  # within the refresh interval: the old copy

    assert refreshed(request()) == from_db(request())
    total, rows = listing.page(request())
    assert total == 3
    assert '"status":"CHARGING"' in rows[0]


def test_a_location_no_longer_shared_leaves_the_list_and_comes_back():
    put("LOC1")
    put("LOC2")
    listing.page(request())

    location = Location.objects.get(location_id="LOC1")
    location.shared = False
    location.save()
    assert refreshed(request()) == from_db(request()) == (1, [services.list_page(request())[1][0]])

    location.shared = True
    location.save()
    assert refreshed(request()) == from_db(request())
    assert refreshed(request())[0] == 2


def test_a_date_window_follows_a_change_of_last_updated():
    put("LOC1", last_updated="2020-01-01T00:00:00Z")
    put("LOC2", last_updated="2020-01-01T00:00:00Z")
    since = now_utc() - timedelta(minutes=1)
    assert listing.page(request(date_from=since)) == (0, [])

    services.set_evse_status(ObjectPath("NL", "ABC", "LOC2", "3257"), "BLOCKED")

    assert refreshed(request(date_from=since)) == from_db(request(date_from=since))
    assert refreshed(request(date_from=since))[0] == 1


def test_a_change_stamped_before_the_previous_refresh_but_committed_after_is_found():
    """modified_at is set before the commit: a refresh looks back a little further."""
    put("LOC1")
    listing.page(request())
    snapshot = listing._listing._snapshot
    assert snapshot is not None

    put("LOC2")
    Location.objects.filter(location_id="LOC2").update(
        modified_at=snapshot.horizon - listing.LOOK_BACK / 2
    )

    assert refreshed(request()) == from_db(request())
    assert refreshed(request())[0] == 2


def test_with_the_copy_off_every_page_is_read_from_the_database(settings):
    settings.OCPI_LIST_CACHE_SECONDS = 0
    put("LOC1")
    assert listing.page(request())[0] == 1
    put("LOC2")
    assert listing.page(request())[0] == 2


@pytest.mark.parametrize("count", [3, 30])
def test_a_page_from_the_copy_costs_no_query_beyond_the_token(
    api, emsp, count, django_assert_max_num_queries
):
    for n in range(count):
        put(f"LOC{n}")
    assert api.get(SENDER, token=emsp.inbound_token).code == 1000  # loads the copy

    with django_assert_max_num_queries(2):  # the token and its partner's roles
        reply = api.get(f"{SENDER}?limit=50", token=emsp.inbound_token)

    assert len(reply.data) == count


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "database"])
def test_a_platform_with_several_cpo_parties_lists_the_addressed_one(api, emsp, settings, copy):
    settings.OCPI_PARTIES = "NL:ABC:CPO,NL:XYZ:CPO,NL:ABC:EMSP"
    settings.OCPI_LIST_CACHE_SECONDS = 60 if copy else 0
    put("ABC1")
    put("ABC2")
    data = {**own_location("XYZ1"), "party_id": "XYZ"}
    services.put(ObjectPath("NL", "XYZ", "XYZ1"), data, owner=None)

    def listed(**to: str) -> list[str]:
        headers = {f"OCPI-to-{k.replace('_', '-')}": v for k, v in to.items()}
        reply = api.get(SENDER, token=emsp.inbound_token, headers=headers)
        assert reply.code == 1000, reply.body
        assert reply.headers["X-Total-Count"] == str(len(reply.data))
        return [item["id"] for item in reply.data]

    assert listed() == ["ABC1", "ABC2", "XYZ1"]
    assert listed(country_code="NL", party_id="xyz") == ["XYZ1"]
    assert listed(country_code="NL", party_id="ABC") == ["ABC1", "ABC2"]
    assert listed(country_code="DE", party_id="ABC") == []
