"""Housekeeping: what is done and older than OCPI_RETENTION_DAYS is pruned in batches; what
still matters (FAILED and open deliveries, the newest status change of each partner, pending
and running jobs, anything recent) stays."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from credentials.models import JobState, PartnerEvent, PartnerJob, StatusChange
from ocpi_platform import housekeeping
from ocpi_platform import tasks as platform_tasks
from ocpi_platform.ocpi.types import now_utc
from outbox.models import Delivery, DeliveryState
from tests.conftest import make_registered

pytestmark = pytest.mark.django_db

OLD = timedelta(days=31)
RECENT = timedelta(days=29)


@pytest.fixture(autouse=True)
def _file_lock(settings, tmp_path):
    settings.OCPI_LOCK_URL = ""
    settings.DATA_DIR = tmp_path
    settings.OCPI_RETENTION_DAYS = 30


def delivery(partner, state, age, key="K"):
    moment = now_utc() - age
    return Delivery.objects.create(
        partner=partner,
        module="locations",
        key=key,
        path=key,
        method="PUT",
        body={},
        state=state,
        created_at=moment,
        updated_at=moment,
    )


def status_change(partner, age, new="OFFLINE"):
    return StatusChange.objects.create(
        partner=partner,
        created_at=now_utc() - age,
        old_status="CONNECTED",
        new_status=new,
        reason="test",
    )


def job(partner, state, age):
    moment = now_utc() - age
    return PartnerJob.objects.create(
        partner=partner,
        kind="REFRESH",
        state=state,
        created_at=moment,
        started_at=moment if state != JobState.PENDING else None,
        finished_at=moment if state in (JobState.SUCCEEDED, JobState.FAILED) else None,
    )


@pytest.fixture
def data():
    """Known rows: each kind, old and recent, done and not."""
    a = make_registered("a").partner
    b = make_registered("b", country_code="FR", party_id="BBB").partner
    keep = {
        delivery(a, DeliveryState.FAILED, OLD),  # until handled
        delivery(a, DeliveryState.PENDING, OLD),
        delivery(a, DeliveryState.SENDING, OLD),
        delivery(a, DeliveryState.SENT, RECENT),
        delivery(b, DeliveryState.CANCELLED, RECENT),
    }
    gone = {
        delivery(a, DeliveryState.SENT, OLD),
        delivery(b, DeliveryState.CANCELLED, OLD),
    }
    events_keep = {PartnerEvent.objects.create(partner=a, kind="k", message="recent")}
    events_gone = {
        PartnerEvent.objects.create(partner=a, kind="k", message="old", created_at=now_utc() - OLD),
        PartnerEvent.objects.create(partner=b, kind="k", message="old", created_at=now_utc() - OLD),
    }
    # a: two old changes and a recent one -> both old ones go. b: two old -> its newest stays.
    changes_gone = {status_change(a, OLD + timedelta(days=2)), status_change(a, OLD)}
    changes_keep = {status_change(a, RECENT, "CONNECTED"), status_change(b, OLD, "CONNECTED")}
    changes_gone.add(status_change(b, OLD + timedelta(days=1)))
    jobs_keep = {
        job(a, JobState.PENDING, OLD),
        job(a, JobState.RUNNING, OLD),
        job(a, JobState.SUCCEEDED, RECENT),
    }
    jobs_gone = {job(a, JobState.SUCCEEDED, OLD), job(b, JobState.FAILED, OLD)}
    return {
        "keep": (keep, events_keep, changes_keep, jobs_keep),
        "gone": (gone, events_gone, changes_gone, jobs_gone),
    }


def ids(rows):
    return {r.pk for r in rows}


def remaining():
    return (
        set(Delivery.objects.values_list("pk", flat=True)),
        set(PartnerEvent.objects.values_list("pk", flat=True)),
        set(StatusChange.objects.values_list("pk", flat=True)),
        set(PartnerJob.objects.values_list("pk", flat=True)),
    )


def test_prune_deletes_what_is_done_and_old_and_keeps_the_rest(data):
    report = housekeeping.prune()

    assert remaining() == tuple(ids(rows) for rows in data["keep"])
    assert report.counts == {
        "deliveries": 2,
        "partner_events": 2,
        "status_changes": 3,
        "partner_jobs": 2,
        "journal_entries": 0,
    }
    assert report.more == []
    assert housekeeping.prune().counts == dict.fromkeys(report.counts, 0)  # idempotent


def test_a_dry_run_counts_and_deletes_nothing(data):
    before = remaining()

    report = housekeeping.prune(dry_run=True)

    assert remaining() == before
    assert report.counts == {
        "deliveries": 2,
        "partner_events": 2,
        "status_changes": 3,
        "partner_jobs": 2,
        "journal_entries": 0,
    }


def test_the_retention_is_a_setting(data, settings):
    settings.OCPI_RETENTION_DAYS = 40

    assert housekeeping.prune().counts == dict.fromkeys(housekeeping.KINDS, 0)


def test_deletes_go_in_batches_bounded_per_run(db):
    partner = make_registered().partner
    for n in range(7):
        delivery(partner, DeliveryState.SENT, OLD, key=f"K{n}")

    with CaptureQueriesContext(connection) as queries:
        report = housekeeping.prune(batch=3, max_batches=2)

    deletes = [q for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "outbox')]
    assert len(deletes) == 2
    assert report.counts["deliveries"] == 6
    assert report.more == ["deliveries"]
    assert Delivery.objects.count() == 1

    assert housekeeping.prune(batch=3, max_batches=2).counts["deliveries"] == 1


def test_the_beat_task_prunes_and_is_scheduled(data):
    result = platform_tasks.prune_done_rows()

    assert result["counts"]["deliveries"] == 2
    assert remaining() == tuple(ids(rows) for rows in data["keep"])
    entry = settings.CELERY_BEAT_SCHEDULE["housekeeping-prune"]
    assert entry["task"] == "ocpi_platform.tasks.prune_done_rows"
    assert entry["options"]["expires"] < entry["schedule"]


def test_the_task_skips_while_another_run_holds_the_lock(data):
    from ocpi_platform.locks import single_run

    with single_run(housekeeping.LOCK, ttl=60) as held:
        assert held is not None
        result = platform_tasks.prune_done_rows()

    assert result["skipped"] is True
    assert Delivery.objects.count() == 7


def test_the_command_with_dry_run_and_json(data):
    out = io.StringIO()
    call_command("ocpi_prune", "--dry-run", "--json", stdout=out)
    report = json.loads(out.getvalue())

    assert report["dry_run"] is True
    assert report["counts"]["status_changes"] == 3
    assert Delivery.objects.count() == 7

    out = io.StringIO()
    call_command("ocpi_prune", stdout=out)
    assert "Deleted 2 deliveries" in out.getvalue()
    assert Delivery.objects.count() == 5
