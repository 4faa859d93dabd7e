"""locations.schema: the spec examples pass unchanged, every rule has a failing case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.serializers import ValidationError

from locations import schema
from locations.schema import (
    validate_connector,
    validate_energy_mix,
    validate_evse,
    validate_hours,
    validate_location,
)
from ocpi_platform.ocpi.types import format_datetime
from tests.conftest import load_example
from tests.schema_helpers import MISSING, assert_error, assert_plain, changed, errors

NOW = "2019-06-24T12:39:09Z"

# --- helpers ------------------------------------------------------------------------------------


def as_json(value: Any) -> Any:
    """The validated output with its datetimes written back as OCPI text."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    return value


def location() -> dict[str, Any]:
    return load_example("location_example.json")


def evse() -> dict[str, Any]:
    result: dict[str, Any] = location()["evses"][0]
    return result


def connector() -> dict[str, Any]:
    result: dict[str, Any] = evse()["connectors"][0]
    return result


# --- the spec examples --------------------------------------------------------------------------

LOCATION_EXAMPLES = [
    "location_example.json",
    "location_example_uc2_destination_charger.json",
    "location_example_uc3_destination_charger_not_published.json",
    "location_example_uc4_limited_visibility.json",
    "location_example_uc5_home_charge_point.json",
    "location_example_parking_garage_opening_hours.json",
]


@pytest.mark.parametrize("name", LOCATION_EXAMPLES)
def test_location_examples_pass_unchanged(name):
    data = load_example(name)

    result = validate_location(data)

    assert as_json(result) == data
    assert_plain(result)
    assert result["last_updated"].tzinfo == UTC
    for item in result.get("evses") or []:
        assert isinstance(item["last_updated"], datetime)
        assert all(isinstance(c["last_updated"], datetime) for c in item["connectors"])


def test_location_output_types():
    result = validate_location(location())

    assert result["last_updated"] == datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)
    assert result["evses"][0]["connectors"][0]["last_updated"] == datetime(
        2015, 3, 16, 10, 10, 2, tzinfo=UTC
    )
    assert result["evses"][0]["connectors"][0]["max_voltage"] == 220
    assert "charging_when_closed" not in result


@pytest.mark.parametrize(
    "name",
    [
        "location_hours_247_open_exception_closing.json",
        "location_hours_opening_hours_with_exceptional_closing.json",
        "location_hours_opening_hours_with_exceptional_opening.json",
    ],
)
def test_hours_examples_pass_unchanged(name):
    data = load_example(name)

    result = validate_hours(data)

    assert result == data
    assert_plain(result)


def test_regular_hours_example_passes_unchanged():
    data = load_example("location_regularhours_example.json")

    assert validate_hours(data["opening_times"]) == data["opening_times"]


@pytest.mark.parametrize(
    "name",
    [
        "location_energymix_example_complete.json",
        "location_energymix_example_energy_provider.json",
        "location_energymix_example_simple.json",
    ],
)
def test_energy_mix_examples_pass_unchanged(name):
    data = load_example(name)["energy_mix"]

    result = validate_energy_mix(data)

    assert result == data
    assert_plain(result)


def test_energy_mix_numbers_come_back_as_given():
    result = validate_energy_mix(
        load_example("location_energymix_example_complete.json")["energy_mix"]
    )

    assert type(result["energy_sources"][0]["percentage"]) is float
    assert type(result["environ_impact"][1]["amount"]) is int


@pytest.mark.parametrize(
    ("name", "validate"),
    [
        ("location_patch_example_location.json", validate_location),
        ("location_patch_example_status.json", validate_evse),
        ("location_patch_example_remove_evse.json", validate_evse),
        ("location_patch_example_tariff.json", validate_connector),
    ],
)
def test_patch_examples_pass_unchanged(name, validate):
    data = load_example(name)

    result = validate(data, partial=True)

    assert as_json(result) == data
    assert result["last_updated"] == datetime(2019, 6, 24, 12, 39, 9, tzinfo=UTC)
    assert set(result) == set(data)


