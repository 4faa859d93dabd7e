"""A partner's EVSE status PATCH takes a fast path: it must store exactly what the general
path stores, stale updates included."""

from __future__ import annotations

import json
from typing import Any

import pytest

from locations import services
from locations.models import Evse, Location
from locations.paths import ObjectPath
from tests.locations.conftest import example

pytestmark = pytest.mark.django_db

PATCHES = [
    ("3256", "CHARGING", "2015-06-29T20:40:00Z"),
    ("3256", "AVAILABLE", "2015-06-29T20:39:59Z"),  # older than what we hold: not applied
    ("3257", "BLOCKED", "2015-06-29T20:39:09Z"),  # same instant as the EVSE: applied
    ("3256", "OUTOFORDER", "2030-01-01T00:00:00.123Z"),  # newer than the location too
    ("3257", "AVAILABLE", "2014-01-01T00:00:00Z"),  # stale
]


def store(owner: int, location_id: str) -> ObjectPath:
    path = ObjectPath("BE", "BEC", location_id)
    services.put(path, {**example(), "id": location_id}, owner=owner)
    return path


def state(location_id: str) -> tuple[Any, ...]:
    location = Location.objects.get(location_id=location_id)
    doc = json.loads(location.ocpi_json)
    doc.pop("id")
    evses = Evse.objects.filter(location=location).order_by("position")
    return (
        doc,
        location.last_updated,
        [(e.uid, e.status, e.last_updated, e.fields_updated) for e in evses],
    )


def test_the_fast_path_stores_what_the_general_path_stores(cpo, monkeypatch):
    fast, general = store(cpo.partner.pk, "FAST"), store(cpo.partner.pk, "GENERAL")
    fast_outcomes, general_outcomes = [], []
    for uid, status, stamp in PATCHES:
        body = {"status": status, "last_updated": stamp}
        fast_path = ObjectPath(*fast.parts, uid)
        fast_outcomes.append(services.patch(fast_path, body, owner=cpo.partner.pk).message)
        with monkeypatch.context() as patched:
            patched.setattr(services, "_partner_status", lambda *args: None)
            general_path = ObjectPath(*general.parts, uid)
            outcome = services.patch(general_path, body, owner=cpo.partner.pk)
            general_outcomes.append(outcome.message)

    assert fast_outcomes == general_outcomes
    assert [m.startswith("Not applied") for m in fast_outcomes] == [0, 1, 0, 0, 1]
    assert state("FAST") == state("GENERAL")
    doc = state("FAST")[0]
    assert [e["status"] for e in doc["evses"]] == ["OUTOFORDER", "BLOCKED"]
    assert doc["last_updated"] == "2030-01-01T00:00:00.123Z"


def test_the_fast_path_leaves_unknown_objects_to_the_general_path(cpo):
    path = store(cpo.partner.pk, "LOC1")
    body = {"status": "CHARGING", "last_updated": "2030-01-01T00:00:00Z"}

    with pytest.raises(services.UnknownObject):
        services.patch(ObjectPath(*path.parts, "NOPE"), body, owner=cpo.partner.pk)
    with pytest.raises(services.LocationNotFound):
        services.patch(ObjectPath("BE", "BEC", "NOPE", "3256"), body, owner=cpo.partner.pk)


def test_lower_case_ids_reach_the_same_evse(cpo):
    store(cpo.partner.pk, "LOC1")
    body = {"status": "CHARGING", "last_updated": "2030-01-01T00:00:00Z"}

    services.patch(ObjectPath("be", "bec", "loc1", "3256"), body, owner=cpo.partner.pk)

    assert Evse.objects.get(uid="3256").status == "CHARGING"
