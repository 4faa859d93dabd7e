"""References across modules (a connector's tariff_ids): never refused, the admin warns."""

from __future__ import annotations

from typing import Any

import pytest

from kit import services
from kit.spec import ObjectKey
from locations import admin as locations_admin
from locations import services as location_services
from locations.models import Location
from locations.paths import ObjectPath
from tests.locations.conftest import own_location
from tests.tariffs.conftest import own_tariff

pytestmark = pytest.mark.django_db


def test_unknown_ids_are_those_we_do_not_hold(spec):
    services.put(spec, ObjectKey("NL", "ABC", "T1"), own_tariff("T1"), owner=None)
    assert services.unknown_ids("tariffs", {"t1", "T2"}, owner=None) == ["T2"]
    assert services.unknown_ids("nothing", {"T2"}, owner=None) == []


def test_a_location_naming_an_unknown_tariff_is_stored_and_the_admin_warns(spec):
    data = own_location()
    data["evses"][0]["connectors"][0]["tariff_ids"] = ["T1", "LATER"]
    location_services.put(ObjectPath("NL", "ABC", "LOC1"), data, owner=None)
    services.put(spec, ObjectKey("NL", "ABC", "T1"), own_tariff("T1"), owner=None)
    shown: list[Any] = []

    class Admin:
        def message_user(self, request: Any, message: str, level: Any) -> None:
            shown.append(message)

    locations_admin._warn_unknown_tariffs(Admin(), None, Location.objects.get())  # type: ignore[arg-type]
    [message] = shown
    assert message.startswith("Connectors name tariffs we do not have (yet): ")
    named = message.split(": ", 1)[1].rstrip(".").split(", ")
    assert "LATER" in named
    assert "T1" not in named  # held: not named
