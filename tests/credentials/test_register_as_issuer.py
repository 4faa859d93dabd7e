"""The partner registers with us: POST credentials with our token A (we are the Issuer)."""

from __future__ import annotations

import httpx
import pytest

from credentials import tokens
from credentials.models import Partner, PartnerState
from tests.conftest import load_example, make_registered, partner_offer

CREDENTIALS = "/ocpi/2.2.1/credentials"
pytestmark = pytest.mark.django_db


def test_post_with_token_a_calls_back_issues_new_token_and_revokes_a(api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert (reply.status, reply.code) == (200, 1000)
    token_c = reply.data["token"]
    assert token_c != invited.token_a
    assert reply.data["url"] == "http://testserver/ocpi/versions"
    assert {(r["country_code"], r["party_id"], r["role"]) for r in reply.data["roles"]} == {
        ("NL", "ABC", "CPO"),
        ("NL", "ABC", "EMSP"),
    }
    # The callbacks used the token the partner offered, Base64-encoded.
    assert [r.path for r in fake_partner.requests] == ["/ocpi/versions", "/ocpi/2.2.1"]
    assert all(
        r.headers["Authorization"] == "Token cGFydG5lci10b2tlbi1i" for r in fake_partner.requests
    )
    partner = Partner.objects.get(pk=invited.partner.pk)
    assert partner.state == PartnerState.REGISTERED
    assert partner.version == "2.2.1"
    assert tokens.outbound_token(partner) == "partner-token-b"
    assert {(r.country_code, r.party_id, r.role) for r in partner.roles.all()} == {
        ("DE", "XYZ", "EMSP")
    }
    assert partner.endpoint_url("locations") == "https://partner.test/ocpi/2.2.1/locations"
    # Token A is retired; the new token works on a functional-module check (versions here).
    assert api.get("/ocpi/versions", token=invited.token_a).status == 401
    assert api.get("/ocpi/versions", token=token_c).code == 1000
    # A second POST with the new token: already registered.
    again = api.post(CREDENTIALS, token=token_c, body=partner_offer())
    assert again.status == 405


def test_spec_example_credentials_register(api, invited, fake_partner):
    """credentials_example4.json (three CPO parties on one platform) registers as it is."""
    offer = load_example("credentials_example4.json")
    fake_partner.accepted_tokens = {offer["token"]}
    offer_url = offer["url"]

    def route(request: httpx.Request) -> httpx.Response:
        # The example's versions URL lives at ocpi.example.com: serve it from the fake.
        url = str(request.url).replace(
            "https://ocpi.example.com/versions", fake_partner.versions_url
        )
        return fake_partner.handler(httpx.Request(request.method, url, headers=request.headers))

    from ocpi_platform.ocpi.client import use_transport

    with use_transport(httpx.MockTransport(route)):
        reply = api.post(CREDENTIALS, token=invited.token_a, body=offer)

    assert reply.code == 1000, reply.message
    partner = Partner.objects.get(pk=invited.partner.pk)
    assert partner.versions_url == offer_url
    assert sorted(r.party_id for r in partner.roles.all()) == ["CGP", "EXO", "PFC"]


@pytest.mark.parametrize(
    ("failure", "expected_code", "fragment"),
    [
        (httpx.ConnectTimeout("timed out"), 3001, "timed out"),
        ((500, {"oops": 1}), 3001, "HTTP 500"),
        ((200, "<html>hello</html>"), 3001, "OCPI envelope"),
        ((401, None), 3001, "HTTP 401"),
    ],
)
def test_callback_failure_answers_3001_and_keeps_token_a(
    api, invited, fake_partner, failure, expected_code, fragment
):
    fake_partner.accepted_tokens = {"partner-token-b"}
    if isinstance(failure, Exception):
        fake_partner.fail_next(failure)
    else:
        status, body = failure
        content_type = "text/html" if isinstance(body, str) else "application/json"
        fake_partner.respond_next(status, body, content_type=content_type)
        if status == 401:
            fake_partner.respond_next(401, None)  # also refuses the unencoded retry

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert (reply.status, reply.code) == (200, expected_code)
    assert fragment in reply.message
    partner = Partner.objects.get(pk=invited.partner.pk)
    assert partner.state == PartnerState.FAILED
    assert fragment in partner.failure_reason
    assert partner.roles.count() == 0
    # Token A still works: the partner retries and succeeds.
    retry = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())
    assert retry.code == 1000, retry.message


def test_partner_without_2_2_1_answers_3002(api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}
    fake_partner.versions = ["2.1.1"]

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3002
    assert "2.1.1" in reply.message
    assert "2.2.1" in reply.message
    assert api.get("/ocpi/versions", token=invited.token_a).code == 1000


def test_partner_without_credentials_endpoint_answers_3003(api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}
    fake_partner.modules = [("locations", "RECEIVER")]

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3003
    assert "credentials" in reply.message
    assert Partner.objects.get(pk=invited.partner.pk).state == PartnerState.FAILED


def test_unencoded_partner_is_remembered(api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}
    fake_partner.wants_plain_tokens = True

    reply = api.post(CREDENTIALS, token=invited.token_a, plain=True, body=partner_offer())

    assert reply.code == 1000, reply.message
    partner = Partner.objects.get(pk=invited.partner.pk)
    assert partner.token_encoding == "plain"
    # It authenticated to us unencoded, so we call it unencoded from the first callback on.
    assert fake_partner.requests[0].headers["Authorization"] == "Token partner-token-b"


def test_party_of_another_connection_cannot_be_registered(api, invited, fake_partner):
    make_registered("other", country_code="DE", party_id="XYZ", role="EMSP")
    fake_partner.accepted_tokens = {"partner-token-b"}

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 2001
    assert "DE/XYZ EMSP" in reply.message
    assert "already registered" in reply.message
    assert fake_partner.requests == []  # refused before any callback
    assert Partner.objects.get(pk=invited.partner.pk).state == PartnerState.INVITED


def test_our_own_party_cannot_be_registered(api, invited, fake_partner):
    roles = [
        {"role": "CPO", "party_id": "abc", "country_code": "nl", "business_details": {"name": "x"}}
    ]

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer(roles=roles))

    assert reply.code == 2001
    assert "NL/ABC CPO" in reply.message


def test_callbacks_carry_the_correlation_id_of_the_registration(api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}

    reply = api.post(
        CREDENTIALS,
        token=invited.token_a,
        body=partner_offer(),
        headers={"X-Correlation-ID": "corr-registration-1", "X-Request-ID": "req-1"},
    )

    assert reply.code == 1000
    assert [r.headers["X-Correlation-ID"] for r in fake_partner.requests] == [
        "corr-registration-1",
        "corr-registration-1",
    ]
    assert all(r.headers["X-Request-ID"] != "req-1" for r in fake_partner.requests)
