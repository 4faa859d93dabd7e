"""Bad input to the credentials endpoint gets a clear OCPI error and changes nothing."""

from __future__ import annotations

import pytest

from credentials.models import Partner, PartnerState
from tests.conftest import b64, partner_offer

CREDENTIALS = "/ocpi/2.2.1/credentials"
pytestmark = pytest.mark.django_db


def _role(**overrides):
    role = {
        "role": "EMSP",
        "party_id": "XYZ",
        "country_code": "DE",
        "business_details": {"name": "n"},
    }
    role.update(overrides)
    return role


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([partner_offer()], "got a JSON list"),
        ("just a string", "got a JSON str"),
        (
            {"url": "https://partner.test/ocpi/versions", "roles": [_role()]},
            "token: This field is required",
        ),
        ({"token": "t", "roles": [_role()]}, "url: This field is required"),
        ({"token": "t", "url": "https://partner.test/v"}, "roles: This field is required"),
        (partner_offer(roles=[]), "roles: This list may not be empty"),
        (partner_offer("x" * 65), "token: Ensure this field has no more than 64 characters"),
        (partner_offer("with space"), "token: must contain only printable ASCII"),
        (partner_offer("tökén"), "token: must contain only printable ASCII"),
        (partner_offer(url="not a url"), "url: is not a valid http(s) URL"),
        (partner_offer(url="ftp://partner.test/v"), "url: is not a valid http(s) URL"),
        (partner_offer(roles=[_role(role="DRIVER")]), "roles[0].role: 'DRIVER' is not one of"),
        (partner_offer(roles=[_role(country_code="DEU")]), "roles[0].country_code"),
        (
            partner_offer(roles=[_role(country_code="D1")]),
            "roles[0].country_code: must be 2 letters",
        ),
        (partner_offer(roles=[_role(party_id="XY")]), "roles[0].party_id: must be 3 letters"),
        (partner_offer(roles=[_role(business_details={})]), "roles[0].business_details.name"),
        (partner_offer(roles=[_role(), _role(party_id="xyz")]), "DE/XYZ EMSP is listed twice"),
        (partner_offer(token=123), "token: must be a string"),
    ],
)
def test_invalid_credentials_object_answers_2001(api, invited, fake_partner, body, fragment):
    reply = api.post(CREDENTIALS, token=invited.token_a, body=body)

    assert (reply.status, reply.code) == (200, 2001)
    assert fragment in reply.message
    assert fake_partner.requests == []
    partner = Partner.objects.get(pk=invited.partner.pk)
    assert partner.state == PartnerState.INVITED
    assert partner.roles.count() == 0
    # The offered token value never appears in the answer.
    if isinstance(body, dict) and isinstance(body.get("token"), str) and len(body["token"]) > 3:
        assert body["token"] not in reply.message


def test_malformed_json_answers_400(api, invited):
    reply = api.post(CREDENTIALS, token=invited.token_a, raw="{not json")

    assert (reply.status, reply.code) == (400, 2001)
    assert "not valid JSON" in reply.message
    assert "timestamp" in reply.body


def test_empty_body_answers_2001(api, invited):
    reply = api.post(CREDENTIALS, token=invited.token_a, raw="")

    assert reply.code == 2001
    assert "token: This field is required" in reply.message


@pytest.mark.parametrize(
    ("authorization", "fragment"),
    [
        (None, "Authorization header missing"),
        ("Bearer abc", "'Token' scheme"),
        ("Token", "carries no token"),
        ("Token !!!not-base64!!!", "not valid Base64"),
        ("Token " + b64("unknown-token"), "Unknown or revoked"),
    ],
)
def test_bad_authorization_answers_401(api, invited, authorization, fragment):
    reply = api.call(
        "POST",
        CREDENTIALS,
        body=partner_offer(),
        **({"authorization": authorization} if authorization is not None else {}),
    )

    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == "Token"
    assert fragment in reply.message
    assert Partner.objects.get(pk=invited.partner.pk).state == PartnerState.INVITED


def test_unknown_method_answers_405_in_envelope(api, registered):
    reply = api.call("PATCH", CREDENTIALS, token=registered.inbound_token, body={})

    assert reply.status == 405
    assert reply.code == 2000