def test_put_add_evse_example_is_rejected_naming_every_defect():
    lines = errors(validate_evse, load_example("location_put_example_add_evse.json"))

    for field in ("power_type", "max_voltage", "max_amperage", "last_updated"):
        assert_error(lines, f"connectors[0].{field}: This field is required.")
    assert_error(lines, "physical_reference: must be a string, not a number")


def test_evse_and_connector_alone():
    result = validate_evse(evse())
    assert as_json(result) == evse()
    assert isinstance(result["connectors"][0]["last_updated"], datetime)

    assert as_json(validate_connector(connector())) == connector()


# --- output conventions -------------------------------------------------------------------------


def test_only_present_keys_come_back_nulls_stay_and_unknown_keys_go():
    data = location()
    data.update(name=None, postal_code=None, evses=None, opening_times=None, floor=-1)
    del data["operator"]

    result = validate_location(data)

    assert result["name"] is None
    assert result["evses"] is None
    assert result["opening_times"] is None
    assert "operator" not in result
    assert "state" not in result
    assert "floor" not in result


def test_strings_come_back_as_given():
    data = changed(location(), ("address",), "  F.Rooseveltlaan 3A ")
    data["id"] = "loc-1a"
    data["evses"][0]["uid"] = "abc"

    result = validate_location(data)

    assert result["address"] == "  F.Rooseveltlaan 3A "
    assert result["id"] == "loc-1a"
    assert result["evses"][0]["uid"] == "abc"


def test_datetimes_are_parsed_leniently_and_normalized():
    data = changed(location(), ("last_updated",), "2015-06-29T20:39:09.1234")
    data["evses"][0]["status_schedule"] = [
        {
            "period_begin": "2020-01-01T10:00:00",
            "period_end": "2020-01-02T10:00:00.5Z",
            "status": "PLANNED",
        }
    ]
    data["opening_times"] = {
        "twentyfourseven": True,
        "exceptional_closings": [
            {"period_begin": "2018-12-25T03:00:00", "period_end": "2018-12-25T05:00:00.000Z"}
        ],
    }

    result = validate_location(data)

    assert result["last_updated"] == datetime(2015, 6, 29, 20, 39, 9, 123400, tzinfo=UTC)
    assert result["evses"][0]["status_schedule"] == [
        {
            "period_begin": "2020-01-01T10:00:00Z",
            "period_end": "2020-01-02T10:00:00.500Z",
            "status": "PLANNED",
        }
    ]
    assert result["opening_times"]["exceptional_closings"] == [
        {"period_begin": "2018-12-25T03:00:00Z", "period_end": "2018-12-25T05:00:00Z"}
    ]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("evses",), []),
        (("evses",), MISSING),
        (("directions",), [{"language": "en", "text": "Left at the church"}]),
        (("related_locations",), [{"latitude": "51.047600", "longitude": "3.729945"}]),
        (("facilities",), ["HOTEL", "WIFI"]),
        (("publish",), False),
        (("coordinates", "latitude"), "-33.8688197"),
        (("coordinates", "longitude"), "-151.2092955"),
        (("coordinates", "latitude"), "-90.00000"),
        (("evses", 0, "connectors", 0, "standard"), "IEC_60309_2_single_16"),
        (("evses", 0, "connectors", 0, "max_electric_power"), 150000),
        (
            ("evses", 0, "images"),
            [{"url": "https://x.test/a.png", "category": "CHARGER", "type": "png", "width": 99999}],
        ),
        (
            ("energy_mix",),
            {"is_green_energy": True, "energy_sources": [{"source": "SOLAR", "percentage": 100}]},
        ),
        (("charging_when_closed",), False),
    ],
)
def test_valid_variations(path, value):
    data = changed(location(), path, value)

    assert as_json(validate_location(data)) == data


def test_publish_allowed_to_group_id_alone_is_enough():
    data = location()
    data.update(publish=False, publish_allowed_to=[{"group_id": "G1"}])

    assert validate_location(data)["publish_allowed_to"] == [{"group_id": "G1"}]


