"""tariffs.schema: the spec examples pass and round-trip unchanged, each rule has a failing case."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tariffs import schema
from tariffs.schema import render_tariff, validate_tariff
from tests.conftest import FIXTURES, load_example
from tests.schema_helpers import (
    MISSING,
    assert_error,
    assert_plain,
    assert_same_key_order,
    changed,
    errors,
)

# --- helpers ------------------------------------------------------------------------------------


def tariff() -> dict[str, Any]:
    """tariff_4_complex.json: six elements, restrictions, day_of_week, tariff_alt_url."""
    result: dict[str, Any] = load_example("tariff_4_complex.json")
    return result


# --- the spec examples --------------------------------------------------------------------------

TARIFF_EXAMPLES = sorted(
    path.name
    for path in FIXTURES.glob("tariff*.json")
    if path.name != "tariff_put_example.json"  # lacks last_updated: see below
)


def test_every_tariff_example_is_covered():
    assert len(TARIFF_EXAMPLES) == 19
    assert "tariffrestriction_example_max_power.json" in TARIFF_EXAMPLES


@pytest.mark.parametrize("name", TARIFF_EXAMPLES)
def test_tariff_examples_pass_and_round_trip(name):
    data = load_example(name)

    result = validate_tariff(data)
    rendered = render_tariff(result)

    assert rendered == data
    assert_same_key_order(rendered, data)
    assert_plain(result)
    assert isinstance(result["last_updated"], datetime)
    assert result["last_updated"].tzinfo == UTC
    # The stamp's text survives as written in the file (not only the parsed value).
    raw = (FIXTURES / name).read_text()
    assert json.dumps(rendered["last_updated"]) in raw


def test_put_example_lacks_last_updated():
    assert errors(validate_tariff, load_example("tariff_put_example.json")) == [
        "last_updated: This field is required."
    ]


def test_output_types():
    result = validate_tariff(load_example("tariff_6_025kwh_start_max_price.json"))

    assert result["end_date_time"] == datetime(2019, 6, 30, 23, 59, 59, tzinfo=UTC)
    assert result["last_updated"] == datetime(2018, 12, 17, 17, 15, 1, tzinfo=UTC)
    assert render_tariff(result)["end_date_time"] == "2019-06-30T23:59:59Z"
    component = result["elements"][0]["price_components"][0]
    assert type(component["price"]) is float
    assert type(component["step_size"]) is int
    assert result["max_price"] == {"excl_vat": 10.0, "incl_vat": 11.0}


def test_numbers_come_back_as_given():
    data = changed(tariff(), ("elements", 0, "price_components", 0, "price"), 3)

    result = validate_tariff(data)

    assert type(result["elements"][0]["price_components"][0]["price"]) is int
    assert result["elements"][1]["restrictions"] == {"max_current": 32.0}


# --- output conventions -------------------------------------------------------------------------


def test_only_present_keys_come_back_nulls_stay_and_unknown_keys_go():
    data = tariff()
    data.update(type=None, min_price=None, energy_mix=None, tariff_id="14", price=1)
    data["elements"][0]["restrictions"] = None

    result = validate_tariff(data)

    assert result["type"] is None
    assert result["min_price"] is None
    assert result["elements"][0]["restrictions"] is None
    assert "max_price" not in result
    assert "tariff_alt_text" not in result
    assert "tariff_id" not in result
    assert "price" not in result


def test_render_leaves_nulls_out():
    data = tariff()
    data.update(type=None, min_price=None)
    data["elements"][0]["price_components"][0]["vat"] = None

    rendered = render_tariff(validate_tariff(data))

    assert "type" not in rendered
    assert "min_price" not in rendered
    assert rendered["elements"][0]["price_components"][0] == {
        "type": "FLAT",
        "price": 2.5,
        "step_size": 1,
    }


def test_strings_come_back_as_given():
    data = changed(tariff(), ("id",), "tariff-14a")
    data["country_code"] = "de"

    result = validate_tariff(data)

    assert result["id"] == "tariff-14a"
    assert result["country_code"] == "de"


def test_datetimes_are_parsed_leniently_and_rendered_in_the_spec_format():
    data = tariff()
    data.update(
        last_updated="2015-06-29T20:39:09.1234",
        start_date_time="2019-01-01T00:00:00+00:00",
        end_date_time="2019-12-31T23:59:59",
    )

    result = validate_tariff(data)
    rendered = render_tariff(result)

    assert result["last_updated"] == datetime(2015, 6, 29, 20, 39, 9, 123400, tzinfo=UTC)
    assert rendered["last_updated"] == "2015-06-29T20:39:09.123Z"
    assert rendered["start_date_time"] == "2019-01-01T00:00:00Z"
    assert rendered["end_date_time"] == "2019-12-31T23:59:59Z"


ELEMENT = ("elements", 0)
COMPONENT = ("elements", 0, "price_components", 0)
RESTRICTIONS = ("elements", 4, "restrictions")  # start_time 09:00, end_time 18:00, weekdays


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("type",), "AD_HOC_PAYMENT"),
        (("type",), "PROFILE_GREEN"),
        (("tariff_alt_text",), [{"language": "en", "text": "2.50 euro start fee"}]),
        (("tariff_alt_text",), []),
        (("min_price",), {"excl_vat": 0.5}),
        (("min_price",), {"excl_vat": 0, "incl_vat": 0}),
        (("max_price",), {"excl_vat": 10, "incl_vat": 12.1}),
        (("start_date_time",), "2019-01-01T00:00:00Z"),
        (("end_date_time",), "2030-01-01T00:00:00Z"),
        (
            ("energy_mix",),
            {"is_green_energy": True, "energy_sources": [{"source": "SOLAR", "percentage": 100}]},
        ),
        ((*COMPONENT, "vat"), 0),
        ((*COMPONENT, "vat"), 100),
        ((*COMPONENT, "vat"), MISSING),
        ((*COMPONENT, "price"), 0),
        ((*COMPONENT, "step_size"), 0),
        ((*COMPONENT, "step_size"), schema.INT32_MAX),
        ((*COMPONENT, "type"), "ENERGY"),
        ((*COMPONENT, "type"), "PARKING_TIME"),
        ((*RESTRICTIONS, "start_time"), "00:00"),
        ((*RESTRICTIONS, "end_time"), "23:59"),
        # end_time before start_time wraps past midnight; 00:00 is the end of the day
        ((*RESTRICTIONS, "end_time"), "06:00"),
        ((*RESTRICTIONS, "end_time"), "00:00"),
        ((*RESTRICTIONS, "day_of_week"), list(schema.DAYS_OF_WEEK)),
        ((*RESTRICTIONS, "day_of_week"), []),
        (
            (*ELEMENT, "restrictions"),
            {
                "start_time": "13:30",
                "end_time": "19:45",
                "start_date": "2015-12-24",
                "end_date": "2015-12-27",
                "min_kwh": 20,
                "max_kwh": 50.5,
                "min_current": 5,
                "max_current": 20,
                "min_power": 0,
                "max_power": 22.0,
                "min_duration": 0,
                "max_duration": 3600,
                "day_of_week": ["SATURDAY", "SUNDAY"],
            },
        ),
        ((*ELEMENT, "restrictions"), {"start_date": "2024-02-29"}),
        ((*ELEMENT, "restrictions"), {}),
        ((*ELEMENT, "restrictions"), {"reservation": "RESERVATION_EXPIRES"}),
    ],
)
def test_valid_variations(path, value):
    data = changed(tariff(), path, value)

    assert render_tariff(validate_tariff(data)) == data


# --- failing cases ------------------------------------------------------------------------------

TIME_REGEX = r"(regex ([0-1][0-9]|2[0-3]):[0-5][0-9])"
DATE_REGEX = r"(regex ([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))"
E0C0 = "elements[0].price_components[0]"
E4R = "elements[4].restrictions"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # required fields
        (("country_code",), MISSING, "country_code: This field is required."),
        (("party_id",), MISSING, "party_id: This field is required."),
        (("id",), MISSING, "id: This field is required."),
        (("currency",), MISSING, "currency: This field is required."),
        (("elements",), MISSING, "elements: This field is required."),
        (("elements",), None, "elements: This field may not be null."),
        (("last_updated",), MISSING, "last_updated: This field is required."),
        (("last_updated",), None, "last_updated: This field may not be null."),
        (
            (*ELEMENT, "price_components"),
            MISSING,
            "elements[0].price_components: This field is required.",
        ),
        ((*COMPONENT, "type"), MISSING, f"{E0C0}.type: This field is required."),
        ((*COMPONENT, "price"), MISSING, f"{E0C0}.price: This field is required."),
        ((*COMPONENT, "price"), None, f"{E0C0}.price: This field may not be null."),
        ((*COMPONENT, "step_size"), MISSING, f"{E0C0}.step_size: This field is required."),
        (("min_price",), {"incl_vat": 1}, "min_price.excl_vat: This field is required."),
        (("max_price",), {}, "max_price.excl_vat: This field is required."),
        # enums
        (
            ("type",),
            "regular",
            "type: 'regular' is not one of AD_HOC_PAYMENT, PROFILE_CHEAP, PROFILE_FAST, "
            "PROFILE_GREEN, REGULAR",
        ),
        (("type",), "PROFILE_REGULAR", "type: 'PROFILE_REGULAR' is not one of"),
        (
            (*COMPONENT, "type"),
            "KWH",
            f"{E0C0}.type: 'KWH' is not one of ENERGY, FLAT, PARKING_TIME, TIME",
        ),
        ((*COMPONENT, "type"), "flat", f"{E0C0}.type: 'flat' is not one of"),
        (
            (*RESTRICTIONS, "day_of_week"),
            ["MONDAY", "MON"],
            f"{E4R}.day_of_week[1]: 'MON' is not one of MONDAY, TUESDAY, WEDNESDAY,",
        ),
        (
            (*RESTRICTIONS, "day_of_week"),
            "MONDAY",
            f"{E4R}.day_of_week: Expected a list of items",
        ),
        (
            (*RESTRICTIONS, "reservation"),
            "RESERVED",
            f"{E4R}.reservation: 'RESERVED' is not one of RESERVATION, RESERVATION_EXPIRES",
        ),
        # wrong JSON types
        ((*COMPONENT, "price"), "2.50", f'{E0C0}.price: must be a JSON number, got "2.50"'),
        ((*COMPONENT, "price"), True, f"{E0C0}.price: must be a JSON number, got true"),
        ((*COMPONENT, "price"), float("inf"), f"{E0C0}.price: must be a JSON number"),
        ((*COMPONENT, "vat"), "15", f'{E0C0}.vat: must be a JSON number, got "15"'),
        ((*COMPONENT, "step_size"), 1.5, f"{E0C0}.step_size: must be a JSON integer, got 1.5"),
        ((*COMPONENT, "step_size"), "60", f'{E0C0}.step_size: must be a JSON integer, got "60"'),
        ((*COMPONENT, "step_size"), True, f"{E0C0}.step_size: must be a JSON integer, got true"),
        (
            ("elements", 1, "restrictions", "max_current"),
            "32",
            'elements[1].restrictions.max_current: must be a JSON number, got "32"',
        ),
        (
            (*RESTRICTIONS, "max_duration"),
            1800.5,
            f"{E4R}.max_duration: must be a JSON integer, got 1800.5",
        ),
        (
            (*RESTRICTIONS, "min_duration"),
            "60",
            f'{E4R}.min_duration: must be a JSON integer, got "60"',
        ),
        (
            ("min_price",),
            {"excl_vat": "0.50"},
            'min_price.excl_vat: must be a JSON number, got "0.50"',
        ),
        (("elements",), {"price_components": []}, "elements: Expected a list of items"),
        ((*ELEMENT, "price_components"), {}, "elements[0].price_components: Expected a list"),
        ((*ELEMENT, "restrictions"), [], "elements[0].restrictions: Invalid data. Expected a dict"),
        (("elements", 0), "FLAT", "elements[0]: Invalid data. Expected a dictionary"),
        (("tariff_alt_text",), {"language": "en", "text": "x"}, "tariff_alt_text: Expected a list"),
        (("country_code",), 49, "country_code: must be a string, not a number"),
        (("last_updated",), 1435610349, "last_updated: must be a DateTime like"),
        (
            ("start_date_time",),
            "2019-01-01",
            'start_date_time: must be a DateTime like 2015-06-29T20:39:09Z, got "2019-01-01"',
        ),
        (("end_date_time",), "tomorrow", "end_date_time: must be a DateTime like"),
        # string lengths, CiString, currency
        (("id",), "x" * 37, "id: must be at most 36 characters"),
        (("id",), "", "id: This field may not be blank."),
        (("id",), "tarif€", "id: must contain only printable ASCII characters"),
        (("country_code",), "DEU", "country_code: must be at most 2 characters"),
        (("party_id",), "ALLX", "party_id: must be at most 3 characters"),
        (("currency",), "EURO", "currency: must be an ISO 4217 currency code like EUR"),
        (
            ("currency",),
            "eur",
            'currency: must be an ISO 4217 currency code like EUR (regex [A-Z]{3}), got "eur"',
        ),
        (("currency",), "EU", "currency: must be an ISO 4217 currency code like EUR"),
        (
            ("tariff_alt_text",),
            [{"language": "en", "text": "t" * 513}],
            "tariff_alt_text[0].text: must be at most 512 characters",
        ),
        (
            ("tariff_alt_text",),
            [{"language": "eng", "text": "x"}],
            "tariff_alt_text[0].language: must be at most 2 characters",
        ),
        (
            ("tariff_alt_text",),
            [{"language": "en", "text": "line\nbreak"}],
            "tariff_alt_text[0].text: must not contain control characters",
        ),
        # URL
        (("tariff_alt_url",), "not a url", "tariff_alt_url: is not a valid http(s) URL"),
        (("tariff_alt_url",), "ftp://company.com/t", "tariff_alt_url: is not a valid http(s) URL"),
        # times of day
        (
            (*RESTRICTIONS, "start_time"),
            "25:00",
            f'{E4R}.start_time: must be a time like 13:30 {TIME_REGEX}, got "25:00"',
        ),
        ((*RESTRICTIONS, "end_time"), "24:00", f"{E4R}.end_time: must be a time like 19:45"),
        ((*RESTRICTIONS, "start_time"), "9:00", f"{E4R}.start_time: must be a time like 13:30"),
        ((*RESTRICTIONS, "start_time"), "09:60", f"{E4R}.start_time: must be a time like 13:30"),
        ((*RESTRICTIONS, "start_time"), "09.00", f"{E4R}.start_time: must be a time like 13:30"),
        (
            (*RESTRICTIONS, "start_time"),
            "09:00:00",
            f"{E4R}.start_time: must be a time like 13:30",
        ),
        ((*RESTRICTIONS, "end_time"), 1800, f"{E4R}.end_time: must be a string, not a number"),
        # dates
        (
            (*RESTRICTIONS, "start_date"),
            "2015-13-01",
            f'{E4R}.start_date: must be a date like 2015-12-24 {DATE_REGEX}, got "2015-13-01"',
        ),
        ((*RESTRICTIONS, "start_date"), "2015-12-32", f"{E4R}.start_date: must be a date like"),
        ((*RESTRICTIONS, "end_date"), "15-12-24", f"{E4R}.end_date: must be a date like"),
        ((*RESTRICTIONS, "end_date"), "2015/12/24", f"{E4R}.end_date: must be a date like"),
        ((*RESTRICTIONS, "start_date"), "3015-12-24", f"{E4R}.start_date: must be a date like"),
        (
            (*RESTRICTIONS, "end_date"),
            "2015-12-24T00:00:00Z",
            f"{E4R}.end_date: must be a date like 2015-12-24",
        ),
        (
            (*RESTRICTIONS, "start_date"),
            "2019-02-29",
            f"{E4R}.start_date: 2019-02-29 is not a date in the calendar",
        ),
        (
            (*RESTRICTIONS, "end_date"),
            "2015-04-31",
            f"{E4R}.end_date: 2015-04-31 is not a date in the calendar",
        ),
        # negative amounts and out-of-range numbers
        ((*COMPONENT, "price"), -0.01, f"{E0C0}.price: must be at least 0"),
        ((*COMPONENT, "vat"), -1, f"{E0C0}.vat: must be between 0 and 100"),
        ((*COMPONENT, "vat"), 100.5, f"{E0C0}.vat: must be between 0 and 100"),
        ((*COMPONENT, "step_size"), -1, f"{E0C0}.step_size: must be between 0 and 2147483647"),
        (
            (*COMPONENT, "step_size"),
            2**31,
            f"{E0C0}.step_size: must be between 0 and 2147483647",
        ),
        (("min_price",), {"excl_vat": -1}, "min_price.excl_vat: must be at least 0"),
        (
            ("max_price",),
            {"excl_vat": 1, "incl_vat": -1.2},
            "max_price.incl_vat: must be at least 0",
        ),
        ((*RESTRICTIONS, "min_kwh"), -5, f"{E4R}.min_kwh: must be at least 0"),
        ((*RESTRICTIONS, "max_kwh"), -5, f"{E4R}.max_kwh: must be at least 0"),
        ((*RESTRICTIONS, "min_current"), -1, f"{E4R}.min_current: must be at least 0"),
        ((*RESTRICTIONS, "max_power"), -0.5, f"{E4R}.max_power: must be at least 0"),
        (
            (*RESTRICTIONS, "min_duration"),
            -60,
            f"{E4R}.min_duration: must be between 0 and 2147483647",
        ),
        (
            (*RESTRICTIONS, "max_duration"),
            2**31,
            f"{E4R}.max_duration: must be between 0 and 2147483647",
        ),
        # empty lists that must have an entry
        (("elements",), [], "elements: must contain at least one element"),
        (
            (*ELEMENT, "price_components"),
            [],
            "elements[0].price_components: must contain at least one price component",
        ),
        # energy mix (the Locations module's EnergyMix)
        (
            ("energy_mix",),
            {"is_green_energy": "yes"},
            'energy_mix.is_green_energy: must be true or false, got "yes"',
        ),
        (
            ("energy_mix",),
            {"is_green_energy": True, "energy_sources": [{"source": "HYDRO", "percentage": 5}]},
            "energy_mix.energy_sources[0].source: 'HYDRO' is not one of",
        ),
    ],
)
def test_invalid_tariff(path, value, expected):
    assert_error(errors(validate_tariff, changed(tariff(), path, value)), expected)


@pytest.mark.parametrize(
    ("restrictions", "expected"),
    [
        (
            {"start_date": "2015-12-27", "end_date": "2015-12-24"},
            "end_date: must be later than start_date (2015-12-27)",
        ),
        (
            {"start_date": "2015-12-24", "end_date": "2015-12-24"},
            "end_date: must be later than start_date (2015-12-24)",
        ),
        ({"min_kwh": 50, "max_kwh": 20}, "max_kwh: must be greater than min_kwh (50)"),
        ({"min_kwh": 20, "max_kwh": 20}, "max_kwh: must be greater than min_kwh (20)"),
        (
            {"min_current": 32.0, "max_current": 16.0},
            "max_current: must be greater than min_current (32.0)",
        ),
        ({"min_power": 22, "max_power": 11}, "max_power: must be greater than min_power (22)"),
        (
            {"min_duration": 3600, "max_duration": 1800},
            "max_duration: must be greater than min_duration (3600)",
        ),
    ],
)
def test_restriction_ranges_must_not_be_empty(restrictions, expected):
    data = changed(tariff(), (*ELEMENT, "restrictions"), restrictions)

    assert errors(validate_tariff, data) == [f"elements[0].restrictions.{expected}"]


def test_reservation_element_takes_only_flat_and_time():
    data = load_example("tariff_16_reservation_2_euro_fee_5_euro_per_hour.json")
    data["elements"][0]["price_components"][1]["type"] = "ENERGY"
    data["elements"][0]["price_components"][0]["type"] = "PARKING_TIME"

    assert errors(validate_tariff, data) == [
        "elements[0].price_components[0].type: must be FLAT or TIME in an element with a "
        "reservation restriction",
        "elements[0].price_components[1].type: must be FLAT or TIME in an element with a "
        "reservation restriction",
    ]


def test_energy_without_reservation_is_fine_next_to_a_reservation_element():
    data = load_example("tariff_17_reservation_with_expire_fee.json")

    # the third element (no restriction) holds the FLAT and ENERGY components
    assert validate_tariff(data)["elements"][2]["price_components"][1]["type"] == "ENERGY"


def test_end_date_time_must_be_after_start_date_time():
    data = tariff()
    data.update(start_date_time="2019-06-30T00:00:00Z", end_date_time="2019-06-29T23:59:59Z")

    assert errors(validate_tariff, data) == [
        "end_date_time: must be later than start_date_time (2019-06-30T00:00:00Z)"
    ]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (
            {"excl_vat": 10},
            {"excl_vat": 5},
            ["max_price.excl_vat: must not be less than min_price.excl_vat (10)"],
        ),
        (
            {"excl_vat": 1, "incl_vat": 12},
            {"excl_vat": 10, "incl_vat": 11},
            ["max_price.incl_vat: must not be less than min_price.incl_vat (12)"],
        ),
    ],
)
def test_max_price_must_not_be_below_min_price(low, high, expected):
    data = tariff()
    data.update(min_price=low, max_price=high)

    assert errors(validate_tariff, data) == expected


def test_equal_min_and_max_price_is_a_fixed_price():
    data = tariff()
    data.update(min_price={"excl_vat": 5}, max_price={"excl_vat": 5, "incl_vat": 6})

    assert render_tariff(validate_tariff(data)) == data


def test_every_defect_is_reported_at_once():
    data = tariff()
    data["currency"] = "euro"
    data["elements"][1]["price_components"][0]["price"] = -1
    data["elements"][4]["restrictions"]["start_time"] = "25:00"
    del data["last_updated"]

    lines = errors(validate_tariff, data)

    assert [line.split(":")[0] for line in lines] == [
        "currency",
        "elements[1].price_components[0].price",
        "elements[4].restrictions.start_time",
        "last_updated",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "expected a JSON object, got an array"),
        (None, "expected a JSON object, got null"),
        ("tariff", "expected a JSON object, got a string"),
    ],
)
def test_not_an_object(data, expected):
    assert errors(validate_tariff, data) == [expected]
