"""A page of a partner's locations stored at once (``locations.bulk.put_page``, the pull): the
same rows and documents as one PUT per location, the same rules, a few statements per page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.forms.models import model_to_dict

from kit.spec import ObjectKey
from locations import services
from locations.bulk import put_page
from locations.models import Connector, Evse, Location
from locations.paths import ObjectPath
from ocpi_platform.ocpi.errors import InvalidParameters
from ocpi_platform.ocpi.types import format_datetime
from tests.concurrency import race
from tests.conftest import make_registered
from tests.locations.conftest import example

EXAMPLES = [
    "location_example.json",
    "location_example_parking_garage_opening_hours.json",
    "location_example_uc2_destination_charger.json",
    "location_example_uc4_limited_visibility.json",
    "location_example_uc5_home_charge_point.json",
]
BASE = datetime(2030, 1, 1, tzinfo=UTC)


def key(data: dict[str, Any]) -> ObjectKey:
    return ObjectKey(data["country_code"], data["party_id"], data["id"])


def path(data: dict[str, Any]) -> ObjectPath:
    return ObjectPath(data["country_code"], data["party_id"], data["id"])


def located(ident: str, stamp: datetime = BASE, status: str = "AVAILABLE") -> dict[str, Any]:
    data = example()
    data.update(id=ident, last_updated=format_datetime(stamp))
    for evse in data["evses"]:
        evse["status"] = status
    return data


def rows(location: Location) -> list[Any]:
    """What is stored of a location, without the ids and the times of the write."""
    skip = {"id", "location", "evse", "modified_at", "created_at"}

    def clean(obj: Any) -> dict[str, Any]:
        return {k: v for k, v in model_to_dict(obj).items() if k not in skip}

    evses = list(location.evses.order_by("position"))
    return [
        clean(location),
        location.ocpi_json,
        [clean(e) for e in evses],
        [[clean(c) for c in e.connectors.order_by("position")] for e in evses],
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("name", EXAMPLES)
def test_a_spec_example_is_stored_as_one_put_stores_it(cpo, name):
    data = example(name)

    assert put_page(cpo.partner.pk, [(key(data), data)]) == [None]
    bulk = rows(Location.objects.get())
    Location.objects.all().delete()
    services.put(path(data), example(name), owner=cpo.partner.pk)
    one = rows(Location.objects.get())

    assert bulk == one
    assert json.loads(bulk[1]) == data  # and it round-trips unchanged


@pytest.mark.django_db
def test_a_page_costs_a_few_statements_whatever_its_size(cpo, django_assert_max_num_queries):
    page = [located(f"L{i}") for i in range(50)]
    with django_assert_max_num_queries(9):  # savepoints, 2 look-ups, 3 INSERTs
        assert put_page(cpo.partner.pk, [(key(d), d) for d in page]) == [None] * 50
    assert Location.objects.count() == 50
    assert Evse.objects.count() == 100
    assert Connector.objects.count() == 50 * sum(len(e["connectors"]) for e in page[0]["evses"])

    newer = [located(f"L{i}", BASE + timedelta(minutes=1), "CHARGING") for i in range(50)]
    with django_assert_max_num_queries(14):  # + the old EVSEs and connectors deleted, 1 UPDATE
        assert put_page(cpo.partner.pk, [(key(d), d) for d in newer]) == [None] * 50
    assert set(Evse.objects.values_list("status", flat=True)) == {"CHARGING"}
    assert Evse.objects.count() == 100


@pytest.mark.django_db
def test_newest_wins_an_unchanged_copy_is_not_written_and_gone_evses_go(cpo):
    owner = cpo.partner.pk
    first = [located("OLD"), located("NEW"), located("SAME")]
    put_page(owner, [(key(d), d) for d in first])
    same_before = Location.objects.get(location_id="SAME").modified_at
    fewer = located("NEW", BASE + timedelta(seconds=5))
    fewer["evses"] = fewer["evses"][:1]

    results = put_page(
        owner,
        [
            (key(d), d)
            for d in (
                located("OLD", BASE - timedelta(seconds=5), "CHARGING"),
                fewer,
                located("SAME"),
            )
        ],
    )

    assert results == [None, None, None]
    old = Location.objects.get(location_id="OLD")
    assert set(old.evses.values_list("status", flat=True)) == {"AVAILABLE"}
    new = Location.objects.get(location_id="NEW")
    assert new.last_updated == BASE + timedelta(seconds=5)
    assert new.evses.count() == 1
    assert len(json.loads(new.ocpi_json)["evses"]) == 1
    assert Location.objects.get(location_id="SAME").modified_at == same_before


@pytest.mark.django_db
def test_invalid_locations_and_another_owners_are_refused_the_rest_stored(cpo):
    other = make_registered("other", country_code="BE", party_id="OTH", role="CPO")
    theirs = {**located("THEIRS"), "party_id": "OTH"}
    services.put(path(theirs), theirs, owner=other.partner.pk)
    broken = located("BROKEN")
    broken["evses"][0]["status"] = "SLEEPING"

    results = put_page(
        cpo.partner.pk,
        [(key(d), d) for d in (located("MINE"), broken, {**theirs, "name": "Taken"})],
    )

    assert results[0] is None
    assert isinstance(results[1], InvalidParameters)
    assert "status" in results[1].message
    assert isinstance(results[2], InvalidParameters)
    assert "another owner" in results[2].message
    assert set(Location.objects.values_list("location_id", "partner_id")) == {
        ("MINE", cpo.partner.pk),
        ("THEIRS", other.partner.pk),
    }
    assert (
        json.loads(Location.objects.get(location_id="THEIRS").ocpi_json)["name"] == theirs["name"]
    )


@pytest.mark.django_db(transaction=True)
def test_a_push_of_the_same_location_during_the_page_loses_nothing():
    """A concurrent PUT inserts the location (not committed yet) while the page is written: the
    page's insert waits, fails on the unique key, and each location is stored as a PUT; the
    newest of both wins, the page's other location is stored."""
    owner = make_registered("cpo", country_code="BE", party_id="BEC", role="CPO").partner.pk
    for round_, page_is_newer in enumerate((True, False)):
        ident, other = f"R{round_}", f"S{round_}"
        pushed = located(ident, BASE + timedelta(seconds=0 if page_is_newer else 2), "CHARGING")
        paged = located(ident, BASE + timedelta(seconds=1), "BLOCKED")

        def push(data: dict[str, Any] = pushed) -> None:
            services.put(path(data), data, owner=owner)

        page = [(key(paged), paged), (key(located(other)), located(other))]
        (results,) = race(lambda page=page: put_page(owner, page), hold=push)

        assert results == [None, None]
        location = Location.objects.get(location_id=ident)
        assert set(location.evses.values_list("status", flat=True)) == {
            "BLOCKED" if page_is_newer else "CHARGING"
        }
        assert Location.objects.filter(location_id=other, partner_id=owner).exists()
