"""A partner job whose worker died (OOM, SIGKILL) does not stay RUNNING forever.

The state such a death leaves: the job RUNNING, the partner REGISTERING and busy, our TOKEN_B
active. A job still RUNNING ``JOB_DEAD_AFTER`` after its start outlived its task's hard time
limit: the beat sweep (``fail_dead_jobs``) fails it, leaves the partner as a failed connect
does (FAILED, its token revoked, not busy) and records why; ``connect_partner`` does the same
for the partner it is asked to connect, so an operator can retry at once. A job whose start is
recent is left alone, and so is one that finishes while the sweep waits for its partner's row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from django.conf import settings

from credentials import handshake, tasks, tokens
from credentials.models import (
    JobKind,
    JobState,
    Partner,
    PartnerEvent,
    PartnerJob,
    PartnerState,
)
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.principal import TokenKind
from ocpi_platform.ocpi.types import now_utc
from tests.concurrency import race


def started(seconds_ago: float) -> datetime:
    return now_utc() - timedelta(seconds=seconds_ago)


DEAD = handshake.JOB_DEAD_AFTER.total_seconds() + 1
RECENT = 10.0


def lost_connect(fake, *, seconds_ago: float) -> PartnerJob:
    """The state a SIGKILL of the worker during the POST leaves (claimed, busy, token B)."""
    job = handshake.connect_partner(
        name="fake", versions_url=fake.versions_url, token_a="partner-token-a"
    )
    PartnerJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, started_at=started(seconds_ago)
    )
    Partner.objects.filter(pk=job.partner_id).update(busy_since=started(seconds_ago))
    tokens.issue_inbound_token(Partner.objects.get(pk=job.partner_id), TokenKind.REGULAR)
    job.refresh_from_db()
    return job


def fresh(obj):
    obj.refresh_from_db()
    return obj


def events(kind: str) -> list[str]:
    return list(
        PartnerEvent.objects.filter(partner__name="fake", kind=kind).values_list(
            "message", flat=True
        )
    )


def assert_failed_as_lost(job: PartnerJob) -> None:
    job = fresh(job)
    assert job.state == JobState.FAILED
    assert "The worker running this job was lost" in job.message
    assert job.finished_at is not None
    partner = Partner.objects.get(pk=job.partner_id)
    assert partner.state == PartnerState.FAILED
    assert "The worker running this job was lost" in partner.failure_reason
    assert not partner.inbound_tokens.active().exists()
    assert partner.busy_since is None
    [event] = events("registration_failed")
    assert "token for the partner is revoked" in event


@pytest.mark.django_db
def test_the_sweep_fails_a_dead_connect_and_the_operator_can_connect_again(fake_partner):
    job = lost_connect(fake_partner, seconds_ago=DEAD)

    assert handshake.fail_dead_jobs() == 1

    assert_failed_as_lost(job)
    again = handshake.connect_partner(
        name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
    )
    handshake.run_job(again.pk)
    assert fresh(again).state == JobState.SUCCEEDED, again.message
    assert Partner.objects.get(name="fake").state == PartnerState.REGISTERED


@pytest.mark.django_db
def test_the_sweep_is_idempotent(fake_partner):
    job = lost_connect(fake_partner, seconds_ago=DEAD)

    assert handshake.fail_dead_jobs() == 1
    assert handshake.fail_dead_jobs() == 0

    assert_failed_as_lost(job)  # one event only


@pytest.mark.django_db
def test_a_recent_running_job_is_left_alone(fake_partner):
    job = lost_connect(fake_partner, seconds_ago=RECENT)

    assert handshake.fail_dead_jobs() == 0
    handshake.run_job(job.pk)  # a redelivery within the window does nothing either

    assert fresh(job).state == JobState.RUNNING
    partner = Partner.objects.get(pk=job.partner_id)
    assert partner.state == PartnerState.REGISTERING
    assert partner.inbound_tokens.active().count() == 1
    with pytest.raises(handshake.HandshakeFailed, match="is registering; unregister it"):
        handshake.connect_partner(
            name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
        )
    assert fake_partner.requests == []


@pytest.mark.django_db
def test_connect_partner_fails_a_dead_connect_and_starts_at_once(fake_partner):
    """The reviewer's reproduction: before the fix this refused ("is registering")."""
    job = lost_connect(fake_partner, seconds_ago=DEAD)

    again = handshake.connect_partner(
        name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
    )

    old = fresh(job)
    assert old.state == JobState.FAILED
    assert "The worker running this job was lost" in old.message
    assert len(events("registration_failed")) == 1
    handshake.run_job(again.pk)
    assert fresh(again).state == JobState.SUCCEEDED, again.message


@pytest.mark.django_db
def test_a_redelivery_after_the_window_fails_the_job_instead_of_running_it(fake_partner):
    job = lost_connect(fake_partner, seconds_ago=DEAD)

    handshake.run_job(job.pk)

    assert_failed_as_lost(job)
    assert fake_partner.requests == []  # not run a second time


