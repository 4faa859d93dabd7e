"""A partner's hostile answer fails only its own call: a registration gets 3001 (not 3000), a ping
run pings every other partner; refusals never show a password of a URL."""

from __future__ import annotations

import logging

import httpx
import pytest

from credentials import liveness
from credentials.models import Partner, PartnerEvent
from ocpi_platform.ocpi import urlpolicy
from ocpi_platform.ocpi.client import use_transport
from tests.conftest import make_registered, partner_offer

pytestmark = pytest.mark.django_db

CREDENTIALS = "/ocpi/2.2.1/credentials"
VERSIONS = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": []}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000,
        b'{"status_code": 1000, "timestamp": "x", "data": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
    ],
    ids=["unbalanced", "deep"],
)
def test_a_hostile_versions_answer_fails_the_registration_with_3001(api, invited, body):
    answer = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    with use_transport(httpx.MockTransport(lambda request: answer)):
        reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 3001
    assert reply.message.startswith("Could not read the partner's versions: GET ")
    assert api.get("/ocpi/versions", token=invited.token_a).code == 1000  # token A still works


def _ping_all(handler):
    bad = make_registered("bad", party_id="BAD", versions_url="https://bad.test/ocpi/versions")
    good = make_registered("good", party_id="GUD", versions_url="https://good.test/ocpi/versions")
    Partner.objects.update(last_connection=None)
    with use_transport(httpx.MockTransport(handler)):
        results = liveness.ping_idle()
    assert results is not None
    return {r.partner: r for r in results}, bad.partner, good.partner


def test_a_deep_ping_answer_is_a_failed_ping_and_the_run_goes_on():
    def handler(request):
        if request.url.host == "bad.test":
            return httpx.Response(200, content=b"[" * 100_000)
        return httpx.Response(200, json=VERSIONS)

    results, bad, good = _ping_all(handler)

    assert not results["bad"].ok
    assert "deeper than" in results["bad"].reason
    assert results["good"].ok
    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.last_ping_at is not None
    assert bad.ping_failures == 1
    assert good.last_ping_at is not None
    assert good.last_connection is not None


def test_an_unexpected_error_in_one_ping_does_not_stop_the_run(caplog):
    def handler(request):
        if request.url.host == "bad.test":
            raise RuntimeError("a bug somewhere below the client")
        return httpx.Response(200, json=VERSIONS)

    with caplog.at_level(logging.ERROR, logger="credentials.liveness"):
        results, bad, _good = _ping_all(handler)

    assert results["bad"].reason == "The ping failed unexpectedly (RuntimeError)."
    assert results["good"].ok
    bad.refresh_from_db()
    assert bad.last_ping_at is not None
    assert bad.ping_failures == 1
    assert bad.last_ping_error == "The ping failed unexpectedly (RuntimeError)."
    assert "Ping of partner bad failed unexpectedly" in caplog.text


def test_a_password_in_the_versions_url_is_in_no_message(api, invited, caplog):
    caplog.set_level(logging.DEBUG)
    url = "https://user:s3cr3t@partner.test/ocpi/versions"
    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer(url=url))

    assert reply.code == 3001
    assert "https://***@partner.test/ocpi/versions" in reply.message
    events = list(PartnerEvent.objects.values_list("message", flat=True))
    assert any("user info" in message for message in events)
    for text in [reply.message, caplog.text, *events]:
        assert "s3cr3t" not in text


def test_a_registration_refused_after_resolving_does_not_tell_the_address(
    api, invited, monkeypatch, settings
):
    settings.OCPI_PUBLIC_URL = "https://ocpi.example.com"
    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: ["10.1.2.3"])
    offer = partner_offer(url="https://rebind.test/ocpi/versions")
    reply = api.post(CREDENTIALS, token=invited.token_a, body=offer)

    assert reply.code == 3001
    assert "rebind.test resolves to a private address" in reply.message
    assert "10.1.2.3" not in reply.message
    [refusal] = PartnerEvent.objects.filter(kind="url_refused").values_list("message", flat=True)
    assert "rebind.test resolves to 10.1.2.3, which is private" in refusal
