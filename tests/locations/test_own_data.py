"""Our own locations (owner=None): the business rules of locations/services.py, in process.

The cascade of last_updated, the stored document never drifting from the relational fields,
import semantics, case-insensitive ids, our parties, validation, saved_in_admin and `shared`.
The partner-facing receiver is covered in test_receiver.py.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest

from locations import services
from locations.models import Connector, Evse, Location
from locations.paths import ObjectPath
from locations.render import dumps, render_location
from ocpi_platform.ocpi.errors import (
    InvalidParameters,
    LocationNotFound,
    OcpiError,
    UnknownObject,
)
from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.types import format_datetime, now_utc, parse_datetime
from outbox.models import Delivery
from tests.locations.conftest import own_location

pytestmark = pytest.mark.django_db

LOC = ObjectPath("NL", "ABC", "LOC1")
EVSE_1 = ObjectPath("NL", "ABC", "LOC1", "3256")
EVSE_2 = ObjectPath("NL", "ABC", "LOC1", "3257")
OLD = "2001-01-01T00:00:00Z"  # a last_updated in a body: ignored for our own data
# own_location()'s timestamps (location_example.json)
LOCATION_STAMP = "2015-06-29T20:39:09Z"
EVSE_1_STAMP = "2015-06-28T08:12:01Z"
CONNECTOR_1_1_STAMP = "2015-03-16T10:10:02Z"
CONNECTOR_1_2_STAMP = "2015-03-18T08:12:01Z"


# --- helpers


def counts() -> tuple[int, int, int]:
    return Location.objects.count(), Evse.objects.count(), Connector.objects.count()


def at(text: str) -> datetime:
    value = parse_datetime(text)
    assert value is not None
    return value


def evse_row(uid: str) -> Evse:
    return Evse.objects.get(location__partner=None, uid_upper=uid.upper())


def connector_row(uid: str, connector_id: str) -> Connector:
    return Connector.objects.get(evse=evse_row(uid), id_upper=connector_id.upper())


def stamps() -> dict[str, datetime]:
    """Every last_updated of our locations, EVSEs and connectors, by path."""
    out: dict[str, datetime] = {}
    for location in Location.objects.ours():
        out[location.location_id.upper()] = location.last_updated
    for evse in Evse.objects.filter(location__partner=None):
        out[evse.uid_upper] = evse.last_updated
    for connector in Connector.objects.filter(evse__location__partner=None).select_related("evse"):
        out[f"{connector.evse.uid_upper}/{connector.id_upper}"] = connector.last_updated
    return out


def stored(location_id: str = "LOC1") -> dict[str, Any]:
    """The document as stored in the database (Location.ocpi_json)."""
    location = Location.objects.ours().get(id_upper=location_id.upper())
    assert location.ocpi_json, "the document is written with every change"
    data: dict[str, Any] = json.loads(location.ocpi_json)
    return data


def fresh(location_id: str = "LOC1") -> dict[str, Any]:
    """The document rendered now from the relational fields, independent of services."""
    location = Location.objects.ours().get(id_upper=location_id.upper())
    evses = list(Evse.objects.filter(location=location))
    connectors: dict[int, list[Connector]] = {}
    for connector in Connector.objects.filter(evse__location=location):
        connectors.setdefault(connector.evse_id, []).append(connector)
    data: dict[str, Any] = json.loads(dumps(render_location(location, evses, connectors)))
    return data


def in_sync(location_id: str = "LOC1") -> dict[str, Any]:
    """The stored document equals a fresh render, and services.document gives it back."""
    doc = stored(location_id)
    assert doc == fresh(location_id)
    location = Location.objects.ours().get(id_upper=location_id.upper())
    assert services.document(location) == doc
    assert services.rerender([location]) == 1
    assert stored(location_id) == doc
    return doc


def evse_of(doc: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(e for e in doc["evses"] if e["uid"].upper() == uid.upper())


def page(date_from: datetime | None = None) -> tuple[int, list[dict[str, Any]]]:
    total, rows = services.list_page(PageRequest(0, 50, 50, date_from, None))
    return total, [json.loads(row) for row in rows]


def new_connector(connector_id: str = "3", **changes: Any) -> dict[str, Any]:
    data = {
        "id": connector_id,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 32,
        "last_updated": OLD,
    }
    data.update(changes)
    return data


def new_evse(uid: str = "3258", **changes: Any) -> dict[str, Any]:
    data = {
        "uid": uid,
        "evse_id": f"NL*ABC*E{uid}",
        "status": "AVAILABLE",
        "connectors": [new_connector("1")],
        "last_updated": OLD,
    }
    data.update(changes)
    return data


def in_party(data: dict[str, Any], country_code: str, party_id: str) -> dict[str, Any]:
    data.update(country_code=country_code, party_id=party_id)
    return data


def put_own(data: dict[str, Any], *, keep: bool = False) -> services.Outcome:
    path = ObjectPath(data["country_code"], data["party_id"], data["id"])
    return services.put(path, data, owner=None, keep_timestamps=keep)


@pytest.fixture
def mine() -> Location:
    """own_location() imported with its file timestamps: everything dated 2015."""
    outcome = put_own(own_location(), keep=True)
    assert outcome.created
    assert counts() == (1, 2, 3)
    return outcome.location


def assert_now(value: datetime, before: datetime, after: datetime) -> None:
    assert before <= value <= after, (before, value, after)


# --- the last_updated cascade, and the document never drifts -------------------------------------


@pytest.mark.parametrize("method", ["patch", "put existing", "put new"])
def test_a_connector_change_stamps_connector_evse_and_location_now(mine, method):
    old = stamps()
    path = ObjectPath("NL", "ABC", "LOC1", "3256", "3" if method == "put new" else "2")
    before = now_utc()
    if method == "patch":
        services.patch(path, {"tariff_ids": ["15"], "last_updated": OLD}, owner=None)
    else:
        services.put(path, new_connector(path.connector_id, tariff_ids=["15"]), owner=None)
    after = now_utc()

    now = stamps()
    changed = now[f"3256/{path.connector_id}"]
    assert_now(changed, before, after)
    assert now["3256"] == changed
    assert now["LOC1"] == changed
    untouched = {
        k: v for k, v in old.items() if k not in ("LOC1", "3256", f"3256/{path.connector_id}")
    }
    assert {k: now[k] for k in untouched} == untouched
    assert connector_row("3256", path.connector_id).tariff_ids == ["15"]

    doc = in_sync()
    evse = evse_of(doc, "3256")
    connector = next(c for c in evse["connectors"] if c["id"] == path.connector_id)
    assert connector["tariff_ids"] == ["15"]
    assert connector["last_updated"] == format_datetime(changed)
    assert evse["last_updated"] == format_datetime(changed)
    assert doc["last_updated"] == format_datetime(changed)
    assert evse_of(doc, "3257")["last_updated"] == LOCATION_STAMP
    assert evse["connectors"][0]["last_updated"] == CONNECTOR_1_1_STAMP
    expected_ids = ["1", "2", "3"] if method == "put new" else ["1", "2"]
    assert [c["id"] for c in evse["connectors"]] == expected_ids


def test_an_evse_status_change_stamps_the_evse_and_location_only(mine):
    old = stamps()
    before = now_utc()
    assert page(date_from=before)[0] == 0

    services.set_evse_status(EVSE_2, "CHARGING")
    after = now_utc()

    now = stamps()
    assert_now(now["3257"], before, after)
    assert now["LOC1"] == now["3257"]
    untouched = {k: v for k, v in old.items() if k not in ("LOC1", "3257")}
    assert {k: now[k] for k in untouched} == untouched
    assert now["3257/1"] == at(LOCATION_STAMP)  # the EVSE's connector is not stamped
    assert evse_row("3257").status == "CHARGING"

    doc = in_sync()
    assert evse_of(doc, "3257")["status"] == "CHARGING"
    assert evse_of(doc, "3257")["last_updated"] == format_datetime(now["3257"])
    assert evse_of(doc, "3256")["last_updated"] == EVSE_1_STAMP
    assert doc["last_updated"] == format_datetime(now["LOC1"])
    # date_from filtering sees the change through the cascade
    assert page(date_from=before) == (1, [doc])


def test_an_evse_put_stamps_the_evse_its_connectors_and_the_location(mine):
    old = stamps()
    body = copy.deepcopy(own_location()["evses"][0])
    body["status"] = "BLOCKED"
    before = now_utc()

    outcome = services.put(EVSE_1, body, owner=None)
    after = now_utc()

    assert not outcome.created
    now = stamps()
    assert_now(now["3256"], before, after)
    assert now["3256/1"] == now["3256/2"] == now["LOC1"] == now["3256"]
    assert now["3257"] == old["3257"]
    assert now["3257/1"] == old["3257/1"]
    doc = in_sync()
    assert evse_of(doc, "3256")["status"] == "BLOCKED"


def test_a_series_of_changes_never_lets_the_document_drift(mine):
    services.set_evse_status(EVSE_1, "CHARGING")
    in_sync()
    services.patch(
        ObjectPath("NL", "ABC", "LOC1", "3256", "1"),
        {"max_electric_power": 11000, "last_updated": OLD},
        owner=None,
    )
    in_sync()
    services.patch(LOC, {"name": "Gent Centrum", "last_updated": OLD}, owner=None)
    in_sync()
    services.put(ObjectPath("NL", "ABC", "LOC1", "3258"), new_evse("3258"), owner=None)
    in_sync()
    services.patch(
        EVSE_2, {"status": "BLOCKED", "floor_level": "-3", "last_updated": OLD}, owner=None
    )
    in_sync()
    services.patch(EVSE_2, {"connectors": [new_connector("9")], "last_updated": OLD}, owner=None)
    in_sync()
    services.set_evse_status(EVSE_1, "AVAILABLE")

    doc = in_sync()
    assert doc["name"] == "Gent Centrum"
    assert [e["uid"] for e in doc["evses"]] == ["3256", "3257", "3258"]
    assert [e["status"] for e in doc["evses"]] == ["AVAILABLE", "BLOCKED", "AVAILABLE"]
    assert evse_of(doc, "3256")["connectors"][0]["max_electric_power"] == 11000
    assert evse_of(doc, "3257")["floor_level"] == "-3"
    assert [c["id"] for c in evse_of(doc, "3257")["connectors"]] == ["1", "9"]
    newest = max(stamps().values())
    assert Location.objects.get().last_updated == newest
    assert doc["last_updated"] == format_datetime(newest)


def test_a_location_patch_stamps_the_location_but_not_its_evses(mine):
    old = stamps()
    before = now_utc()

    services.patch(LOC, {"name": "Gent Centrum", "last_updated": OLD}, owner=None)

    now = stamps()
    assert_now(now["LOC1"], before, now_utc())
    assert {k: v for k, v in now.items() if k != "LOC1"} == {
        k: v for k, v in old.items() if k != "LOC1"
    }
    assert in_sync()["name"] == "Gent Centrum"


# --- import semantics ----------------------------------------------------------------------------


def test_a_new_location_put_with_keep_timestamps_keeps_the_files_timestamps(mine):
    assert stored() == own_location()
    assert in_sync() == own_location()
    now = stamps()
    assert now["LOC1"] == at(LOCATION_STAMP)
    assert now["3256"] == at(EVSE_1_STAMP)
    assert now["3256/1"] == at(CONNECTOR_1_1_STAMP)
    assert now["3256/2"] == at(CONNECTOR_1_2_STAMP)
    assert now["3257"] == now["3257/1"] == at(LOCATION_STAMP)


def test_a_new_location_put_without_keep_timestamps_is_stamped_now():
    before = now_utc()

    outcome = put_own(own_location())

    assert outcome.created
    values = set(stamps().values())
    assert len(values) == 1
    assert_now(values.pop(), before, now_utc())
    in_sync()


def test_a_re_put_of_an_existing_location_is_stamped_now_even_with_keep_timestamps(mine):
    data = own_location(name="Gent Centrum")
    before = now_utc()

    outcome = put_own(data, keep=True)
    after = now_utc()

    assert not outcome.created
    assert outcome.location.pk == mine.pk
    values = set(stamps().values())
    assert len(values) == 1, "location, EVSEs and connectors share the new stamp"
    assert_now(values.pop(), before, after)
    assert counts() == (1, 2, 3)
    doc = in_sync()
    assert doc["name"] == "Gent Centrum"
    assert doc["last_updated"] != LOCATION_STAMP


def test_a_put_that_omits_an_evse_keeps_it_as_removed_and_re_adding_restores_it(mine):
    data = own_location()
    data["evses"] = data["evses"][:1]
    before = now_utc()

    put_own(data)

    assert counts() == (1, 2, 3), "our EVSEs and their connectors are never deleted"
    removed = evse_row("3257")
    assert removed.status == "REMOVED"
    assert_now(removed.last_updated, before, now_utc())
    doc = in_sync()
    assert [(e["uid"], e["status"]) for e in doc["evses"]] == [
        ("3256", "AVAILABLE"),
        ("3257", "REMOVED"),
    ]
    assert evse_of(doc, "3257")["connectors"] == own_location()["evses"][1]["connectors"]

    # Left out again: already REMOVED, so not changed (nor stamped) again.
    put_own(data)
    assert evse_row("3257").last_updated == removed.last_updated
    assert evse_row("3257").status == "REMOVED"

    put_own(own_location())

    assert counts() == (1, 2, 3)
    assert evse_row("3257").status == "RESERVED"
    doc = in_sync()
    assert [(e["uid"], e["status"]) for e in doc["evses"]] == [
        ("3256", "AVAILABLE"),
        ("3257", "RESERVED"),
    ]


def test_the_evse_order_of_the_put_is_kept(mine):
    data = own_location()
    data["evses"] = list(reversed(data["evses"]))

    put_own(data)

    assert [e["uid"] for e in in_sync()["evses"]] == ["3257", "3256"]
    assert [(e.uid, e.position) for e in Evse.objects.order_by("position")] == [
        ("3257", 0),
        ("3256", 1),
    ]

    services.put(ObjectPath("NL", "ABC", "LOC1", "3258"), new_evse("3258"), owner=None)
    services.set_evse_status(EVSE_1, "BLOCKED")

    assert [e["uid"] for e in in_sync()["evses"]] == ["3257", "3256", "3258"]


def test_the_connector_order_of_the_put_is_kept(mine):
    data = own_location()
    data["evses"][0]["connectors"].reverse()

    put_own(data)

    doc = in_sync()
    assert [c["id"] for c in evse_of(doc, "3256")["connectors"]] == ["2", "1"]


# --- case-insensitive ids ------------------------------------------------------------------------


def lettered() -> dict[str, Any]:
    data = own_location("LOC1")
    data["evses"] = [new_evse("EVSE-A", connectors=[new_connector("C1"), new_connector("C2")])]
    return data


def test_a_put_of_loc1_after_upper_case_loc1_updates_the_same_location(mine):
    outcome = put_own(own_location("loc1", name="lower case"))

    assert not outcome.created
    assert outcome.location.pk == mine.pk
    assert counts() == (1, 2, 3)
    assert in_sync("LOC1")["name"] == "lower case"

    # The party is a CiString too: still ours, still the same location.
    outcome = put_own(in_party(own_location("Loc1", name="mixed case"), "nl", "abc"))

    assert not outcome.created
    assert outcome.location.pk == mine.pk
    assert counts() == (1, 2, 3)
    assert in_sync("LOC1")["name"] == "mixed case"


def test_evse_uid_and_connector_id_are_case_insensitive():
    put_own(lettered())
    assert counts() == (1, 1, 2)

    lower = ObjectPath("nl", "abc", "loc1", "evse-a")
    body = new_evse("evse-a", status="BLOCKED", connectors=[new_connector("C1")])
    outcome = services.put(lower, body, owner=None)
    assert not outcome.created
    assert counts() == (1, 1, 1)  # the PUT EVSE has one connector: it replaces the two

    connector = services.put(
        ObjectPath("NL", "ABC", "LOC1", "Evse-A", "c1"),
        new_connector("c1", max_amperage=63),
        owner=None,
    )
    assert not connector.created
    services.set_evse_status(ObjectPath("NL", "ABC", "LOC1", "eVSE-a"), "CHARGING")
    services.patch(
        ObjectPath("NL", "ABC", "loc1", "EVSE-A", "C1"),
        {"tariff_ids": ["7"], "last_updated": OLD},
        owner=None,
    )

    assert counts() == (1, 1, 1)
    evse = evse_of(in_sync(), "EVSE-A")
    assert evse["status"] == "CHARGING"
    [connector] = evse["connectors"]
    stamp = connector.pop("last_updated")
    assert connector == {
        k: v for k, v in new_connector("c1", max_amperage=63).items() if k != "last_updated"
    } | {"tariff_ids": ["7"]}
    assert stamp == format_datetime(connector_row("EVSE-A", "C1").last_updated)
    assert stamp != OLD


def test_a_re_put_with_evse_uids_in_another_case_removes_nothing():
    put_own(lettered())
    data = lettered()
    data["evses"][0]["uid"] = "evse-a"
    data["evses"][0]["connectors"][0]["id"] = "c1"

    put_own(data)

    assert counts() == (1, 1, 2)
    assert Evse.objects.get().status == "AVAILABLE"
    assert [e["status"] for e in in_sync()["evses"]] == ["AVAILABLE"]


# --- our own location must be in one of our CPO parties -------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ObjectPath("DE", "XYZ", "LOC1"),
        ObjectPath("NL", "ABD", "LOC1"),
        ObjectPath("DE", "XYZ", "LOC1", "3256"),
    ],
    ids=["location of another party", "another party id", "EVSE of another party"],
)
def test_a_put_for_a_party_that_is_not_ours_is_2001_and_stores_nothing(path):
    data: dict[str, Any] = in_party(own_location(), path.country_code, path.party_id)
    if path.evse_uid:
        data = data["evses"][0]

    with pytest.raises(InvalidParameters) as info:
        services.put(path, data, owner=None, keep_timestamps=True)

    assert info.value.ocpi_status == 2001
    assert f"{path.country_code}/{path.party_id}" in info.value.message
    assert "NL/ABC" in info.value.message  # names the parties that are ours
    assert counts() == (0, 0, 0)


def test_our_emsp_party_is_not_a_cpo_party(settings):
    settings.OCPI_PARTIES = "NL:ABC:EMSP,BE:BEC:CPO"

    with pytest.raises(InvalidParameters) as info:
        put_own(own_location())

    assert "NL/ABC" in info.value.message
    assert counts() == (0, 0, 0)
    assert put_own(in_party(own_location(), "BE", "BEC")).created


def test_a_partners_copy_with_the_same_key_is_not_overwritten(cpo):
    services.put(LOC, own_location(), owner=cpo.partner.pk)

    with pytest.raises(InvalidParameters) as info:
        put_own(own_location(name="ours"))

    assert "another owner" in info.value.message
    location = Location.objects.get()
    assert location.partner_id == cpo.partner.pk
    assert location.name == "Gent Zuid"
    with pytest.raises(UnknownObject):
        services.patch(LOC, {"name": "ours", "last_updated": OLD}, owner=None)


# --- invalid data --------------------------------------------------------------------------------


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = own_location()
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()

BAD = [
    ("missing address", changed(("address",), _DELETE), "address"),
    ("missing time_zone", changed(("time_zone",), _DELETE), "time_zone"),
    ("missing evse status", changed(("evses", 0, "status"), _DELETE), "status"),
    (
        "missing connector standard",
        changed(("evses", 1, "connectors", 0, "standard"), _DELETE),
        "standard",
    ),
    ("wrong parking_type", changed(("parking_type",), "MOON"), "parking_type"),
    ("wrong evse status", changed(("evses", 0, "status"), "available"), "status"),
    ("wrong power_type", changed(("evses", 0, "connectors", 0, "power_type"), "AC"), "power_type"),
    ("empty connectors", changed(("evses", 0, "connectors"), []), "connectors"),
    ("too long city", changed(("city",), "x" * 46), "city"),
    ("too long floor_level", changed(("evses", 0, "floor_level"), "12345"), "floor_level"),
    ("too long evse uid", changed(("evses", 0, "uid"), "U" * 37), "uid"),
    ("comma coordinate", changed(("coordinates", "latitude"), "51,047599"), "latitude"),
    ("few decimals", changed(("coordinates", "longitude"), "3.7299"), "longitude"),
    ("number coordinate", changed(("coordinates", "latitude"), 51.047599), "latitude"),
    ("missing coordinates", changed(("coordinates",), _DELETE), "coordinates"),
]


@pytest.mark.parametrize(("data", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_an_invalid_new_location_is_2001_naming_the_field_and_stores_nothing(data, field):
    with pytest.raises(InvalidParameters) as info:
        put_own(data, keep=True)

    assert info.value.ocpi_status == 2001
    assert field in info.value.message
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(("data", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_an_invalid_replacement_changes_nothing(mine, data, field):
    old = stamps()

    with pytest.raises(InvalidParameters) as info:
        put_own(data)

    assert field in info.value.message
    assert counts() == (1, 2, 3)
    assert stamps() == old
    assert in_sync() == own_location()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (ObjectPath("NL", "ABC", "LOC1", "3258"), new_evse("3258", connectors=[]), "connectors"),
        (ObjectPath("NL", "ABC", "LOC1", "3258"), new_evse("3258", status="GONE"), "status"),
        (
            ObjectPath("NL", "ABC", "LOC1", "3256", "3"),
            new_connector("3", format="PLUG"),
            "format",
        ),
        (
            ObjectPath("NL", "ABC", "LOC1", "3256", "3"),
            {k: v for k, v in new_connector("3").items() if k != "max_voltage"},
            "max_voltage",
        ),
        (
            ObjectPath("NL", "ABC", "LOC1", "3258"),
            new_evse("3258", coordinates={"latitude": "91", "longitude": "3.729944"}),
            "latitude",
        ),
    ],
    ids=["empty connectors", "wrong status", "wrong format", "missing max_voltage", "bad lat"],
)
def test_an_invalid_evse_or_connector_put_changes_nothing(mine, path, body, field):
    with pytest.raises(InvalidParameters) as info:
        services.put(path, body, owner=None)

    assert info.value.ocpi_status == 2001
    assert field in info.value.message
    assert counts() == (1, 2, 3)
    assert in_sync() == own_location()


# --- PATCH of our own EVSE: nulls, unknown objects ---------------------------------------------


def test_a_patch_ignores_null_optional_fields(mine):
    """render.assign: a PATCH cannot remove information, a null leaves the field as it is."""
    before = now_utc()

    services.patch(
        EVSE_1,
        {
            "status": "BLOCKED",
            "floor_level": None,
            "physical_reference": None,
            "evse_id": None,
            "capabilities": None,
            "last_updated": OLD,
        },
        owner=None,
    )

    evse = evse_row("3256")
    assert evse.status == "BLOCKED"
    assert (evse.floor_level, evse.physical_reference) == ("-1", "1")
    assert evse.evse_id == "BE*BEC*E041503001"
    assert evse.capabilities == ["RESERVABLE"]
    assert_now(evse.last_updated, before, now_utc())
    doc = in_sync()
    expected = {
        **own_location()["evses"][0],
        "status": "BLOCKED",
        "last_updated": format_datetime(evse.last_updated),
    }
    assert evse_of(doc, "3256") == expected

    services.patch(LOC, {"name": None, "postal_code": None, "last_updated": OLD}, owner=None)
    doc = in_sync()
    assert (doc["name"], doc["postal_code"]) == ("Gent Zuid", "9000")


def test_a_patch_with_a_null_required_field_is_2001(mine):
    with pytest.raises(InvalidParameters) as info:
        services.patch(EVSE_1, {"status": None, "last_updated": OLD}, owner=None)

    assert "status" in info.value.message
    assert evse_row("3256").status == "AVAILABLE"
    assert in_sync() == own_location()


@pytest.mark.parametrize(
    ("path", "error", "code"),
    [
        (ObjectPath("NL", "ABC", "LOC1", "9999"), UnknownObject, 2001),
        (ObjectPath("NL", "ABC", "LOC1", "3256", "9"), UnknownObject, 2001),
        (ObjectPath("NL", "ABC", "LOC1", "9999", "1"), UnknownObject, 2001),
        (ObjectPath("NL", "ABC", "NOPE", "3256"), LocationNotFound, 2003),
        (ObjectPath("NL", "ABC", "NOPE"), UnknownObject, 2001),
    ],
)
def test_a_patch_of_an_unknown_object_raises_not_found_and_creates_nothing(mine, path, error, code):
    body = {"last_updated": OLD}
    body.update({"name": "x"} if path.kind == "location" else {})
    body.update({"status": "BLOCKED"} if path.kind == "EVSE" else {})
    body.update({"tariff_ids": ["1"]} if path.kind == "connector" else {})

    with pytest.raises(OcpiError) as info:
        services.patch(path, body, owner=None)

    assert type(info.value) is error
    assert (info.value.http_status, info.value.ocpi_status) == (404, code)
    assert counts() == (1, 2, 3)
    assert in_sync() == own_location()


def test_a_status_change_of_an_unknown_evse_raises_unknown_object(mine):
    with pytest.raises(UnknownObject) as info:
        services.set_evse_status(ObjectPath("NL", "ABC", "LOC1", "9999"), "CHARGING")

    assert "9999" in info.value.message
    assert in_sync() == own_location()


# --- saved_in_admin ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evses", "connectors", "stamped"),
    [
        ([], [], {"LOC1"}),
        (["3257"], [], {"LOC1", "3257"}),
        ([], [("3256", "2")], {"LOC1", "3256", "3256/2"}),
        (["3257"], [("3256", "1")], {"LOC1", "3257", "3256", "3256/1"}),
    ],
    ids=["location only", "one EVSE", "one connector", "EVSE and connector"],
)
def test_saved_in_admin_stamps_exactly_the_changed_objects(mine, evses, connectors, stamped):
    # What the admin did before calling saved_in_admin: the rows are already changed.
    mine.name = "Gent Centrum"
    mine.save()
    Evse.objects.filter(uid__in=evses).update(status="OUTOFORDER")
    connector_pks = [connector_row(uid, cid).pk for uid, cid in connectors]
    Connector.objects.filter(pk__in=connector_pks).update(max_amperage=32)
    old = stamps()
    before = now_utc()

    services.saved_in_admin(
        mine, evses=[evse_row(uid).pk for uid in evses], connectors=connector_pks
    )
    after = now_utc()

    now = stamps()
    assert_now(now["LOC1"], before, after)
    assert {k for k in now if now[k] != old[k]} == stamped
    assert {now[k] for k in stamped} == {now["LOC1"]}
    doc = in_sync()
    assert doc["name"] == "Gent Centrum"
    assert doc["last_updated"] == format_datetime(now["LOC1"])
    for uid in evses:
        assert evse_of(doc, uid)["status"] == "OUTOFORDER"
        assert evse_of(doc, uid)["last_updated"] == format_datetime(now["LOC1"])
    for uid, cid in connectors:
        connector = next(c for c in evse_of(doc, uid)["connectors"] if c["id"] == cid)
        assert connector["max_amperage"] == 32


def test_saved_in_admin_refuses_a_partners_location(cpo):
    copy_of_theirs = services.put(
        ObjectPath("BE", "BEC", "LOC1"),
        in_party(own_location(), "BE", "BEC"),
        owner=cpo.partner.pk,
    ).location
    stamp = copy_of_theirs.last_updated

    with pytest.raises(InvalidParameters):
        services.saved_in_admin(copy_of_theirs)

    assert Location.objects.get().last_updated == stamp


# --- the shared flag ----------------------------------------------------------------------------


def test_a_location_that_is_not_shared_is_kept_up_to_date_but_not_listed_or_pushed(mine, emsp):
    other = put_own(own_location("LOC2"), keep=True).location
    assert page()[0] == 2
    Location.objects.filter(pk=mine.pk).update(shared=False)
    Delivery.objects.all().delete()

    services.set_evse_status(EVSE_1, "CHARGING")
    services.patch(LOC, {"name": "private", "last_updated": OLD}, owner=None)

    doc = in_sync()
    assert (doc["name"], evse_of(doc, "3256")["status"]) == ("private", "CHARGING")
    assert page() == (1, [stored("LOC2")])
    with pytest.raises(UnknownObject):
        services.sender_object("LOC1", None, None, party=None)
    assert services.get_object(LOC, owner=None) == doc  # still ours, still readable
    assert not Delivery.objects.exists(), "a location that is not shared is not pushed"

    Location.objects.filter(pk=mine.pk).update(shared=True)

    total, docs = page()
    assert total == 2
    assert docs == [doc, stored("LOC2")]
    assert [d["id"] for d in docs] == ["LOC1", other.location_id]
    assert services.sender_object("loc1", "3256", None, party=None)["status"] == "CHARGING"
    services.set_evse_status(EVSE_1, "AVAILABLE")
    assert Delivery.objects.filter(partner=emsp.partner).exists()


def test_an_imported_location_is_at_least_as_new_as_its_newest_evse_and_connector():
    data = own_location("CASCADE")
    evse = data["evses"][0]
    evse["connectors"][0]["last_updated"] = "2030-01-02T03:04:05Z"  # newer than all others

    services.put(ObjectPath("NL", "ABC", "CASCADE"), data, owner=None, keep_timestamps=True)

    stored = services.document(Location.objects.get(location_id="CASCADE"))
    assert stored["evses"][0]["connectors"][0]["last_updated"] == "2030-01-02T03:04:05Z"
    assert stored["evses"][0]["last_updated"] == "2030-01-02T03:04:05Z"
    assert stored["evses"][1]["last_updated"] == data["evses"][1]["last_updated"]
    assert stored["last_updated"] == "2030-01-02T03:04:05Z"


STAMP = "2020-01-01T00:00:00Z"  # a PATCH carries one; ours are stamped now anyway


def test_a_patch_that_adds_fields_stores_the_same_text_as_a_fresh_render():
    services.put(ObjectPath("NL", "ABC", "ORDER"), own_location("ORDER"), owner=None)
    location = Location.objects.get(location_id="ORDER")
    coordinates = {"latitude": "51.047599", "longitude": "3.729944"}

    services.patch(
        ObjectPath("NL", "ABC", "ORDER", "3256"),
        {"coordinates": coordinates, "last_updated": STAMP},
        owner=None,
    )
    services.patch(
        ObjectPath("NL", "ABC", "ORDER", "3256", "1"),
        {"max_electric_power": 22000, "last_updated": STAMP},
        owner=None,
    )

    location.refresh_from_db()
    patched = location.ocpi_json
    services.rerender([location])
    location.refresh_from_db()
    assert patched == location.ocpi_json  # byte for byte, field order included
    assert json.loads(patched)["evses"][0]["coordinates"] == coordinates