# --- failing cases ------------------------------------------------------------------------------

CONNECTOR = ("evses", 0, "connectors", 0)
HOURS_24_7_FALSE = {"twentyfourseven": False}


def _hours(begin: str, end: str, weekday: Any = 1) -> dict[str, Any]:
    return {
        "twentyfourseven": False,
        "regular_hours": [{"weekday": weekday, "period_begin": begin, "period_end": end}],
    }


LAT_REGEX = r"must be a decimal string like 51.047599 (regex -?[0-9]{1,2}\.[0-9]{5,7})"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # required fields
        (("address",), MISSING, "address: This field is required."),
        (("coordinates",), MISSING, "coordinates: This field is required."),
        (("last_updated",), MISSING, "last_updated: This field is required."),
        (("city",), None, "city: This field may not be null."),
        (("coordinates", "longitude"), MISSING, "coordinates.longitude: This field is required."),
        (("evses", 0, "connectors"), MISSING, "evses[0].connectors: This field is required."),
        (("evses", 0, "connectors"), None, "evses[0].connectors: This field may not be null."),
        (
            (*CONNECTOR, "standard"),
            MISSING,
            "evses[0].connectors[0].standard: This field is required.",
        ),
        (("operator",), {}, "operator.name: This field is required."),
        # enums
        (
            ("evses", 0, "status"),
            "FOO",
            "evses[0].status: 'FOO' is not one of AVAILABLE, BLOCKED, CHARGING,",
        ),
        (("evses", 0, "status"), "available", "evses[0].status: 'available' is not one of"),
        (
            (*CONNECTOR, "standard"),
            "IEC_60309_2_SINGLE_16",
            "evses[0].connectors[0].standard: 'IEC_60309_2_SINGLE_16' is not one of",
        ),
        (
            (*CONNECTOR, "format"),
            "PLUG",
            "evses[0].connectors[0].format: 'PLUG' is not one of SOCKET, CABLE",
        ),
        (
            (*CONNECTOR, "power_type"),
            ["DC"],
            "evses[0].connectors[0].power_type: ['DC'] is not one of",
        ),
        (("parking_type",), "on_street", "parking_type: 'on_street' is not one of"),
        (("facilities",), ["HOTEL", "SPA"], "facilities[1]: 'SPA' is not one of"),
        (
            ("evses", 0, "capabilities"),
            "RESERVABLE",
            "evses[0].capabilities: Expected a list of items",
        ),
        (
            ("evses", 0, "parking_restrictions"),
            ["EV_ONLY", None],
            "evses[0].parking_restrictions[1]: This field may not be null.",
        ),
        # coordinates
        (("coordinates", "latitude"), "51.0475", "coordinates.latitude: " + LAT_REGEX),
        (("coordinates", "latitude"), "51.04759912", "coordinates.latitude: " + LAT_REGEX),
        (("coordinates", "latitude"), "51,047599", "coordinates.latitude: " + LAT_REGEX),
        (("coordinates", "latitude"), "151.047599", "coordinates.latitude: " + LAT_REGEX),
        (
            ("coordinates", "latitude"),
            51.047599,
            "coordinates.latitude: must be a string, not a number",
        ),
        (
            ("coordinates", "latitude"),
            "91.000000",
            "coordinates.latitude: must be between -90 and 90",
        ),
        (
            ("coordinates", "longitude"),
            "3.7299",
            "coordinates.longitude: must be a decimal string like 3.729944 "
            r"(regex -?[0-9]{1,3}\.[0-9]{5,7})",
        ),
        (
            ("coordinates", "longitude"),
            "-180.000001",
            "coordinates.longitude: must be between -180 and 180",
        ),
        (
            ("evses", 0, "coordinates"),
            {"latitude": "51.047599"},
            "evses[0].coordinates.longitude: This field is required.",
        ),
        (
            ("related_locations",),
            [{"latitude": "x", "longitude": "3.729944"}],
            "related_locations[0].latitude: must be a decimal string",
        ),
        # string lengths, control characters, CiString
        (("address",), "a" * 256, "address: must be at most 255 characters"),
        (("id",), "x" * 37, "id: must be at most 36 characters"),
        (("city",), "c" * 46, "city: must be at most 45 characters"),
        (
            ("evses", 0, "physical_reference"),
            "p" * 17,
            "evses[0].physical_reference: must be at most 16 characters",
        ),
        (
            (*CONNECTOR, "tariff_ids"),
            ["t" * 37],
            "evses[0].connectors[0].tariff_ids[0]: must be at most 36 characters",
        ),
        (("name",), "Gent\nZuid", "name: must not contain control characters"),
        (("address",), "Tab\there", "address: must not contain control characters"),
        (("city",), "Gent\x85", "city: must not contain control characters"),
        (("id",), "LOC€", "id: must contain only printable ASCII characters"),
        (("id",), "", "id: This field may not be blank."),
        (("party_id",), 123, "party_id: must be a string, not a number"),
        (("name",), "", "name: This field may not be blank."),
        # int, number, boolean
        (
            (*CONNECTOR, "max_voltage"),
            "220",
            'evses[0].connectors[0].max_voltage: must be a JSON integer, got "220"',
        ),
        (
            (*CONNECTOR, "max_voltage"),
            220.5,
            "evses[0].connectors[0].max_voltage: must be a JSON integer, got 220.5",
        ),
        (
            (*CONNECTOR, "max_amperage"),
            True,
            "evses[0].connectors[0].max_amperage: must be a JSON integer, got true",
        ),
        (
            (*CONNECTOR, "max_amperage"),
            -16,
            "evses[0].connectors[0].max_amperage: must be at least 0",
        ),
        (("publish",), "true", 'publish: must be true or false, got "true"'),
        (("publish",), 1, "publish: must be true or false, got 1"),
        (
            ("charging_when_closed",),
            "false",
            'charging_when_closed: must be true or false, got "false"',
        ),
        (
            ("energy_mix",),
            {"is_green_energy": "yes"},
            'energy_mix.is_green_energy: must be true or false, got "yes"',
        ),
        (
            ("energy_mix",),
            {"is_green_energy": True, "energy_sources": [{"source": "WIND", "percentage": 101}]},
            "energy_mix.energy_sources[0].percentage: must be between 0 and 100",
        ),
        (
            ("energy_mix",),
            {"is_green_energy": True, "energy_sources": [{"source": "WIND", "percentage": "50"}]},
            'energy_mix.energy_sources[0].percentage: must be a JSON number, got "50"',
        ),
        (
            ("energy_mix",),
            {"is_green_energy": True, "energy_sources": [{"source": "HYDRO", "percentage": 50}]},
            "energy_mix.energy_sources[0].source: 'HYDRO' is not one of",
        ),
        (
            ("energy_mix",),
            {
                "is_green_energy": True,
                "environ_impact": [{"category": "CARBON_DIOXIDE", "amount": -1}],
            },
            "energy_mix.environ_impact[0].amount: must be at least 0",
        ),
        (
            ("energy_mix",),
            {"is_green_energy": True, "supplier_name": "s" * 65},
            "energy_mix.supplier_name: must be at most 64 characters",
        ),
        # images, URLs, DateTimes
        (
            ("images",),
            [
                {
                    "url": "https://x.test/a.png",
                    "category": "CHARGER",
                    "type": "png",
                    "width": 100000,
                }
            ],
            "images[0].width: must be between 0 and 99999",
        ),
        (
            ("images",),
            [
                {
                    "url": "https://x.test/a.png",
                    "category": "CHARGER",
                    "type": "png",
                    "height": "600",
                }
            ],
            'images[0].height: must be a JSON integer, got "600"',
        ),
        (
            ("images",),
            [{"url": "https://x.test/a.png", "category": "PHOTO", "type": "png"}],
            "images[0].category: 'PHOTO' is not one of",
        ),
        (
            ("images",),
            [{"url": "https://x.test/a.png", "category": "OTHER", "type": "jpeg2"}],
            "images[0].type: must be at most 4 characters",
        ),
        (
            (*CONNECTOR, "terms_and_conditions"),
            "not a url",
            "evses[0].connectors[0].terms_and_conditions: is not a valid http(s) URL",
        ),
        (
            ("last_updated",),
            "yesterday",
            'last_updated: must be a DateTime like 2015-06-29T20:39:09Z, got "yesterday"',
        ),
        (("last_updated",), "2015-13-29T20:39:09Z", "last_updated: must be a DateTime like"),
        (
            (*CONNECTOR, "last_updated"),
            1435610349,
            "evses[0].connectors[0].last_updated: must be a DateTime like",
        ),
        (
            ("evses", 0, "status_schedule"),
            [{"status": "PLANNED"}],
            "evses[0].status_schedule[0].period_begin: This field is required.",
        ),
        # DisplayText
        (
            ("directions",),
            [{"language": "eng", "text": "x"}],
            "directions[0].language: must be at most 2 characters",
        ),
        (("directions",), [{"language": "en"}], "directions[0].text: This field is required."),
        # nested object of the wrong JSON type
        (("evses", 0), "3256", "evses[0]: Invalid data. Expected a dictionary"),
    ],
)
def test_invalid_location(path, value, expected):
    assert_error(errors(validate_location, changed(location(), path, value)), expected)


