"""The partner updates (PUT) or ends (DELETE) its registration with us."""

from __future__ import annotations

import pytest
import time_machine

from credentials import tokens
from credentials.models import Partner, PartnerEvent, PartnerState
from tests.conftest import make_registered, partner_offer

CREDENTIALS = "/ocpi/2.2.1/credentials"
pytestmark = pytest.mark.django_db


def test_get_returns_our_credentials_with_the_callers_token(api, registered):
    reply = api.get(CREDENTIALS, token=registered.inbound_token)

    assert reply.code == 1000
    assert reply.data["token"] == registered.inbound_token
    assert reply.data["url"] == "http://testserver/ocpi/versions"


def test_get_with_token_a_is_allowed(api, invited):
    assert api.get(CREDENTIALS, token=invited.token_a).data["token"] == invited.token_a


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_put_and_delete_before_registration_answer_405(api, invited, method):
    reply = api.call(method, CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.status == 405
    assert "Not registered" in reply.message
    assert Partner.objects.get(pk=invited.partner.pk).state == PartnerState.INVITED


def test_put_rotates_both_tokens_and_refetches_endpoints(api, registered, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-new"}
    fake_partner.modules.append(("tariffs", "RECEIVER"))

    reply = api.put(
        CREDENTIALS, token=registered.inbound_token, body=partner_offer("partner-token-new")
    )

    assert reply.code == 1000, reply.message
    new_inbound = reply.data["token"]
    assert new_inbound != registered.inbound_token
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert tokens.outbound_token(partner) == "partner-token-new"
    assert partner.endpoint_url("tariffs") == "https://partner.test/ocpi/2.2.1/tariffs"
    assert [r.path for r in fake_partner.requests] == ["/ocpi/versions", "/ocpi/2.2.1"]
    assert api.get("/ocpi/versions", token=new_inbound).code == 1000
    assert PartnerEvent.objects.filter(partner=partner, kind="rotated").exists()


def test_old_token_stays_valid_for_the_grace_period(api, registered, fake_partner, settings):
    settings.OCPI_TOKEN_GRACE_SECONDS = 60
    fake_partner.accepted_tokens = {"partner-token-new"}
    with time_machine.travel("2026-01-01T10:00:00Z", tick=False):
        reply = api.put(
            CREDENTIALS, token=registered.inbound_token, body=partner_offer("partner-token-new")
        )
        assert reply.code == 1000
        assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000
    with time_machine.travel("2026-01-01T10:00:59Z", tick=False):
        assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000
    with time_machine.travel("2026-01-01T10:01:01Z", tick=False):
        assert api.get("/ocpi/versions", token=registered.inbound_token).status == 401
        assert api.get("/ocpi/versions", token=reply.data["token"]).code == 1000


def test_put_that_fails_the_callback_changes_nothing(api, registered, fake_partner):
    fake_partner.accepted_tokens = set()  # refuses the new token

    reply = api.put(
        CREDENTIALS, token=registered.inbound_token, body=partner_offer("partner-token-new")
    )

    assert reply.code == 3001
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert tokens.outbound_token(partner) == registered.outbound_token
    assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000


def test_put_that_changes_the_identity_is_refused_and_recorded(api, registered, fake_partner):
    roles = [
        {
            "role": "EMSP",
            "party_id": "XYZ",
            "country_code": "DE",
            "business_details": {"name": "n"},
        },
        {"role": "CPO", "party_id": "NEW", "country_code": "DE", "business_details": {"name": "n"}},
    ]

    reply = api.put(CREDENTIALS, token=registered.inbound_token, body=partner_offer(roles=roles))

    assert reply.code == 2001
    assert "locked" in reply.message
    assert "adds DE/NEW CPO" in reply.message
    assert fake_partner.requests == []
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert [r.party_id for r in partner.roles.all()] == ["XYZ"]
    assert PartnerEvent.objects.filter(partner=partner, kind="identity_refused").exists()
    assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000


def test_put_may_change_business_details(api, registered, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-new"}
    roles = [
        {
            "role": "EMSP",
            "party_id": "xyz",
            "country_code": "de",
            "business_details": {"name": "Renamed", "website": "https://renamed.example"},
        }
    ]

    reply = api.put(
        CREDENTIALS,
        token=registered.inbound_token,
        body=partner_offer("partner-token-new", roles=roles),
    )

    assert reply.code == 1000, reply.message
    role = Partner.objects.get(pk=registered.partner.pk).roles.get()
    assert role.business_details == {"name": "Renamed", "website": "https://renamed.example"}


def test_delete_unregisters_and_stops_all_traffic(api, registered):
    reply = api.delete(CREDENTIALS, token=registered.inbound_token)

    assert (reply.status, reply.code) == (200, 1000)
    assert "data" not in reply.body
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert partner.state == PartnerState.UNREGISTERED
    assert partner.outbound_token_encrypted == ""
    assert partner.roles.count() == 0
    assert api.get("/ocpi/versions", token=registered.inbound_token).status == 401
    # The party is free again for a new connection.
    make_registered("successor", country_code="DE", party_id="XYZ", role="EMSP")


def test_post_by_registered_partner_answers_405(api, registered):
    reply = api.post(CREDENTIALS, token=registered.inbound_token, body=partner_offer())

    assert reply.status == 405
    assert "Already registered" in reply.message
