"""tokens.schema: the spec examples pass and round-trip unchanged, every rule has a failing case."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from locations.schema import PATCH_NEEDS_LAST_UPDATED
from tests.conftest import FIXTURES, load_example
from tests.schema_helpers import MISSING, assert_error, assert_plain, changed, errors
from tokens.schema import (
    TokenKey,
    render_authorization_info,
    render_token,
    validate_authorization_info,
    validate_location_references,
    validate_token,
)

NOW = "2019-06-19T02:11:11Z"

# --- helpers ------------------------------------------------------------------------------------


def token() -> dict[str, Any]:
    """token_example_2_full_rfid.json: every Token field is set."""
    result: dict[str, Any] = load_example("token_example_2_full_rfid.json")
    return result


KEY = TokenKey("DE", "TNM", "12345678905880")  # token(); type defaults to RFID


def authorization_info() -> dict[str, Any]:
    """The spec has no AuthorizationInfo example file: ours, around a spec Token example."""
    return {
        "allowed": "ALLOWED",
        "token": token(),
        "location": {"location_id": "LOC1", "evse_uids": ["BE*BEC*E041503001"]},
        "authorization_reference": "567890",
        "info": {"language": "en", "text": "Welcome"},
    }


# --- the spec examples --------------------------------------------------------------------------

TOKEN_EXAMPLES = [
    "token_example_1_app_user.json",
    "token_example_2_full_rfid.json",
    "token_put_example.json",
]


@pytest.mark.parametrize("name", TOKEN_EXAMPLES)
def test_token_examples_pass_and_round_trip(name):
    data = load_example(name)

    result = validate_token(data)
    rendered = render_token(result)

    assert rendered == data
    assert list(rendered) == list(data)
    assert_plain(result)
    assert isinstance(result["last_updated"], datetime)
    assert result["last_updated"].tzinfo == UTC
    # The stamp's text survives as written in the file (not only the parsed value).
    assert json.dumps(rendered["last_updated"]) in (FIXTURES / name).read_text()


def test_put_example_with_the_url_of_its_example():
    # PUT To URL: .../tokens/NL/TNM/012345678 (type defaults to RFID)
    data = load_example("token_put_example.json")

    assert render_token(validate_token(data, key=TokenKey("NL", "TNM", "012345678"))) == data


def test_patch_example_passes_and_round_trips():
    data = load_example("token_patch_example.json")

    result = validate_token(data, partial=True)

    assert result == {"valid": False, "last_updated": datetime(2019, 6, 19, 2, 11, 11, tzinfo=UTC)}
    assert render_token(result) == data


def test_get_token_envelope_example():
    data = load_example("transport_and_format_get_token_example.json")["data"]

    assert render_token(validate_token(data)) == data


def test_get_token_list_envelope_example():
    page = load_example("transport_and_format_get_token_list_example.json")["data"]

    assert [render_token(validate_token(item)) for item in page] == page
    assert [item["valid"] for item in page] == [True, True, False]


def test_output_types():
    result = validate_token(token())

    assert result["last_updated"] == datetime(2018, 12, 10, 17, 25, 10, tzinfo=UTC)
    assert result["valid"] is True
    assert result["energy_contract"] == {
        "supplier_name": "Greenpeace Energy eG",
        "contract_id": "0123456789",
    }


# --- output conventions -------------------------------------------------------------------------


def test_only_present_keys_come_back_nulls_stay_and_unknown_keys_go():
    data = load_example("token_example_1_app_user.json")
    data.update(visual_number=None, energy_contract=None, auth_id="DE8ACC12E46L89")

    result = validate_token(data)

    assert result["visual_number"] is None
    assert result["energy_contract"] is None
    assert "group_id" not in result
    assert "auth_id" not in result
    assert "visual_number" not in render_token(result)


def test_strings_come_back_as_given():
    data = changed(token(), ("uid",), " abc ")
    data["issuer"] = "  The New Motion"

    result = validate_token(data)

    assert result["uid"] == " abc "
    assert result["issuer"] == "  The New Motion"


def test_datetime_is_parsed_leniently_and_rendered_in_the_spec_format():
    result = validate_token(changed(token(), ("last_updated",), "2018-12-10T17:25:10.5"))

    assert result["last_updated"] == datetime(2018, 12, 10, 17, 25, 10, 500000, tzinfo=UTC)
    assert render_token(result)["last_updated"] == "2018-12-10T17:25:10.500Z"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("type",), "AD_HOC_USER"),
        (("type",), "OTHER"),
        (("whitelist",), "ALWAYS"),
        (("whitelist",), "ALLOWED_OFFLINE"),
        (("whitelist",), "NEVER"),
        (("default_profile_type",), "CHEAP"),
        (("default_profile_type",), "FAST"),
        (("default_profile_type",), "REGULAR"),
        (("valid",), False),
        (("energy_contract",), {"supplier_name": "Greenpeace Energy eG"}),
        (("uid",), "u" * 36),
        (("contract_id",), "c" * 36),
        (("visual_number",), "v" * 64),
        (("issuer",), "i" * 64),
        (("group_id",), "g" * 36),
        (("energy_contract", "supplier_name"), "s" * 64),
        (("energy_contract", "contract_id"), "c" * 64),
    ],
)
def test_valid_variations(path, value):
    data = changed(token(), path, value)

    assert render_token(validate_token(data)) == data


# --- failing cases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # required fields
        *(
            ((name,), MISSING, f"{name}: This field is required.")
            for name in (
                "country_code",
                "party_id",
                "uid",
                "type",
                "contract_id",
                "issuer",
                "valid",
                "whitelist",
                "last_updated",
            )
        ),
        (("uid",), None, "uid: This field may not be null."),
        (("valid",), None, "valid: This field may not be null."),
        (("uid",), "", "uid: This field may not be blank."),
        (
            ("energy_contract",),
            {"contract_id": "0123456789"},
            "energy_contract.supplier_name: This field is required.",
        ),
        # enums
        (("type",), "rfid", "type: 'rfid' is not one of AD_HOC_USER, APP_USER, OTHER, RFID"),
        (("type",), "APP", "type: 'APP' is not one of"),
        (
            ("whitelist",),
            "SOMETIMES",
            "whitelist: 'SOMETIMES' is not one of ALWAYS, ALLOWED, ALLOWED_OFFLINE, NEVER",
        ),
        (("whitelist",), "allowed", "whitelist: 'allowed' is not one of"),
        (
            ("default_profile_type",),
            "ECO",
            "default_profile_type: 'ECO' is not one of CHEAP, FAST, GREEN, REGULAR",
        ),
        # wrong JSON types
        (("valid",), "true", 'valid: must be true or false, got "true"'),
        (("valid",), 1, "valid: must be true or false, got 1"),
        (("uid",), 12345678905880, "uid: must be a string, not a number"),
        (("issuer",), ["TheNewMotion"], "issuer: must be a string, not an array"),
        (("energy_contract",), "Greenpeace", "energy_contract: Invalid data. Expected a dict"),
        (("last_updated",), "yesterday", "last_updated: must be a DateTime like"),
        (("last_updated",), 1544462710, "last_updated: must be a DateTime like"),
        # lengths, CiString, control characters
        (("country_code",), "DEU", "country_code: must be at most 2 characters"),
        (("party_id",), "TNMX", "party_id: must be at most 3 characters"),
        (("uid",), "u" * 37, "uid: must be at most 36 characters"),
        (("contract_id",), "c" * 37, "contract_id: must be at most 36 characters"),
        (("visual_number",), "v" * 65, "visual_number: must be at most 64 characters"),
        (("issuer",), "i" * 65, "issuer: must be at most 64 characters"),
        (("group_id",), "g" * 37, "group_id: must be at most 36 characters"),
        (("language",), "ita", "language: must be at most 2 characters"),
        (
            ("energy_contract", "supplier_name"),
            "s" * 65,
            "energy_contract.supplier_name: must be at most 64 characters",
        ),
        (
            ("energy_contract", "contract_id"),
            "c" * 65,
            "energy_contract.contract_id: must be at most 64 characters",
        ),
        (("uid",), "ÄBC", "uid: must contain only printable ASCII characters"),
        (("contract_id",), "DE8ACC\u00a012", "contract_id: must contain only printable ASCII"),
        (("issuer",), "The\nNew Motion", "issuer: must not contain control characters"),
    ],
)
def test_invalid_token(path, value, expected):
    assert_error(errors(validate_token, changed(token(), path, value)), expected)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "expected a JSON object, got an array"),
        (None, "expected a JSON object, got null"),
        ("token", "expected a JSON object, got a string"),
    ],
)
def test_not_an_object(data, expected):
    assert errors(validate_token, data) == [expected]
    assert errors(validate_token, data, partial=True) == [expected]
    assert errors(validate_location_references, data) == [expected]
    assert errors(validate_authorization_info, data) == [expected]


# --- PATCH --------------------------------------------------------------------------------------


def test_patch_needs_last_updated():
    assert errors(validate_token, {"valid": False}, partial=True) == [
        f"last_updated: {PATCH_NEEDS_LAST_UPDATED}"
    ]


def test_patch_with_only_last_updated_is_fine():
    assert validate_token({"last_updated": NOW}, partial=True) == {
        "last_updated": datetime(2019, 6, 19, 2, 11, 11, tzinfo=UTC)
    }


def test_patch_fields_are_validated_in_full():
    body = {"whitelist": "NEVER", "energy_contract": {"contract_id": "1"}, "last_updated": NOW}

    assert errors(validate_token, body, partial=True) == [
        "energy_contract.supplier_name: This field is required."
    ]
    body = {"valid": "false", "language": "eng", "last_updated": NOW}
    assert errors(validate_token, body, partial=True) == [
        'valid: must be true or false, got "false"',
        "language: must be at most 2 characters",
    ]


def test_patch_of_every_other_field_comes_back():
    body = {name: value for name, value in token().items() if name not in KEY_PARTS}
    body["last_updated"] = NOW

    result = validate_token(body, partial=True)

    assert render_token(result) == body


KEY_PARTS = ("country_code", "party_id", "uid", "type")
KEY_CHANGE = (
    "cannot be changed by a PATCH (a token is keyed by country_code, party_id, uid and type)"
)


@pytest.mark.parametrize("name", KEY_PARTS)
def test_patch_without_key_may_not_carry_a_key_field(name):
    body = {name: token()[name], "valid": False, "last_updated": NOW}

    assert errors(validate_token, body, partial=True) == [f"{name}: {KEY_CHANGE}"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("country_code", "NL"),
        ("party_id", "TNX"),
        ("uid", "12345678905881"),
        ("type", "APP_USER"),
    ],
)
def test_patch_may_not_change_the_key(name, value):
    body = {name: value, "valid": False, "last_updated": NOW}

    lines = errors(validate_token, body, partial=True, key=KEY)

    assert lines == [f"{name}: does not match the {name} in the URL; it {KEY_CHANGE}"]
    assert value not in lines[0]


def test_patch_may_repeat_the_key_case_insensitively():
    body = {
        "country_code": "de",
        "party_id": "tnm",
        "uid": "12345678905880",
        "type": "RFID",
        "valid": False,
        "last_updated": NOW,
    }

    result = validate_token(body, partial=True, key=KEY)

    assert result["country_code"] == "de"
    assert result["valid"] is False


def test_patch_repeating_the_whole_token_with_its_key():
    data = token()

    assert render_token(validate_token(data, partial=True, key=KEY)) == data


def test_key_type_defaults_to_rfid():
    body = {"type": "APP_USER", "last_updated": NOW}
    app_user = TokenKey("DE", "TNM", "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1", "APP_USER")

    assert validate_token(body, partial=True, key=app_user)["type"] == "APP_USER"
    assert_error(
        errors(validate_token, body, partial=True, key=TokenKey("DE", "TNM", "x")),
        "type: does not match the type in the URL",
    )


def test_patch_key_field_of_the_wrong_type_gets_the_type_error():
    body = {"uid": 123, "last_updated": NOW}

    assert errors(validate_token, body, partial=True, key=KEY) == [
        "uid: must be a string, not a number"
    ]


def test_put_with_key_must_name_the_same_token():
    data = changed(token(), ("uid",), "04AB6C92")

    lines = errors(validate_token, data, key=KEY)

    assert lines == ["uid: does not match the uid in the URL"]
    assert "04AB6C92" not in lines[0]
    # case-insensitive for the CiStrings
    assert validate_token(token(), key=TokenKey("de", "tnm", "12345678905880"))["uid"] == (
        "12345678905880"
    )


def test_put_without_key_takes_any_key():
    assert validate_token(token())["party_id"] == "TNM"


# --- LocationReferences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"location_id": "LOC1"},
        {"location_id": "LOC1", "evse_uids": []},
        {"location_id": "LOC1", "evse_uids": ["BE*BEC*E041503001", "BE*BEC*E041503002"]},
        {"location_id": "l" * 36, "evse_uids": ["e" * 36]},
    ],
)
def test_location_references(data):
    result = validate_location_references(data)

    assert result == data
    assert_plain(result)


def test_location_references_drop_22_connector_ids():
    # OCPI 2.2 had connector_ids; 2.2.1 has not: an older body still passes, without them.
    data = {"location_id": "LOC1", "evse_uids": ["E1"], "connector_ids": ["1"]}

    assert validate_location_references(data) == {"location_id": "LOC1", "evse_uids": ["E1"]}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "location_id: This field is required."),
        ({"evse_uids": ["E1"]}, "location_id: This field is required."),
        ({"location_id": None}, "location_id: This field may not be null."),
        ({"location_id": "l" * 37}, "location_id: must be at most 36 characters"),
        ({"location_id": 1}, "location_id: must be a string, not a number"),
        ({"location_id": "LOC1", "evse_uids": "E1"}, "evse_uids: Expected a list of items"),
        ({"location_id": "LOC1", "evse_uids": [1]}, "evse_uids[0]: must be a string, not a number"),
        (
            {"location_id": "LOC1", "evse_uids": ["E1", "e" * 37]},
            "evse_uids[1]: must be at most 36 characters",
        ),
        (
            {"location_id": "LOC1", "evse_uids": ["É1"]},
            "evse_uids[0]: must contain only printable ASCII characters",
        ),
    ],
)
def test_invalid_location_references(data, expected):
    assert_error(errors(validate_location_references, data), expected)


# --- AuthorizationInfo --------------------------------------------------------------------------


def test_authorization_info_passes_and_round_trips():
    data = authorization_info()

    result = validate_authorization_info(data)

    assert render_authorization_info(result) == data
    assert result["token"]["last_updated"] == datetime(2018, 12, 10, 17, 25, 10, tzinfo=UTC)
    assert_plain(result)


@pytest.mark.parametrize("allowed", ["ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"])
def test_minimal_authorization_info(allowed):
    data = {"allowed": allowed, "token": load_example("token_example_1_app_user.json")}

    assert render_authorization_info(validate_authorization_info(data)) == data


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("allowed",), MISSING, "allowed: This field is required."),
        (
            ("allowed",),
            "YES",
            "allowed: 'YES' is not one of ALLOWED, BLOCKED, EXPIRED, NO_CREDIT, NOT_ALLOWED",
        ),
        (("allowed",), True, "allowed: True is not one of"),
        (("token",), MISSING, "token: This field is required."),
        (("token",), None, "token: This field may not be null."),
        (("token", "uid"), MISSING, "token.uid: This field is required."),
        (("token", "whitelist"), "NONE", "token.whitelist: 'NONE' is not one of"),
        (("token", "last_updated"), MISSING, "token.last_updated: This field is required."),
        (("location", "location_id"), MISSING, "location.location_id: This field is required."),
        (
            ("location", "evse_uids", 0),
            "e" * 37,
            "location.evse_uids[0]: must be at most 36 characters",
        ),
        (
            ("authorization_reference",),
            "a" * 37,
            "authorization_reference: must be at most 36 characters",
        ),
        (
            ("authorization_reference",),
            567890,
            "authorization_reference: must be a string, not a number",
        ),
        (("info",), [{"language": "en", "text": "x"}], "info: Invalid data. Expected a dict"),
        (("info", "text"), "t" * 513, "info.text: must be at most 512 characters"),
        (("info", "language"), MISSING, "info.language: This field is required."),
    ],
)
def test_invalid_authorization_info(path, value, expected):
    assert_error(
        errors(validate_authorization_info, changed(authorization_info(), path, value)), expected
    )


@pytest.mark.parametrize(
    "body",
    [
        {"location_id": "LOC1"},
        {"location_id": "LOC 1", "evse_uids": []},
        {"location_id": "LOC1", "evse_uids": None},
        {"location_id": "LOC1", "evse_uids": ["E1", "E 2"], "connector_ids": ["1"]},
        {"location_id": "L" * 36, "evse_uids": ["E" * 36]},
    ],
)
def test_the_fast_path_of_location_references_gives_what_the_serializer_gives(
    body: dict[str, Any],
) -> None:
    from ocpi_platform.ocpi.fields import validate_object
    from tokens.schema import LocationReferencesSerializer

    assert validate_location_references(body) == validate_object(LocationReferencesSerializer, body)
