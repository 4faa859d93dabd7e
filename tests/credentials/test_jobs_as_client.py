"""We are the client: connect (register with the partner), rotate, unregister, refresh.

The jobs run in-process (``handshake.run_job``) against the fake partner.
"""

from __future__ import annotations

import httpx
import pytest

from credentials import handshake, tokens
from credentials.models import JobKind, JobState, Partner, PartnerJob, PartnerState
from tests.conftest import b64, make_registered

pytestmark = pytest.mark.django_db


def connect(fake, *, token_a="partner-token-a", django_capture_on_commit_callbacks=None):
    job = handshake.connect_partner(name="fake", versions_url=fake.versions_url, token_a=token_a)
    handshake.run_job(job.pk)
    job.refresh_from_db()
    return job


def test_connect_registers_with_the_partner(fake_partner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        job = handshake.connect_partner(
            name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
        )
    assert len(callbacks) == 1  # the task is enqueued after commit
    handshake.run_job(job.pk)
    job.refresh_from_db()

    assert job.state == JobState.SUCCEEDED, job.message
    partner = Partner.objects.get(name="fake")
    assert partner.state == PartnerState.REGISTERED
    assert partner.version == "2.2.1"  # highest mutual of 2.1.1 and 2.2.1
    # The POST carried our credentials: a fresh TOKEN_B that now authenticates the partner.
    posted = fake_partner.received_credentials[0]
    assert posted["url"] == "http://testserver/ocpi/versions"
    assert tokens.find_active(posted["token"]).partner == partner
    assert tokens.outbound_token(partner) == fake_partner.issued[0]  # TOKEN_C
    assert [(r.country_code, r.party_id, r.role) for r in partner.roles.all()] == [
        ("DE", "XYZ", "EMSP")
    ]
    post = next(r for r in fake_partner.requests if r.method == "POST")
    assert post.headers["Authorization"] == "Token cGFydG5lci10b2tlbi1h"  # base64(token A)
    assert "OCPI-to-party-id" not in post.headers  # never routing headers on credentials
    assert post.headers["X-Request-ID"]
    assert post.headers["X-Correlation-ID"]


def test_connect_runs_once_even_if_the_task_is_delivered_twice(fake_partner):
    job = connect(fake_partner)
    handshake.run_job(job.pk)  # duplicate delivery

    assert sum(1 for r in fake_partner.requests if r.method == "POST") == 1


def test_connect_falls_back_to_unencoded_tokens(fake_partner):
    fake_partner.wants_plain_tokens = True

    job = connect(fake_partner)

    assert job.state == JobState.SUCCEEDED, job.message
    assert Partner.objects.get(name="fake").token_encoding == "plain"


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        (lambda f: f.fail_next(httpx.ConnectError("refused")), "refused"),
        (lambda f: f.respond_next(503, {"x": 1}), "HTTP 503"),
        (lambda f: f.respond_next(200, "<html/>", content_type="text/html"), "OCPI envelope"),
        (lambda f: setattr(f, "versions", ["2.1.1"]), "lists 2.1.1"),
        (lambda f: setattr(f, "modules", [("locations", "SENDER")]), "credentials endpoint"),
        (lambda f: setattr(f, "accepted_tokens", set()), "HTTP 401"),
    ],
)
def test_connect_failure_is_reported_and_sends_no_post(fake_partner, script, fragment):
    script(fake_partner)

    job = connect(fake_partner)

    assert job.state == JobState.FAILED
    assert fragment in job.message
    partner = Partner.objects.get(name="fake")
    assert partner.state == PartnerState.FAILED
    assert fragment in partner.failure_reason
    assert not any(r.method == "POST" for r in fake_partner.requests)


def test_refused_post_revokes_token_b(fake_partner):
    original = fake_partner.handler

    def refuse_post(request):
        if request.method == "POST":
            return httpx.Response(
                200, json={"status_code": 2001, "status_message": "no", "timestamp": "x"}
            )
        return original(request)

    from ocpi_platform.ocpi.client import use_transport

    with use_transport(httpx.MockTransport(refuse_post)):
        job = connect(fake_partner)

    assert job.state == JobState.FAILED
    assert "2001" in job.message
    partner = Partner.objects.get(name="fake")
    assert not partner.inbound_tokens.active().exists()


def test_connect_with_invalid_input_is_refused_at_once(db):
    with pytest.raises(handshake.HandshakeFailed, match="versions URL is not a valid"):
        handshake.connect_partner(name="p", versions_url="nope", token_a="abc")
    with pytest.raises(handshake.HandshakeFailed, match="Token A must be at most 64"):
        handshake.connect_partner(name="p", versions_url="https://partner.test/v", token_a="x" * 65)
    assert not Partner.objects.exists()