def test_evse_with_empty_connectors_list():
    lines = errors(validate_location, changed(location(), ("evses", 0, "connectors"), []))

    assert lines == ["evses[0].connectors: must contain at least one connector"]


def test_duplicate_evse_uid_differing_only_by_case():
    data = location()
    data["evses"][0]["uid"] = "evse-a"
    data["evses"][1]["uid"] = "EVSE-A"

    assert errors(validate_location, data) == [
        "evses: EVSE uid 'EVSE-A' appears more than once (ids are compared case-insensitively)"
    ]


def test_duplicate_connector_id_differing_only_by_case():
    data = evse()
    data["connectors"][0]["id"] = "a"
    data["connectors"][1]["id"] = "A"

    assert_error(errors(validate_evse, data), "connectors: connector id 'A' appears more than once")


# --- publish / publish_allowed_to ----------------------------------------------------------------


def test_publish_allowed_to_needs_publish_false():
    data = location()
    data["publish_allowed_to"] = [{"visual_number": "12345-67", "issuer": "NewMotion"}]

    assert errors(validate_location, data) == [
        "publish_allowed_to: is only allowed when publish is false"
    ]


def test_empty_publish_allowed_to_is_fine_with_publish_true():
    data = changed(location(), ("publish_allowed_to",), [])

    assert validate_location(data)["publish_allowed_to"] == []


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"issuer": "NewMotion"},
            "publish_allowed_to[0]: at least one of uid, visual_number or group_id must be set",
        ),
        (
            {"type": "RFID"},
            "publish_allowed_to[0]: at least one of uid, visual_number or group_id must be set",
        ),
        (
            {"uid": None, "group_id": None},
            "publish_allowed_to[0]: at least one of uid, visual_number or group_id must be set",
        ),
        ({"uid": "12345678905880"}, "publish_allowed_to[0].type: is required when uid is set"),
        (
            {"visual_number": "0123456-99"},
            "publish_allowed_to[0].issuer: is required when visual_number is set",
        ),
        (
            {"uid": "1", "type": "rfid"},
            "publish_allowed_to[0].type: 'rfid' is not one of AD_HOC_USER, APP_USER, OTHER, RFID",
        ),
        ({"group_id": "g" * 37}, "publish_allowed_to[0].group_id: must be at most 36 characters"),
    ],
)
def test_publish_token_type_constraints(entry, expected):
    data = location()
    data.update(publish=False, publish_allowed_to=[entry])

    assert_error(errors(validate_location, data), expected)


