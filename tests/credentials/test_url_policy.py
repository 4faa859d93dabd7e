"""The outbound URL policy in the handshake, and what our 3001/3002 answers tell the partner.

A partner holding only token A must not make us fetch an internal URL, nor read any of an
internal answer back in our error message. Nothing leaves the process: the fake partner sits
behind the client's transport seam, or the resolver is replaced.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpcore
import pytest

from credentials import handshake, urlrefusals
from credentials.models import Partner, PartnerEvent, PartnerState
from ocpi_platform.ocpi import urlpolicy
from ocpi_platform.ocpi.client import OcpiClient, UrlRefused
from ocpi_platform.ocpi.types import now_utc
from tests.conftest import make_registered, partner_offer
from tests.fakes.partner import BASE, envelope

CREDENTIALS = "/ocpi/2.2.1/credentials"
pytestmark = pytest.mark.django_db


def events(partner: Partner, kind: str) -> list[str]:
    return list(partner.events.filter(kind=kind).values_list("message", flat=True))


def assert_token_a_still_works(api: Any, invited: Any) -> None:
    assert api.get("/ocpi/versions", token=invited.token_a).code == 1000


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is link-local"),
        ("https://[::ffff:169.254.169.254]/x", "link-local (it carries 169.254.169.254)"),
        ("https://10.0.0.1/ocpi/versions", "10.0.0.1 is private"),
        ("https://[fd00::1]/ocpi/versions", "fd00::1 is unique-local"),
        ("https://0.0.0.0/ocpi/versions", "0.0.0.0 is unspecified"),
        ("https://localhost/ocpi/versions", "localhost is loopback"),
        ("http://partner.test/ocpi/versions", urlpolicy.RULE_HTTPS),
    ],
)
def test_credentials_post_to_a_forbidden_url_is_3001_and_nothing_is_fetched(
    api, invited, fake_partner, url, rule
):
    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer(url=url))

    assert (reply.status, reply.code) == (200, 3001)
    assert rule in reply.message
    assert "outbound URL policy" in reply.message
    assert fake_partner.requests == []
    partner = Partner.objects.get(pk=invited.partner.pk)
    assert partner.state == PartnerState.FAILED
    assert rule in partner.failure_reason
    [refusal] = events(partner, "url_refused")
    assert rule in refusal
    assert_token_a_still_works(api, invited)


def test_a_name_resolving_to_an_internal_address_is_refused_at_connect_time(
    api, invited, monkeypatch
):
    """No fake transport: the real one, with the resolver replaced and no socket allowed."""
    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: ["10.20.30.40"])
    connected: list[Any] = []

    def connect_tcp(self: Any, *args: Any, **kwargs: Any) -> Any:
        connected.append(args)
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)

    offer = partner_offer(url="https://internal.partner.test/ocpi/versions")
    reply = api.post(CREDENTIALS, token=invited.token_a, body=offer)

    assert reply.code == 3001
    # The partner learns the rule, not what its name resolves to in our DNS; the operator does.
    assert "internal.partner.test resolves to a private address" in reply.message
    assert "10.20.30.40" not in reply.message
    assert connected == []
    [refusal] = events(Partner.objects.get(pk=invited.partner.pk), "url_refused")
    assert "internal.partner.test resolves to 10.20.30.40, which is private" in refusal
    assert_token_a_still_works(api, invited)


def test_a_versions_list_naming_a_private_details_url_is_refused(api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}
    fake_partner.respond_next(
        200, envelope([{"version": "2.2.1", "url": "https://192.168.0.10/ocpi/2.2.1"}])
    )

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3001
    assert reply.message == (
        "Could not read the partner's version 2.2.1 details: GET https://192.168.0.10/ocpi/2.2.1 "
        "was not called: 192.168.0.10 is private (outbound URL policy)."
    )
    assert [r.path for r in fake_partner.requests] == ["/ocpi/versions"]
    assert events(Partner.objects.get(pk=invited.partner.pk), "url_refused")


def test_an_endpoint_at_a_forbidden_url_is_refused(api, invited, fake_partner):
    fake_partner.accepted_tokens = {"partner-token-b"}
    fake_partner.respond_next(200, envelope([{"version": "2.2.1", "url": f"{BASE}/2.2.1"}]))
    endpoints = [
        {"identifier": "credentials", "role": "SENDER", "url": f"{BASE}/2.2.1/credentials"},
        {"identifier": "locations", "role": "RECEIVER", "url": "https://169.254.169.254/loc"},
    ]
    fake_partner.respond_next(200, envelope({"version": "2.2.1", "endpoints": endpoints}))

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3001
    assert "locations at a URL we do not call: 169.254.169.254 is link-local" in reply.message
    assert Partner.objects.get(pk=invited.partner.pk).state == PartnerState.FAILED


def test_credentials_put_to_a_forbidden_url_is_3001_and_recorded(api, fake_partner):
    registered = make_registered(versions_url=fake_partner.versions_url)

    offer = partner_offer(token="partner-token-new", url="https://127.0.0.1:6379/")
    reply = api.put(CREDENTIALS, token=registered.inbound_token, body=offer)

    assert reply.code == 3001
    assert "127.0.0.1 is loopback" in reply.message
    assert fake_partner.requests == []
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert partner.state == PartnerState.REGISTERED  # nothing changed
    assert events(partner, "url_refused")
    assert events(partner, "update_failed")


# --- item 9: what the 3001/3002 text relays ------------------------------------------------------


def test_3001_does_not_echo_a_body_that_is_not_an_ocpi_envelope(api, invited, fake_partner):
    secret = "<html>internal admin: db password hunter2</html>"
    fake_partner.respond_next(200, secret, content_type="text/html; charset=utf-8")

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3001
    assert reply.message == (
        "Could not read the partner's versions: GET https://partner.test/ocpi/versions did not "
        "answer with an OCPI envelope (HTTP 200, text/html; charset=utf-8)."
    )
    assert "hunter2" not in reply.message


def test_3001_does_not_echo_a_json_answer_that_is_not_an_ocpi_envelope(api, invited, fake_partner):
    # JSON with a status_code but no timestamp: not an OCPI envelope, its words stay here.
    fake_partner.respond_next(403, {"status_code": 403, "status_message": "internal: hunter2"})

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3001
    assert "HTTP 403" in reply.message
    assert "hunter2" not in reply.message
    # The operator reads it (the partner's trail).
    assert "hunter2" in Partner.objects.get(pk=invited.partner.pk).failure_reason


def test_3001_quotes_at_most_120_characters_of_the_partners_status_message(
    api, invited, fake_partner
):
    fake_partner.respond_next(404, envelope(status_code=2000, message="No. " + "y" * 400))

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3001
    assert ("No. " + "y" * 116 + "…") in reply.message
    assert "y" * 117 not in reply.message
    assert len(reply.message) < 250
    assert "y" * 190 in Partner.objects.get(pk=invited.partner.pk).failure_reason


def test_3001_on_a_connection_failure_names_no_transport_details(api, invited, fake_partner):
    import httpx

    fake_partner.fail_next(httpx.RemoteProtocolError("illegal status line: b'+OK redis 7.2'"))

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3001
    assert reply.message.endswith("failed: RemoteProtocolError.")
    assert "redis" not in reply.message
    assert "redis" in Partner.objects.get(pk=invited.partner.pk).failure_reason


def test_3002_lists_few_short_versions(api, invited, fake_partner):
    versions = [{"version": f"9.{i}-" + "v" * 50, "url": f"{BASE}/{i}"} for i in range(40)]
    fake_partner.respond_next(200, envelope(versions))

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3002
    assert "and 30 more" in reply.message
    assert "v" * 20 not in reply.message
    assert len(reply.message) < 400


# --- we are the client ---------------------------------------------------------------------------


def test_connect_refuses_a_forbidden_versions_url_up_front(db):
    with pytest.raises(handshake.HandshakeFailed, match=r"169.254.169.254 is link-local"):
        handshake.connect_partner(
            name="p", versions_url="https://169.254.169.254/ocpi/versions", token_a="a" * 20
        )
    assert not Partner.objects.exists()


def test_a_refused_endpoint_of_a_registered_partner_is_recorded_once(fake_partner):
    """A stored URL that the policy now refuses: each job names the rule; the trail gets the
    refusal once (within urlrefusals.REPEAT_AFTER)."""
    registered = make_registered(versions_url="https://10.1.1.1/ocpi/versions")
    partner = registered.partner

    for _ in range(2):
        job = handshake.request_job(partner, handshake.JobKind.REFRESH)
        handshake.run_job(job.pk)
        job.refresh_from_db()
        assert "10.1.1.1 is private" in job.message

    assert fake_partner.requests == []
    assert len(events(partner, "url_refused")) == 1


def test_the_same_refusal_is_recorded_again_after_an_hour(db):
    partner = make_registered().partner
    refused = UrlRefused("GET https://10.0.0.1/ was not called: 10.0.0.1 is private.", rule="r")
    other = UrlRefused("GET https://10.0.0.2/ was not called: 10.0.0.2 is private.", rule="r")

    urlrefusals.record_refusal(partner.pk, refused)
    urlrefusals.record_refusal(partner.pk, refused)
    urlrefusals.record_refusal(partner.pk, other)
    assert len(events(partner, "url_refused")) == 2
    PartnerEvent.objects.filter(kind="url_refused").update(
        created_at=now_utc() - urlrefusals.REPEAT_AFTER - timedelta(seconds=1)
    )
    urlrefusals.record_refusal(partner.pk, refused)
    assert len(events(partner, "url_refused")) == 3


def test_pushes_and_pings_use_a_client_that_records_refusals(db):
    from credentials import liveness

    partner = make_registered(versions_url="https://10.1.1.1/ocpi/versions").partner
    with liveness.client_for(partner) as client, pytest.raises(UrlRefused):
        client.get(partner.versions_url)
    assert events(partner, "url_refused") == [
        "GET https://10.1.1.1/ocpi/versions was not called: 10.1.1.1 is private "
        "(outbound URL policy)."
    ]


def test_the_client_needs_no_partner(db):
    with pytest.raises(UrlRefused):
        OcpiClient("t").get("https://[::1]/")