def test_rotate_sends_put_and_keeps_the_old_token_for_the_grace_period(
    fake_partner, registered, api
):
    fake_partner.accepted_tokens = {registered.outbound_token}

    job = handshake.request_job(registered.partner, JobKind.ROTATE)
    handshake.run_job(job.pk)
    job.refresh_from_db()

    assert job.state == JobState.SUCCEEDED, job.message
    put = next(r for r in fake_partner.requests if r.method == "PUT")
    new_inbound = put.body["token"]
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert tokens.outbound_token(partner) == fake_partner.issued[0]
    assert api.get("/ocpi/versions", token=new_inbound).code == 1000
    old = tokens.find_active(registered.inbound_token)
    assert old is not None
    assert old.expires_at is not None


def test_failed_rotation_keeps_the_current_tokens(fake_partner, registered, api):
    fake_partner.accepted_tokens = {registered.outbound_token}
    fake_partner.respond_next(
        200,
        {
            "data": [{"version": "2.2.1", "url": "https://partner.test/ocpi/2.2.1"}],
            "status_code": 1000,
            "timestamp": "x",
        },
    )
    fake_partner.respond_next(
        200,
        {
            "data": {
                "version": "2.2.1",
                "endpoints": [
                    {
                        "identifier": "credentials",
                        "role": "SENDER",
                        "url": fake_partner.credentials_url,
                    }
                ],
            },
            "status_code": 1000,
            "timestamp": "x",
        },
    )
    fake_partner.respond_next(500, None)

    job = handshake.request_job(registered.partner, JobKind.ROTATE)
    handshake.run_job(job.pk)
    job.refresh_from_db()

    assert job.state == JobState.FAILED
    assert "HTTP 500" in job.message
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert tokens.outbound_token(partner) == registered.outbound_token
    assert partner.inbound_tokens.active().count() == 1
    assert tokens.find_active(registered.inbound_token).expires_at is None


def test_unregister_sends_delete_and_stops_here(fake_partner, registered, api):
    fake_partner.accepted_tokens = {registered.outbound_token}

    job = handshake.request_job(registered.partner, JobKind.UNREGISTER)
    handshake.run_job(job.pk)
    job.refresh_from_db()

    assert job.state == JobState.SUCCEEDED, job.message
    assert [r.method for r in fake_partner.requests] == ["DELETE"]
    assert Partner.objects.get(pk=registered.partner.pk).state == PartnerState.UNREGISTERED
    assert api.get("/ocpi/versions", token=registered.inbound_token).status == 401
    with pytest.raises(handshake.HandshakeFailed, match="not registered"):
        handshake.request_job(Partner.objects.get(pk=registered.partner.pk), JobKind.REFRESH)


def test_unregister_of_an_unreachable_partner_still_stops_here(fake_partner, registered):
    fake_partner.fail_next(httpx.ConnectError("refused"))

    job = handshake.request_job(registered.partner, JobKind.UNREGISTER)
    handshake.run_job(job.pk)
    job.refresh_from_db()

    assert job.state == JobState.FAILED
    assert "could not be told" in job.message
    assert Partner.objects.get(pk=registered.partner.pk).state == PartnerState.UNREGISTERED


def test_refresh_stores_the_current_endpoints(fake_partner, registered):
    fake_partner.accepted_tokens = {registered.outbound_token}
    fake_partner.modules.append(("sessions", "RECEIVER"))

    job = handshake.request_job(registered.partner, JobKind.REFRESH)
    handshake.run_job(job.pk)

    assert PartnerJob.objects.get(pk=job.pk).state == JobState.SUCCEEDED
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert partner.endpoint_url("sessions") == "https://partner.test/ocpi/2.2.1/sessions"


def test_connect_to_a_partner_whose_party_is_taken_undoes_its_registration(fake_partner):
    make_registered("earlier", country_code="DE", party_id="XYZ", role="EMSP")

    job = connect(fake_partner)

    assert job.state == JobState.FAILED
    assert "DE/XYZ EMSP is already registered by another connection" in job.message
    assert "unregistered at the partner again" in job.message
    delete = fake_partner.requests[-1]
    assert delete.method == "DELETE"
    assert delete.headers["Authorization"] == "Token " + b64(fake_partner.issued[0])
    assert not Partner.objects.get(name="fake").inbound_tokens.active().exists()