# --- Hours -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        (
            _hours("18:00", "07:00"),
            "regular_hours[0].period_end: must be later than period_begin (18:00)",
        ),
        (
            _hours("08:00", "08:00"),
            "regular_hours[0].period_end: must be later than period_begin (08:00)",
        ),
        (_hours("7:00", "18:00"), "regular_hours[0].period_begin: must be a time like 08:00"),
        (_hours("08:00", "24:00"), "regular_hours[0].period_end: must be a time like 20:00"),
        (_hours("08:00", "18:00", weekday=8), "regular_hours[0].weekday: must be between 1 and 7"),
        (_hours("08:00", "18:00", weekday=0), "regular_hours[0].weekday: must be between 1 and 7"),
        (
            _hours("08:00", "18:00", weekday="1"),
            'regular_hours[0].weekday: must be a JSON integer, got "1"',
        ),
        (
            {**_hours("08:00", "18:00"), "twentyfourseven": True},
            "regular_hours: must be empty when twentyfourseven is true",
        ),
        (
            HOURS_24_7_FALSE,
            "regular_hours: must have at least one entry when twentyfourseven is false",
        ),
        ({**HOURS_24_7_FALSE, "regular_hours": []}, "regular_hours: must have at least one entry"),
        ({"regular_hours": []}, "twentyfourseven: This field is required."),
        ({"twentyfourseven": "true"}, 'twentyfourseven: must be true or false, got "true"'),
        (
            {
                "twentyfourseven": True,
                "exceptional_openings": [{"period_begin": "2018-12-25T05:00:00Z"}],
            },
            "exceptional_openings[0].period_end: This field is required.",
        ),
        (
            {
                "twentyfourseven": True,
                "exceptional_closings": [
                    {"period_begin": "25-12-2018", "period_end": "2018-12-25T06:00:00Z"}
                ],
            },
            "exceptional_closings[0].period_begin: must be a DateTime like",
        ),
    ],
)
def test_invalid_hours(hours, expected):
    assert_error(errors(validate_hours, hours), expected)
    assert_error(
        errors(validate_location, changed(location(), ("opening_times",), hours)),
        "opening_times." + expected,
    )