@pytest.mark.django_db
def test_a_dead_connect_that_had_stored_the_registration_succeeded(fake_partner):
    job = handshake.connect_partner(
        name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
    )
    handshake.run_job(job.pk)
    # The worker died between storing the registration and reporting the job.
    PartnerJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, started_at=started(DEAD), message="", finished_at=None
    )

    assert handshake.fail_dead_jobs() == 1

    job = fresh(job)
    assert job.state == JobState.SUCCEEDED
    assert "It had stored the registration" in job.message
    partner = Partner.objects.get(pk=job.partner_id)
    assert partner.state == PartnerState.REGISTERED
    assert partner.inbound_tokens.active().count() == 1
    assert len(events("job_lost")) == 1


@pytest.mark.django_db
def test_a_dead_rotation_fails_and_frees_the_partner(fake_partner, registered):
    job = handshake.request_job(registered.partner, JobKind.ROTATE)
    PartnerJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, started_at=started(DEAD))
    Partner.objects.filter(pk=registered.partner.pk).update(busy_since=started(DEAD))

    assert handshake.fail_dead_jobs() == 1

    assert fresh(job).state == JobState.FAILED
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert partner.state == PartnerState.REGISTERED
    assert partner.busy_since is None
    assert partner.events.filter(kind="rotate_failed").count() == 1
    assert tokens.find_active(registered.inbound_token) is not None


@pytest.mark.django_db
def test_a_job_failed_as_lost_while_it_still_ran_does_not_register(fake_partner):
    """A run going on past its time limit (no hard limit in that pool) and failed as lost
    meanwhile: it stores nothing, revokes its token and tells the partner."""
    job = handshake.connect_partner(
        name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
    )
    original = fake_partner.handler

    def swept_during_the_post(request):
        if request.method == "POST":
            PartnerJob.objects.filter(pk=job.pk).update(started_at=started(DEAD))
            assert handshake.fail_dead_jobs() == 1
        return original(request)

    with use_transport(httpx.MockTransport(swept_during_the_post)):
        handshake.run_job(job.pk)

    job = fresh(job)
    assert job.state == JobState.FAILED
    assert "The worker running this job was lost" in job.message  # the sweep's, kept
    partner = Partner.objects.get(pk=job.partner_id)
    assert partner.state == PartnerState.FAILED
    assert not partner.roles.exists()
    assert not partner.inbound_tokens.active().exists()
    assert [r.method for r in fake_partner.requests].count("DELETE") == 1


@pytest.mark.django_db
def test_the_beat_schedule_runs_the_sweep(fake_partner):
    entry = settings.CELERY_BEAT_SCHEDULE["partner-job-sweep"]
    assert entry["task"] == tasks.fail_dead_partner_jobs.name
    assert float(entry["schedule"]) <= 60
    job = lost_connect(fake_partner, seconds_ago=DEAD)

    assert tasks.fail_dead_partner_jobs() == 1
    assert_failed_as_lost(job)


def test_the_dead_window_is_longer_than_the_tasks_hard_time_limit():
    assert tasks.run_partner_job.time_limit == handshake.JOB_TIME_LIMIT
    assert tasks.run_partner_job.soft_time_limit == handshake.JOB_SOFT_TIME_LIMIT
    assert handshake.JOB_DEAD_AFTER.total_seconds() > handshake.JOB_TIME_LIMIT


# --- real concurrent transactions ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_finishing_while_the_sweep_waits_is_left_alone(fake_partner):
    """The job is past the window (a slow clock, a pool without hard limits) but alive: it
    stores its outcome holding the partner row; the sweep, queued on that row, re-reads the
    job after the wait and leaves it and the partner as the job left them."""
    job = lost_connect(fake_partner, seconds_ago=DEAD)

    def the_job_finishes() -> None:
        Partner.objects.select_for_update().get(pk=job.partner_id)
        Partner.objects.filter(pk=job.partner_id).update(state=PartnerState.REGISTERED)
        PartnerJob.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED, message="done")

    [swept] = race(handshake.fail_dead_jobs, hold=the_job_finishes)

    assert swept == 0
    job = fresh(job)
    assert (job.state, job.message) == (JobState.SUCCEEDED, "done")
    partner = Partner.objects.get(pk=job.partner_id)
    assert partner.state == PartnerState.REGISTERED
    assert partner.inbound_tokens.active().count() == 1
    assert events("registration_failed") == []


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_fail_the_job_once(fake_partner):
    job = lost_connect(fake_partner, seconds_ago=DEAD)

    def hold_the_partner() -> None:
        Partner.objects.select_for_update().get(pk=job.partner_id)

    results = race(handshake.fail_dead_jobs, handshake.fail_dead_jobs, hold=hold_the_partner)

    assert sorted(results) == [0, 1]
    assert_failed_as_lost(job)
