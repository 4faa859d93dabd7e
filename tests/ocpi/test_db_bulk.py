"""``update_rows``: one UPDATE for many rows, each value adapted and cast as a save would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from locations.models import Location
from ocpi_platform.db.bulk import update_rows

pytestmark = pytest.mark.django_db


def location(ident: str) -> Location:
    return Location.objects.create(
        country_code="NL", party_id="ABC", location_id=ident, address="Street 1", city="Town",
        country="NLD", latitude="52.1", longitude="4.3", time_zone="Europe/Amsterdam",
        facilities=["CAFE"], name="Before",
    )  # fmt: skip


def test_every_kind_of_value_is_written_to_its_own_row():
    first, second, untouched = location("A"), location("B"), location("C")
    stamp = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    first.name, first.facilities, first.last_updated = None, {"nested": [1, "x"]}, stamp
    second.name, second.facilities, second.charging_when_closed = "O'Brien", None, True

    assert (
        update_rows([first, second], ["name", "facilities", "last_updated", "charging_when_closed"])
        == 2
    )

    a, b, c = (Location.objects.get(location_id=i) for i in "ABC")
    assert (a.name, a.facilities, a.last_updated) == (None, {"nested": [1, "x"]}, stamp)
    assert (b.name, b.facilities, b.charging_when_closed) == ("O'Brien", None, True)
    assert (c.name, c.facilities) == ("Before", ["CAFE"])
    assert untouched.pk == c.pk


def test_nothing_to_write_is_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert update_rows([], ["name"]) == 0
