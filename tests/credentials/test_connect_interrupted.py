"""A connect interrupted once our TOKEN_B exists never leaves it active.

Celery's soft time limit (``SoftTimeLimitExceeded``, raised wherever the run is) is the
realistic case: two discovery GETs and the POST, each up to OCPI_HTTP_HANDSHAKE_TIMEOUT, can
reach it. Whatever interrupts the POST or what follows it revokes our token; once the partner
answered with its token, it is sent the cleanup DELETE too, bounded so that it ends before the
task's hard time limit. The cleanup DELETE records URL policy refusals on the partner.
"""

from __future__ import annotations

import httpx
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from credentials import handshake
from credentials.models import JobState, Partner, PartnerEvent, PartnerJob, PartnerState
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.principal import TokenEncoding
from tests.conftest import b64

pytestmark = pytest.mark.django_db


def start(fake) -> PartnerJob:
    return handshake.connect_partner(
        name="fake", versions_url=fake.versions_url, token_a="partner-token-a"
    )


def finished(job: PartnerJob) -> PartnerJob:
    job.refresh_from_db()
    return job


def partner() -> Partner:
    return Partner.objects.get(name="fake")


def events(kind: str) -> list[str]:
    return list(
        PartnerEvent.objects.filter(partner__name="fake", kind=kind).values_list(
            "message", flat=True
        )
    )


def methods(fake) -> list[str]:
    return [r.method for r in fake.requests]


def interrupting_the_post(fake, exc: BaseException):
    """The partner processes our POST (it holds us registered), then the answer is lost."""
    original = fake.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            original(request)
            raise exc
        return original(request)

    return httpx.MockTransport(handler)


def test_the_soft_time_limit_during_the_post_revokes_our_token(fake_partner):
    """The reviewer's reproduction: before the fix TOKEN_B stayed active."""
    job = start(fake_partner)
    with use_transport(interrupting_the_post(fake_partner, SoftTimeLimitExceeded())):
        handshake.run_job(job.pk)

    job = finished(job)
    assert job.state == JobState.FAILED
    assert "ran out of time" in job.message
    assert "ask its operator to remove that registration" in job.message
    assert partner().state == PartnerState.FAILED
    assert not partner().inbound_tokens.active().exists()
    # Its answer (with its token) is lost: nothing to send the DELETE with.
    assert methods(fake_partner) == ["GET", "GET", "POST"]
    assert len(events("remote_unregister_failed")) == 1


def test_a_crash_during_the_post_revokes_our_token(fake_partner):
    job = start(fake_partner)
    with use_transport(interrupting_the_post(fake_partner, RuntimeError("boom"))):
        handshake.run_job(job.pk)

    job = finished(job)
    assert job.state == JobState.FAILED
    assert job.message.startswith("Internal error (RuntimeError)")
    assert not partner().inbound_tokens.active().exists()


def test_an_interruption_during_the_post_revokes_our_token_and_goes_on(fake_partner):
    job = start(fake_partner)
    with (
        use_transport(interrupting_the_post(fake_partner, KeyboardInterrupt())),
        pytest.raises(KeyboardInterrupt),
    ):
        handshake.run_job(job.pk)

    assert not partner().inbound_tokens.active().exists()
    job = finished(job)
    assert job.state == JobState.FAILED  # not left RUNNING
    assert "interrupted (KeyboardInterrupt)" in job.message
    assert partner().state == PartnerState.FAILED


def timeouts_of_deletes(fake) -> tuple[httpx.MockTransport, list[dict]]:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            seen.append(dict(request.extensions["timeout"]))
        return fake.handler(request)

    return httpx.MockTransport(handler), seen


def test_the_soft_time_limit_after_the_answer_revokes_and_sends_a_short_delete(
    fake_partner, monkeypatch
):
    def out_of_time(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(handshake, "_mark_registered", out_of_time)
    transport, delete_timeouts = timeouts_of_deletes(fake_partner)
    job = start(fake_partner)
    with use_transport(transport):
        handshake.run_job(job.pk)

    job = finished(job)
    assert job.state == JobState.FAILED
    assert "ran out of time" in job.message
    assert "We unregistered at the partner again." in job.message
    assert partner().state == PartnerState.FAILED
    assert not partner().inbound_tokens.active().exists()
    [delete] = [r for r in fake_partner.requests if r.method == "DELETE"]
    assert delete.headers["Authorization"] == "Token " + b64(fake_partner.issued[0])
    # Bounded to end before the hard time limit (30 s after the soft one).
    [timeout] = delete_timeouts
    assert timeout["read"] == handshake.LATE_DELETE_READ_TIMEOUT
    assert timeout["connect"] + timeout["read"] < (
        handshake.JOB_TIME_LIMIT - handshake.JOB_SOFT_TIME_LIMIT
    )


def test_a_late_delete_is_sent_once_without_the_unencoded_retry(fake_partner, monkeypatch):
    def out_of_time(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(handshake, "_mark_registered", out_of_time)
    original = fake_partner.handler

    def delete_unauthorized(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            original(request)
            return httpx.Response(401, json={"status_code": 2000, "timestamp": "x"})
        return original(request)

    job = start(fake_partner)
    with use_transport(httpx.MockTransport(delete_unauthorized)):
        handshake.run_job(job.pk)

    assert methods(fake_partner).count("DELETE") == 1
    assert "Unregistering at the partner failed too" in finished(job).message


def test_an_interruption_after_the_answer_still_undoes_and_goes_on(fake_partner, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(handshake, "_mark_registered", interrupted)
    job = start(fake_partner)
    with pytest.raises(KeyboardInterrupt):
        handshake.run_job(job.pk)

    assert not partner().inbound_tokens.active().exists()
    assert methods(fake_partner).count("DELETE") == 1
    assert events("remote_unregistered") == ["We unregistered at the partner again."]
    assert finished(job).state == JobState.FAILED


def test_the_soft_time_limit_elsewhere_in_a_job_is_named(fake_partner, registered, monkeypatch):
    def out_of_time(partner):
        raise SoftTimeLimitExceeded()

    monkeypatch.setitem(handshake._RUNNERS, "REFRESH", out_of_time)
    job = handshake.request_job(registered.partner, handshake.JobKind.REFRESH)
    handshake.run_job(job.pk)

    assert finished(job).message.startswith("The job ran out of time (the task's soft time")


def test_the_cleanup_delete_records_a_url_policy_refusal(fake_partner, registered):
    outcome = handshake._undo_remote_registration(
        registered.partner,
        "https://10.1.1.1/ocpi/2.2.1/credentials",
        "partner-token-c",
        TokenEncoding.BASE64,
    )

    assert "10.1.1.1 is private" in outcome
    assert fake_partner.requests == []
    assert list(
        registered.partner.events.filter(kind="url_refused").values_list("message", flat=True)
    ) == [
        "DELETE https://10.1.1.1/ocpi/2.2.1/credentials was not called: 10.1.1.1 is private "
        "(outbound URL policy)."
    ]