def test_twentyfourseven_with_empty_or_null_regular_hours_is_fine():
    assert validate_hours({"twentyfourseven": True, "regular_hours": []})["regular_hours"] == []
    assert validate_hours({"twentyfourseven": True, "regular_hours": None})["regular_hours"] is None


# --- PATCH (partial=True) ----------------------------------------------------------------------


def test_patch_without_last_updated_is_rejected():
    for validate in (validate_location, validate_evse, validate_connector):
        assert errors(validate, {"name": "x"}, partial=True) == [
            "last_updated: This field is required; every PATCH must carry it."
        ]


def test_patch_with_null_last_updated_is_rejected():
    assert errors(validate_evse, {"status": "CHARGING", "last_updated": None}, partial=True) == [
        "last_updated: This field may not be null."
    ]


def test_patch_gives_only_the_present_fields():
    result = validate_evse({"status": "CHARGING", "last_updated": NOW, "foo": 1}, partial=True)

    assert result == {
        "status": "CHARGING",
        "last_updated": datetime(2019, 6, 24, 12, 39, 9, tzinfo=UTC),
    }
    assert_plain(result)


@pytest.mark.parametrize(
    ("validate", "body", "expected"),
    [
        (
            validate_location,
            {"coordinates": {"latitude": "51.047599"}},
            "coordinates.longitude: This field is required.",
        ),
        (
            validate_location,
            {"evses": [{"uid": "3256", "status": "AVAILABLE"}]},
            "evses[0].connectors: This field is required.",
        ),
        (
            validate_location,
            {"evses": [{"uid": "3256"}]},
            "evses[0].status: This field is required.",
        ),
        (
            validate_location,
            {"opening_times": {"regular_hours": []}},
            "opening_times.twentyfourseven: This field is required.",
        ),
        (
            validate_location,
            {"operator": {"website": "https://x.test"}},
            "operator.name: This field is required.",
        ),
        (
            validate_location,
            {"energy_mix": {}},
            "energy_mix.is_green_energy: This field is required.",
        ),
        (
            validate_location,
            {"publish_allowed_to": [{"issuer": "X"}]},
            "publish_allowed_to[0]: at least one of",
        ),
        (
            validate_location,
            {"publish": True, "publish_allowed_to": [{"group_id": "G"}]},
            "publish_allowed_to: is only allowed when publish is false",
        ),
        (validate_location, {"address": None}, "address: This field may not be null."),
        (validate_location, {"address": "a" * 256}, "address: must be at most 255 characters"),
        (
            validate_evse,
            {"connectors": [{"id": "1"}]},
            "connectors[0].standard: This field is required.",
        ),
        (validate_evse, {"connectors": []}, "connectors: must contain at least one connector"),
        (validate_evse, {"status": "FOO"}, "status: 'FOO' is not one of AVAILABLE"),
        (validate_evse, {"status": None}, "status: This field may not be null."),
        (
            validate_evse,
            {"status_schedule": [{"period_begin": NOW}]},
            "status_schedule[0].status: This field is required.",
        ),
        (
            validate_connector,
            {"max_voltage": "230"},
            'max_voltage: must be a JSON integer, got "230"',
        ),
        (validate_connector, {"tariff_ids": "15"}, "tariff_ids: Expected a list of items"),
    ],
)
def test_patch_validates_each_present_field_in_full(validate, body, expected):
    assert_error(errors(validate, {**body, "last_updated": NOW}, partial=True), expected)


