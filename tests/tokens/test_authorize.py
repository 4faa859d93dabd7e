"""POST {tokens}/{uid}/authorize: our real-time authorization as the eMSP (tokens.authorization)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from ocpi_platform.ocpi.errors import NotEnoughInformation
from tests.conftest import OcpiApi, RegisteredPartner, make_registered
from tokens import authorization
from tokens.authorization import Decision

from .conftest import SENDER, own_token

pytestmark = pytest.mark.django_db

LOCATION = {"location_id": "LOC1", "evse_uids": ["EVSE1", "EVSE2"]}


def authorize(
    api: OcpiApi, caller: RegisteredPartner, uid: str = "TOKEN1", query: str = "", **kwargs: Any
) -> Any:
    return api.post(f"{SENDER}/{uid}/authorize{query}", token=caller.inbound_token, **kwargs)


@pytest.fixture(autouse=True)
def _no_cached_rule() -> Any:
    authorization._load.cache_clear()
    yield
    authorization._load.cache_clear()


def test_valid_token_is_allowed_with_a_reference_and_the_stored_token(
    api: OcpiApi, cpo: RegisteredPartner
) -> None:
    token = own_token()
    reply = authorize(api, cpo, body=LOCATION)
    assert (reply.status, reply.code) == (200, 1000)
    assert reply.data["allowed"] == "ALLOWED"
    assert reply.data["location"] == LOCATION
    reference = reply.data["authorization_reference"]
    assert 0 < len(reference) <= 36
    assert reply.data["token"]["uid"] == "TOKEN1"
    assert reply.data["token"]["last_updated"] == token.last_updated.strftime("%Y-%m-%dT%H:%M:%SZ")
    again = authorize(api, cpo, body=LOCATION)
    assert again.data["authorization_reference"] != reference


def test_without_a_body_no_location_is_answered(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token()
    reply = authorize(api, cpo)
    assert reply.data["allowed"] == "ALLOWED"
    assert "location" not in reply.data


def test_uid_compares_case_insensitively(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token("AbC123")
    assert authorize(api, cpo, "abc123").data["allowed"] == "ALLOWED"


def test_invalid_token_is_blocked_without_reference(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token(valid=False)
    reply = authorize(api, cpo, body=LOCATION)
    assert reply.data["allowed"] == "BLOCKED"
    assert "authorization_reference" not in reply.data
    assert "location" not in reply.data


def test_unknown_token_is_404_and_2004_without_data(api: OcpiApi, cpo: RegisteredPartner) -> None:
    reply = authorize(api, cpo, "NOPE")
    assert (reply.status, reply.code) == (404, 2004)
    assert reply.data is None


def test_type_defaults_to_rfid_and_selects_the_token(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token("APP1", type="APP_USER")
    assert authorize(api, cpo, "APP1").status == 404
    assert authorize(api, cpo, "APP1", "?type=APP_USER").data["allowed"] == "ALLOWED"


def test_a_partners_copy_is_not_ours(
    api: OcpiApi, cpo: RegisteredPartner, emsp: RegisteredPartner
) -> None:
    from .conftest import partner_token

    partner_token(emsp, "THEIRS")
    assert authorize(api, cpo, "THEIRS").code == 2004


@pytest.mark.parametrize(
    ("query", "body", "field"),
    [
        ("?type=rfid", None, "type"),
        ("?type=CARD", None, "type"),
        ("", {"evse_uids": ["E1"]}, "location_id"),
        ("", {"location_id": "L" * 37}, "location_id"),
        ("", {"location_id": 12}, "location_id"),
        ("", {"location_id": "LOC1", "evse_uids": "E1"}, "evse_uids"),
        ("", {"location_id": "LOC1", "evse_uids": ["E" * 37]}, "evse_uids"),
        ("", ["LOC1"], "LocationReferences"),
    ],
)
def test_bad_input_is_2001_naming_the_field(
    api: OcpiApi, cpo: RegisteredPartner, query: str, body: Any, field: str
) -> None:
    own_token()
    reply = authorize(api, cpo, query=query, body=body)
    assert reply.code == 2001
    assert field in reply.message


def test_a_uid_too_long_is_2001(api: OcpiApi, cpo: RegisteredPartner) -> None:
    reply = authorize(api, cpo, "U" * 37)
    assert reply.code == 2001
    assert "uid" in reply.message


def test_only_a_cpo_may_ask(api: OcpiApi, db: None) -> None:
    own_token()
    other = make_registered("an-emsp", country_code="FR", party_id="EMS", role="EMSP")
    reply = authorize(api, other)
    assert reply.status == 403
    assert "CPO" in reply.message


def test_the_to_party_headers_narrow_our_parties(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token()
    headers = {"OCPI-to-country-code": "NL", "OCPI-to-party-id": "XXX"}
    assert authorize(api, cpo, headers=headers).code == 2004
    headers = {"OCPI-to-country-code": "NL", "OCPI-to-party-id": "ABC"}
    reply = authorize(api, cpo, headers=headers)
    assert reply.data["allowed"] == "ALLOWED"
    assert reply.headers["OCPI-from-party-id"] == "ABC"


# --- the operator's rule (OCPI_TOKEN_AUTHORIZER) ---------------------------------------------

calls: list[dict[str, Any]] = []


def no_credit_rule(**kwargs: Any) -> str:
    calls.append(kwargs)
    return "NO_CREDIT"


def fall_through_rule(**kwargs: Any) -> None:
    return None


def location_rule(*, token: Any, location: Any, partner: Any) -> Decision | None:
    if location is None:
        raise NotEnoughInformation("Tell us where: LocationReferences are needed.")
    if location["location_id"] == "FORBIDDEN":
        return Decision("NOT_ALLOWED", info={"language": "en", "text": "Not here."})
    return Decision("ALLOWED", location={"location_id": location["location_id"]})


def rule(name: str) -> Any:
    return override_settings(OCPI_TOKEN_AUTHORIZER=f"{__name__}.{name}")


def test_the_rule_decides_a_valid_token(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token()
    calls.clear()
    with rule("no_credit_rule"):
        reply = authorize(api, cpo, body=LOCATION)
    assert reply.data["allowed"] == "NO_CREDIT"
    assert "authorization_reference" not in reply.data
    (call,) = calls
    assert call["token"].object_id == "TOKEN1"
    assert call["location"] == LOCATION
    assert call["partner"].partner_id == cpo.partner.pk


def test_the_rule_never_unblocks_an_invalid_token(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token(valid=False)
    with rule("location_rule"):
        assert authorize(api, cpo, body=LOCATION).data["allowed"] == "BLOCKED"


def test_a_rule_returning_none_falls_through(api: OcpiApi, cpo: RegisteredPartner) -> None:
    own_token()
    with rule("fall_through_rule"):
        assert authorize(api, cpo).data["allowed"] == "ALLOWED"


def test_a_rule_may_refuse_a_location_narrow_it_or_need_one(
    api: OcpiApi, cpo: RegisteredPartner
) -> None:
    own_token()
    with rule("location_rule"):
        refused = authorize(api, cpo, body={"location_id": "FORBIDDEN"})
        narrowed = authorize(api, cpo, body=LOCATION)
        needs = authorize(api, cpo)
    assert refused.data["allowed"] == "NOT_ALLOWED"
    assert refused.data["info"] == {"language": "en", "text": "Not here."}
    assert narrowed.data["allowed"] == "ALLOWED"
    assert narrowed.data["location"] == {"location_id": "LOC1"}
    assert narrowed.data["authorization_reference"]
    assert needs.code == 2002
    assert "LocationReferences" in needs.message


def test_a_decision_must_be_an_allowed_type() -> None:
    with pytest.raises(ValueError, match="AllowedType"):
        Decision("MAYBE")
