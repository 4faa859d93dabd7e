"""Receiver interface: a partner CPO pushes its locations to us (PUT, PATCH) and reads them back.

Paths: /{country_code}/{party_id}/{location_id}[/{evse_uid}[/{connector_id}]].
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from credentials.models import PartnerRole
from locations.models import Connector, Evse, Location
from tests.conftest import make_registered
from tests.locations.conftest import RECEIVER, SENDER, example

pytestmark = pytest.mark.django_db

LOC = f"{RECEIVER}/BE/BEC/LOC1"
EVSE = f"{LOC}/3256"
CONNECTOR = f"{EVSE}/2"
NEWER = "2019-06-24T12:39:09Z"  # the PATCH examples' last_updated
LOCATION_STAMP = "2015-06-29T20:39:09Z"  # location_example.json

# Every valid location example of the spec (location_put_example_add_evse.json is invalid).
EXAMPLES = [
    "location_example.json",
    "location_example_uc2_destination_charger.json",
    "location_example_uc3_destination_charger_not_published.json",
    "location_example_uc4_limited_visibility.json",
    "location_example_uc5_home_charge_point.json",
    "location_example_parking_garage_opening_hours.json",
]


# --- helpers


def counts() -> tuple[int, int, int]:
    return Location.objects.count(), Evse.objects.count(), Connector.objects.count()


def add_role(partner: Any, country_code: str, party_id: str) -> None:
    PartnerRole.objects.get_or_create(
        partner=partner.partner,
        country_code=country_code,
        party_id=party_id,
        role="CPO",
        defaults={"business_details": {"name": f"{country_code}/{party_id}"}},
    )


def url_of(data: dict[str, Any]) -> str:
    return f"{RECEIVER}/{data['country_code']}/{data['party_id']}/{data['id']}"


def new_evse(uid: str = "3258", stamp: str = NEWER) -> dict[str, Any]:
    return {
        "uid": uid,
        "evse_id": f"BE*BEC*E{uid}",
        "status": "AVAILABLE",
        "connectors": [new_connector("1", stamp)],
        "last_updated": stamp,
    }


def new_connector(connector_id: str = "3", stamp: str = NEWER) -> dict[str, Any]:
    return {
        "id": connector_id,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 32,
        "last_updated": stamp,
    }


@pytest.fixture
def stored(api, cpo) -> dict[str, Any]:
    """location_example.json (BE/BEC/LOC1) as pushed by the CPO partner."""
    data = example()
    reply = api.put(LOC, token=cpo.inbound_token, body=data)
    assert reply.status == 201, reply.body
    return data


def get(api, cpo, path: str) -> Any:
    reply = api.get(path, token=cpo.inbound_token)
    assert reply.status == 200, reply.body
    assert reply.code == 1000, reply.body
    return reply.data


def evse_of(location: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(e for e in location["evses"] if e["uid"] == uid)


# --- PUT and GET of locations


@pytest.mark.parametrize("name", EXAMPLES)
def test_spec_example_round_trips(api, cpo, name):
    data = example(name)
    add_role(cpo, data["country_code"], data["party_id"])

    first = api.put(url_of(data), token=cpo.inbound_token, body=data)

    assert (first.status, first.code) == (201, 1000), first.body
    assert get(api, cpo, url_of(data)) == data
    for evse in data.get("evses", []):
        assert get(api, cpo, f"{url_of(data)}/{evse['uid']}") == evse
        for connector in evse["connectors"]:
            path = f"{url_of(data)}/{evse['uid']}/{connector['id']}"
            assert get(api, cpo, path) == connector
    stored = counts()

    second = api.put(url_of(data), token=cpo.inbound_token, body=data)

    assert (second.status, second.code) == (200, 1000), second.body
    assert counts() == stored
    assert get(api, cpo, url_of(data)) == data
    location = Location.objects.get()
    assert location.partner_id == cpo.partner.pk


def test_the_copy_is_stored_for_the_pushing_partner_with_its_last_updated(api, cpo, stored):
    location = Location.objects.get()
    assert location.partner_id == cpo.partner.pk
    assert (location.country_code, location.party_id, location.location_id) == (
        "BE",
        "BEC",
        "LOC1",
    )
    assert counts() == (1, 2, 3)
    assert get(api, cpo, LOC)["last_updated"] == LOCATION_STAMP


def test_replacing_put_drops_optional_fields_left_out(api, cpo, stored):
    data = example()
    del data["name"]
    del data["parking_type"]
    data["last_updated"] = NEWER

    reply = api.put(LOC, token=cpo.inbound_token, body=data)

    assert (reply.status, reply.code) == (200, 1000)
    got = get(api, cpo, LOC)
    assert "name" not in got
    assert "parking_type" not in got
    assert got == data


# --- PUT of EVSEs and connectors


def test_put_new_evse_creates_it_and_raises_the_location_last_updated(api, cpo, stored):
    evse = new_evse("3258")

    reply = api.put(f"{LOC}/3258", token=cpo.inbound_token, body=evse)

    assert (reply.status, reply.code) == (201, 1000), reply.body
    location = get(api, cpo, LOC)
    assert [e["uid"] for e in location["evses"]] == ["3256", "3257", "3258"]
    assert evse_of(location, "3258") == evse
    assert location["last_updated"] == NEWER
    assert get(api, cpo, f"{LOC}/3258") == evse


def test_put_existing_evse_replaces_it_with_200(api, cpo, stored):
    evse = copy.deepcopy(stored["evses"][0])
    evse["status"] = "BLOCKED"
    evse["connectors"] = evse["connectors"][:1]
    evse["last_updated"] = NEWER

    reply = api.put(EVSE, token=cpo.inbound_token, body=evse)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert get(api, cpo, EVSE) == evse
    assert get(api, cpo, LOC)["last_updated"] == NEWER
    assert counts() == (1, 2, 2)


def test_put_new_connector_raises_evse_and_location_last_updated(api, cpo, stored):
    connector = new_connector("3")

    reply = api.put(f"{EVSE}/3", token=cpo.inbound_token, body=connector)

    assert (reply.status, reply.code) == (201, 1000), reply.body
    evse = get(api, cpo, EVSE)
    assert [c["id"] for c in evse["connectors"]] == ["1", "2", "3"]
    assert evse["connectors"][2] == connector
    assert evse["last_updated"] == NEWER
    location = get(api, cpo, LOC)
    assert location["last_updated"] == NEWER
    assert evse_of(location, "3256") == evse
    assert get(api, cpo, f"{EVSE}/3") == connector


def test_put_existing_connector_replaces_it_with_200(api, cpo, stored):
    connector = copy.deepcopy(stored["evses"][0]["connectors"][1])
    connector["max_amperage"] = 32
    connector["last_updated"] = NEWER

    reply = api.put(CONNECTOR, token=cpo.inbound_token, body=connector)

    assert (reply.status, reply.code) == (200, 1000)
    assert get(api, cpo, CONNECTOR) == connector
    assert get(api, cpo, EVSE)["last_updated"] == NEWER
    assert counts() == (1, 2, 3)


def test_put_evse_under_unknown_location_is_404_2003_and_stores_nothing(api, cpo):
    reply = api.put(f"{RECEIVER}/BE/BEC/NOPE/3258", token=cpo.inbound_token, body=new_evse())

    assert (reply.status, reply.code) == (404, 2003), reply.body
    assert "NOPE" in reply.message
    assert counts() == (0, 0, 0)


def test_put_connector_under_unknown_location_is_404_2003(api, cpo):
    reply = api.put(f"{RECEIVER}/BE/BEC/NOPE/3256/3", token=cpo.inbound_token, body=new_connector())

    assert (reply.status, reply.code) == (404, 2003), reply.body
    assert counts() == (0, 0, 0)


def test_put_connector_under_unknown_evse_is_404_and_stores_nothing(api, cpo, stored):
    reply = api.put(f"{LOC}/9999/3", token=cpo.inbound_token, body=new_connector())

    assert reply.status == 404, reply.body
    assert reply.code == 2001
    assert "9999" in reply.message
    assert counts() == (1, 2, 3)


def test_spec_add_evse_example_is_invalid_and_rejected(api, cpo, stored):
    body = example("location_put_example_add_evse.json")

    reply = api.put(EVSE, token=cpo.inbound_token, body=body)

    assert reply.code == 2001, reply.body
    for field in ("power_type", "max_voltage", "max_amperage", "physical_reference"):
        assert field in reply.message
    assert get(api, cpo, EVSE) == stored["evses"][0]


# --- PATCH


def test_patch_status_example(api, cpo, stored):
    reply = api.patch(
        EVSE, token=cpo.inbound_token, body=example("location_patch_example_status.json")
    )

    assert (reply.status, reply.code) == (200, 1000), reply.body
    expected = {**stored["evses"][0], "status": "CHARGING", "last_updated": NEWER}
    assert get(api, cpo, EVSE) == expected
    location = get(api, cpo, LOC)
    assert evse_of(location, "3256") == expected
    assert evse_of(location, "3257") == stored["evses"][1]
    assert location["last_updated"] == NEWER
    assert Evse.objects.get(uid="3256").status == "CHARGING"


def test_patch_location_name_example(api, cpo, stored):
    reply = api.patch(
        LOC, token=cpo.inbound_token, body=example("location_patch_example_location.json")
    )

    assert (reply.status, reply.code) == (200, 1000), reply.body
    expected = {**stored, "name": "Interparking Gent Zuid", "last_updated": NEWER}
    assert get(api, cpo, LOC) == expected


def test_patch_connector_tariff_example(api, cpo, stored):
    reply = api.patch(
        CONNECTOR, token=cpo.inbound_token, body=example("location_patch_example_tariff.json")
    )

    assert (reply.status, reply.code) == (200, 1000), reply.body
    connector = get(api, cpo, CONNECTOR)
    assert connector == {
        **stored["evses"][0]["connectors"][1],
        "tariff_ids": ["15"],
        "last_updated": NEWER,
    }
    evse = get(api, cpo, EVSE)
    assert evse["last_updated"] == NEWER
    assert evse["connectors"][1] == connector
    assert evse["connectors"][0] == stored["evses"][0]["connectors"][0]
    assert get(api, cpo, LOC)["last_updated"] == NEWER


def test_patch_remove_evse_example_keeps_the_evse(api, cpo, stored):
    reply = api.patch(
        EVSE, token=cpo.inbound_token, body=example("location_patch_example_remove_evse.json")
    )

    assert (reply.status, reply.code) == (200, 1000)
    location = get(api, cpo, LOC)
    assert [e["uid"] for e in location["evses"]] == ["3256", "3257"]
    assert evse_of(location, "3256")["status"] == "REMOVED"
    assert counts() == (1, 2, 3)


@pytest.mark.parametrize("path", [LOC, EVSE, CONNECTOR])
def test_patch_without_last_updated_is_2001(api, cpo, stored, path):
    body = {"name": "x"} if path == LOC else {"status": "CHARGING"}
    if path == CONNECTOR:
        body = {"tariff_ids": ["15"]}

    reply = api.patch(path, token=cpo.inbound_token, body=body)

    assert reply.code == 2001, reply.body
    assert "last_updated" in reply.message
    assert get(api, cpo, LOC) == stored


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (f"{RECEIVER}/BE/BEC/NOPE", {"name": "x", "last_updated": NEWER}, 404, 2001),
        (f"{RECEIVER}/BE/BEC/NOPE/3256", {"status": "CHARGING", "last_updated": NEWER}, 404, 2003),
        (f"{RECEIVER}/BE/BEC/NOPE/3256/1", {"tariff_ids": ["1"], "last_updated": NEWER}, 404, 2003),
        (f"{LOC}/9999", {"status": "CHARGING", "last_updated": NEWER}, 404, 2001),
        (f"{EVSE}/9", {"tariff_ids": ["1"], "last_updated": NEWER}, 404, 2001),
    ],
)
def test_patch_of_unknown_object_is_404_and_creates_nothing(
    api, cpo, stored, path, body, status, code
):
    reply = api.patch(path, token=cpo.inbound_token, body=body)

    assert (reply.status, reply.code) == (status, code), reply.body
    assert counts() == (1, 2, 3)
    assert get(api, cpo, LOC) == stored


def test_patch_of_unknown_location_without_any_stored_creates_nothing(api, cpo):
    reply = api.patch(LOC, token=cpo.inbound_token, body={"name": "x", "last_updated": NEWER})

    assert (reply.status, reply.code) == (404, 2001)
    assert counts() == (0, 0, 0)


def test_patch_evse_with_a_new_connector_list(api, cpo, stored):
    body = {"connectors": [new_connector("7")], "last_updated": NEWER}

    reply = api.patch(EVSE, token=cpo.inbound_token, body=body)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    evse = get(api, cpo, EVSE)
    assert "7" in [c["id"] for c in evse["connectors"]]
    assert evse["last_updated"] == NEWER
    assert get(api, cpo, LOC)["last_updated"] == NEWER


# --- out-of-order updates


OLDER = "2010-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", LOC, {**example(), "name": "old", "last_updated": OLDER}),
        ("PATCH", LOC, {"name": "old", "last_updated": OLDER}),
        ("PUT", EVSE, {**new_evse("3256", OLDER), "status": "BLOCKED"}),
        ("PATCH", EVSE, {"status": "BLOCKED", "last_updated": OLDER}),
        ("PUT", CONNECTOR, {**new_connector("2", OLDER), "max_amperage": 1}),
        ("PATCH", CONNECTOR, {"tariff_ids": ["old"], "last_updated": OLDER}),
    ],
)
def test_update_older_than_what_we_hold_is_acknowledged_but_not_applied(
    api, cpo, stored, method, path, body
):
    reply = api.call(method, path, token=cpo.inbound_token, body=body)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert "not applied" in reply.message.lower()
    assert get(api, cpo, LOC) == stored
    assert counts() == (1, 2, 3)


def test_newer_child_update_older_than_parent_does_not_move_parents_back(api, cpo, stored):
    # The EVSE says 2015-06-28T08:12:01Z, the location 2015-06-29T20:39:09Z.
    between = "2015-06-29T00:00:00Z"

    reply = api.patch(
        EVSE, token=cpo.inbound_token, body={"status": "BLOCKED", "last_updated": between}
    )

    assert reply.code == 1000
    evse = get(api, cpo, EVSE)
    assert (evse["status"], evse["last_updated"]) == ("BLOCKED", between)
    assert get(api, cpo, LOC)["last_updated"] == LOCATION_STAMP


def test_connector_update_does_not_move_evse_or_location_back(api, cpo, stored):
    # Connector 1 says 2015-03-16T10:10:02Z, its EVSE 2015-06-28T08:12:01Z.
    stamp = "2015-04-01T00:00:00Z"

    reply = api.patch(
        f"{EVSE}/1", token=cpo.inbound_token, body={"tariff_ids": ["99"], "last_updated": stamp}
    )

    assert reply.code == 1000
    assert get(api, cpo, f"{EVSE}/1")["tariff_ids"] == ["99"]
    assert get(api, cpo, EVSE)["last_updated"] == "2015-06-28T08:12:01Z"
    assert get(api, cpo, LOC)["last_updated"] == LOCATION_STAMP
    assert Evse.objects.get(uid="3256").last_updated.isoformat().startswith("2015-06-28T08:12:01")


def test_put_of_new_evse_older_than_the_location_keeps_the_location_last_updated(api, cpo, stored):
    reply = api.put(f"{LOC}/3258", token=cpo.inbound_token, body=new_evse("3258", OLDER))

    assert (reply.status, reply.code) == (201, 1000)
    assert get(api, cpo, LOC)["last_updated"] == LOCATION_STAMP


# --- bad input


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    del data[key]
    return data


def with_value(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


BAD_LOCATIONS = [
    ("missing address", without(example(), "address"), "address"),
    ("wrong enum", with_value(example(), ("parking_type",), "MOON"), "parking_type"),
    ("number coordinate", with_value(example(), ("coordinates", "latitude"), 51.04), "latitude"),
    (
        "comma coordinate",
        with_value(example(), ("coordinates", "latitude"), "51,047599"),
        "latitude",
    ),
    ("too long", with_value(example(), ("address",), "x" * 256), "address"),
    ("empty connectors", with_value(example(), ("evses", 0, "connectors"), []), "connectors"),
    ("missing last_updated", without(example(), "last_updated"), "last_updated"),
    ("string publish", with_value(example(), ("publish",), "true"), "publish"),
]


@pytest.mark.parametrize(
    ("body", "field"), [b[1:] for b in BAD_LOCATIONS], ids=[b[0] for b in BAD_LOCATIONS]
)
def test_invalid_location_is_2001_naming_the_field_and_stores_nothing(api, cpo, body, field):
    reply = api.put(LOC, token=cpo.inbound_token, body=body)

    assert reply.status == 200, reply.body
    assert reply.code == 2001, reply.body
    assert field in reply.message
    assert counts() == (0, 0, 0)


def test_invalid_replacement_keeps_the_stored_location(api, cpo, stored):
    body = with_value(example(), ("parking_type",), "MOON")
    body["last_updated"] = NEWER

    reply = api.put(LOC, token=cpo.inbound_token, body=body)

    assert reply.code == 2001
    assert get(api, cpo, LOC) == stored


def test_evse_with_empty_connectors_is_2001(api, cpo, stored):
    body = {**new_evse("3258"), "connectors": []}

    reply = api.put(f"{LOC}/3258", token=cpo.inbound_token, body=body)

    assert reply.code == 2001
    assert "connectors" in reply.message
    assert counts() == (1, 2, 3)


def test_invalid_patch_value_is_2001_and_changes_nothing(api, cpo, stored):
    reply = api.patch(EVSE, token=cpo.inbound_token, body={"status": "MOON", "last_updated": NEWER})

    assert reply.code == 2001
    assert "status" in reply.message
    assert get(api, cpo, LOC) == stored


def test_url_of_a_party_not_among_the_callers_roles_is_404(api, cpo):
    data = {**example(), "country_code": "NL", "party_id": "ALF"}

    reply = api.put(f"{RECEIVER}/NL/ALF/LOC1", token=cpo.inbound_token, body=data)

    assert reply.status == 404
    assert "NL/ALF" in reply.message
    assert counts() == (0, 0, 0)
    assert api.get(f"{RECEIVER}/NL/ALF/LOC1", token=cpo.inbound_token).status == 404
    patch = api.patch(
        f"{RECEIVER}/NL/ALF/LOC1",
        token=cpo.inbound_token,
        body={"name": "x", "last_updated": NEWER},
    )
    assert patch.status == 404


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (f"{RECEIVER}/BE/BEC/LOC2", example(), "id"),
        (f"{LOC}/3258", new_evse("3259"), "uid"),
        (f"{EVSE}/3", new_connector("4"), "id"),
    ],
)
def test_url_id_different_from_body_id_is_2001(api, cpo, stored, path, body, field):
    reply = api.put(path, token=cpo.inbound_token, body=body)

    assert reply.code == 2001, reply.body
    assert field in reply.message
    assert counts() == (1, 2, 3)


def test_url_id_different_from_body_id_in_a_patch_is_2001(api, cpo, stored):
    reply = api.patch(
        EVSE,
        token=cpo.inbound_token,
        body={"uid": "3257", "status": "BLOCKED", "last_updated": NEWER},
    )

    assert reply.code == 2001
    assert "uid" in reply.message
    assert get(api, cpo, LOC) == stored


@pytest.mark.parametrize(
    ("country_code", "party_id", "field"),
    [("NL", "BEC", "country_code"), ("BE", "ALF", "party_id")],
)
def test_body_party_different_from_url_is_2001(api, cpo, country_code, party_id, field):
    add_role(cpo, country_code, party_id)
    body = {**example(), "country_code": country_code, "party_id": party_id}

    reply = api.put(LOC, token=cpo.inbound_token, body=body)

    assert reply.code == 2001, reply.body
    assert field in reply.message
    assert counts() == (0, 0, 0)


def test_body_that_is_not_json_is_http_400(api, cpo):
    reply = api.put(LOC, token=cpo.inbound_token, raw='{"id": "LOC1",')

    assert reply.status == 400
    assert reply.code == 2001
    assert "JSON" in reply.message
    assert counts() == (0, 0, 0)


def test_patch_body_that_is_not_json_is_http_400(api, cpo, stored):
    reply = api.patch(EVSE, token=cpo.inbound_token, raw="status=CHARGING")

    assert reply.status == 400
    assert get(api, cpo, LOC) == stored


@pytest.mark.parametrize(
    ("raw", "kind"), [("", "no body"), ("[]", "list"), ('"LOC1"', "str"), ("null", "no body")]
)
def test_body_that_is_not_one_object_is_2001(api, cpo, raw, kind):
    reply = api.put(LOC, token=cpo.inbound_token, raw=raw)

    assert reply.code == 2001, reply.body
    assert kind in reply.message
    assert counts() == (0, 0, 0)


def test_json_array_with_two_objects_is_2001(api, cpo):
    reply = api.put(LOC, token=cpo.inbound_token, body=[example(), example()])

    assert reply.code == 2001
    assert "list" in reply.message
    assert counts() == (0, 0, 0)


def test_get_of_unknown_objects_is_404(api, cpo, stored):
    for path in (f"{RECEIVER}/BE/BEC/NOPE", f"{LOC}/9999", f"{EVSE}/9"):
        reply = api.get(path, token=cpo.inbound_token)
        assert reply.status == 404, path
        assert "status_code" in reply.body


# --- tolerance


def test_single_object_wrapped_in_a_list_is_accepted(api, cpo):
    reply = api.put(LOC, token=cpo.inbound_token, body=[example()])

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert get(api, cpo, LOC) == example()

    patch = api.patch(
        EVSE, token=cpo.inbound_token, body=[{"status": "BLOCKED", "last_updated": NEWER}]
    )

    assert patch.code == 1000
    assert get(api, cpo, EVSE)["status"] == "BLOCKED"


def test_lower_case_ids_in_the_url_address_the_same_object(api, cpo, stored):
    lower = f"{RECEIVER}/be/bec/loc1"

    assert get(api, cpo, lower) == stored
    assert get(api, cpo, f"{lower}/3256/2") == stored["evses"][0]["connectors"][1]

    replaced = {**example(), "name": "again", "last_updated": NEWER}
    reply = api.put(lower, token=cpo.inbound_token, body=replaced)
    assert (reply.status, reply.code) == (200, 1000), reply.body

    patch = api.patch(
        f"{lower}/3256", token=cpo.inbound_token, body={"status": "BLOCKED", "last_updated": NEWER}
    )
    assert patch.code == 1000
    assert counts() == (1, 2, 3)
    got = get(api, cpo, LOC)
    assert got["name"] == "again"
    assert evse_of(got, "3256")["status"] == "BLOCKED"


def test_lower_case_url_for_a_new_location_then_upper_case_url(api, cpo):
    reply = api.put(f"{RECEIVER}/be/bec/loc1", token=cpo.inbound_token, body=example())

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert get(api, cpo, LOC) == example()


def test_body_ids_in_another_case_than_the_url_are_accepted(api, cpo):
    body = {**example(), "country_code": "be", "party_id": "bec", "id": "loc1"}

    reply = api.put(LOC, token=cpo.inbound_token, body=body)

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert get(api, cpo, LOC) == body  # the original spelling is given back

    evse = {**new_evse("abc9")}
    reply = api.put(f"{LOC}/ABC9", token=cpo.inbound_token, body=evse)
    assert (reply.status, reply.code) == (201, 1000), reply.body
    connector = new_connector("c1")
    reply = api.put(f"{LOC}/ABC9/C1", token=cpo.inbound_token, body=connector)
    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert get(api, cpo, f"{LOC}/abc9/c1") == connector


def test_ids_differing_only_in_case_are_one_object(api, cpo, stored):
    evse = new_evse("3258")
    assert api.put(f"{LOC}/3258", token=cpo.inbound_token, body=evse).status == 201
    body = {**new_evse("3258"), "status": "BLOCKED"}
    reply = api.put(f"{LOC}/3258", token=cpo.inbound_token, body=body)
    assert reply.status == 200

    body = {**example(), "id": "Loc1", "last_updated": NEWER}
    reply = api.put(f"{RECEIVER}/BE/BEC/Loc1", token=cpo.inbound_token, body=body)

    assert (reply.status, reply.code) == (200, 1000)
    assert Location.objects.count() == 1


@pytest.mark.parametrize("slash", ["", "/"])
def test_paths_with_and_without_trailing_slash_work_without_redirects(api, cpo, slash):
    put = api.put(LOC + slash, token=cpo.inbound_token, body=example())
    assert (put.status, put.code) == (201, 1000), put.body

    for path in (LOC + slash, EVSE + slash, CONNECTOR + slash):
        reply = api.get(path, token=cpo.inbound_token)
        assert reply.status == 200, path
        assert reply.code == 1000

    patch = api.patch(
        EVSE + slash, token=cpo.inbound_token, body={"status": "BLOCKED", "last_updated": NEWER}
    )
    assert (patch.status, patch.code) == (200, 1000)
    put_evse = api.put(f"{LOC}/3258{slash}", token=cpo.inbound_token, body=new_evse("3258"))
    assert put_evse.status == 201


def test_routing_headers_are_swapped_on_the_response(api, cpo, stored):
    headers = {
        "OCPI-from-country-code": "BE",
        "OCPI-from-party-id": "BEC",
        "OCPI-to-country-code": "NL",
        "OCPI-to-party-id": "ABC",
    }

    reply = api.get(LOC, token=cpo.inbound_token, headers=headers)

    assert reply.headers["OCPI-from-country-code"] == "NL"
    assert reply.headers["OCPI-from-party-id"] == "ABC"
    assert reply.headers["OCPI-to-country-code"] == "BE"
    assert reply.headers["OCPI-to-party-id"] == "BEC"
    put = api.put(LOC, token=cpo.inbound_token, body=example(), headers=headers)
    assert put.headers["OCPI-to-party-id"] == "BEC"


# --- authentication and ownership


def test_without_token_is_401_envelope(api, cpo, stored):
    for method in ("GET", "PUT", "PATCH"):
        reply = api.call(method, LOC, body=example())
        assert reply.status == 401, method
        assert reply.code == 2000
        assert reply.message
        assert "timestamp" in reply.body


def test_token_a_is_401(api, invited, cpo):
    reply = api.put(LOC, token=invited.token_a, body=example())

    assert reply.status == 401
    assert "token A" in reply.message
    assert counts() == (0, 0, 0)


def test_unknown_token_is_401(api, cpo):
    assert api.get(LOC, token="not-a-token").status == 401


def test_another_partner_may_not_read_the_copy(api, cpo, stored, emsp):
    # The eMSP is DE/XYZ: the copy's party is not one of its roles.
    assert api.get(LOC, token=emsp.inbound_token).status == 404
    assert api.get(f"{RECEIVER}/DE/XYZ/LOC1", token=emsp.inbound_token).status == 404


def test_another_partner_neither_reads_nor_overwrites_the_copy(api, cpo, stored):
    other = make_registered(
        "be-other", country_code="BE", party_id="OTH", role="CPO", outbound_token="other-token"
    )

    assert api.get(LOC, token=other.inbound_token).status == 404
    reply = api.put(LOC, token=other.inbound_token, body={**example(), "name": "hijack"})
    assert reply.code != 1000
    patch = api.patch(
        LOC, token=other.inbound_token, body={"name": "hijack", "last_updated": NEWER}
    )
    assert patch.status == 404
    assert get(api, cpo, LOC) == stored


def test_the_cpo_cannot_push_into_our_own_party(api, cpo):
    add_role(cpo, "NL", "ABC")
    data = {**example(), "country_code": "NL", "party_id": "ABC"}
    from locations import services
    from locations.paths import ObjectPath

    services.put(ObjectPath("NL", "ABC", "LOC1"), data, owner=None, keep_timestamps=True)

    reply = api.put(f"{RECEIVER}/NL/ABC/LOC1", token=cpo.inbound_token, body={**data, "name": "x"})

    assert reply.code == 2001
    assert Location.objects.get().partner_id is None
    assert Location.objects.get().name == "Gent Zuid"


# --- version details


def test_version_details_list_both_locations_interfaces_with_working_urls(api, cpo):
    reply = api.get("/ocpi/2.2.1", token=cpo.inbound_token)

    assert reply.code == 1000
    endpoints = {(e["identifier"], e["role"]): e["url"] for e in reply.data["endpoints"]}
    sender = endpoints[("locations", "SENDER")]
    receiver = endpoints[("locations", "RECEIVER")]
    assert sender == f"http://testserver{SENDER}/"
    assert receiver == f"http://testserver{RECEIVER}/"

    put = api.put(
        receiver.removeprefix("http://testserver") + "BE/BEC/LOC1",
        token=cpo.inbound_token,
        body=example(),
    )
    assert put.status == 201
    listed = api.get(sender.removeprefix("http://testserver"), token=cpo.inbound_token)
    assert listed.code == 1000
    assert listed.data == []  # a partner's copy is not ours to send