def test_patch_coordinates_need_both_latitude_and_longitude():
    body = {"coordinates": {"latitude": "51.047599"}, "last_updated": NOW}

    assert errors(validate_location, body, partial=True) == [
        "coordinates.longitude: This field is required."
    ]


def test_patch_with_complete_nested_objects_passes():
    body = {
        "evses": [evse()],
        "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
        "last_updated": NOW,
    }

    assert as_json(validate_location(body, partial=True)) == body


def test_put_requires_what_patch_may_leave_out():
    lines = errors(validate_evse, {"status": "CHARGING", "last_updated": NOW})

    assert "uid: This field is required." in lines
    assert "connectors: This field is required." in lines


# --- input that is not a JSON object -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [([], "an array"), ("x", "a string"), (None, "null"), (3, "a number"), (True, "a boolean")],
)
@pytest.mark.parametrize(
    "validate",
    [validate_location, validate_evse, validate_connector, validate_hours, validate_energy_mix],
)
def test_non_object_input_is_rejected(validate, data, kind):
    with pytest.raises(ValidationError) as info:
        validate(data)

    assert info.value.detail == {"non_field_errors": [f"expected a JSON object, got {kind}"]}


def test_non_object_input_is_rejected_in_patch_too():
    assert errors(validate_evse, [{"status": "CHARGING"}], partial=True) == [
        "expected a JSON object, got an array"
    ]


# --- enums ---------------------------------------------------------------------------------------


def test_enums():
    assert len(schema.CONNECTOR_TYPES) == len(set(schema.CONNECTOR_TYPES)) == 40
    assert "IEC_60309_2_single_16" in schema.CONNECTOR_TYPES
    assert "DOMESTIC_O" in schema.CONNECTOR_TYPES
    assert len(schema.FACILITIES) == 20
    assert len(schema.CAPABILITIES) == 13
    assert len(schema.EVSE_STATUSES) == 9
    assert schema.choices(schema.CONNECTOR_FORMATS) == [("SOCKET", "SOCKET"), ("CABLE", "CABLE")]


def test_errors_nest_for_describe_validation_errors():
    data = changed(location(), ("coordinates", "latitude"), "x")
    data["evses"][1]["connectors"][0]["power_type"] = "AC"

    lines = errors(validate_location, data)

    assert lines[0].startswith("coordinates.latitude: must be a decimal string")
    assert lines[1].startswith("evses[1].connectors[0].power_type: 'AC' is not one of")
    assert len(lines) == 2
