"""Runs of the partner doctor asked for in the admin: a ``DoctorRun`` row, run by a worker.

The checks call a live partner for up to a few minutes: never inside a web request. The admin
creates the row and queues ``journal.tasks.run_doctor`` after commit; the task claims the row
(PENDING to RUNNING, by a conditional update), so a message delivered twice runs it once. The
checks found so far are stored after each one: the page shows the progress, and what was found
before a time limit stopped the run. ``manage.py ocpi_doctor`` still runs the checks directly.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from credentials.models import Partner
from ocpi_platform.ocpi.types import now_utc

from . import doctor
from .models import DoctorRun, RunState

# About 20 GETs, each bounded by the connect (5 s) and the doctor's read timeout (10 s).
SOFT_TIME_LIMIT = 330
TIME_LIMIT = 360
# A RUNNING run this long after its start outlived its task's hard limit: its worker died.
RUNNING_LOST_AFTER = timedelta(seconds=TIME_LIMIT + 30)
# A run still PENDING this long after it was asked for: no worker took it (none running?).
PENDING_LOST_AFTER = timedelta(minutes=30)


def fail_lost_runs(partner_id: int) -> int:
    """Mark the partner's runs that will never finish as failed; returns how many."""
    now = now_utc()
    active = DoctorRun.objects.filter(partner_id=partner_id)
    lost_running = active.filter(
        state=RunState.RUNNING, started_at__lt=now - RUNNING_LOST_AFTER
    ).update(
        state=RunState.FAILED,
        finished_at=now,
        problem=f"The worker running it stopped (no result after {TIME_LIMIT} s).",
    )
    lost_pending = active.filter(
        state=RunState.PENDING, requested_at__lt=now - PENDING_LOST_AFTER
    ).update(
        state=RunState.FAILED,
        finished_at=now,
        problem="No worker took the run: is a Celery worker running?",
    )
    return lost_running + lost_pending


def request_run(partner: Partner, *, by: str) -> tuple[DoctorRun, bool]:
    """Queue a doctor run for ``partner``; (run, True), or (the run under way, False).

    Raises ``doctor.NotDiagnosable`` when the partner cannot be examined. One run at a time
    per partner: the partner row is locked while looking for one under way.
    """
    from .tasks import run_doctor

    doctor.check_diagnosable(partner)
    with transaction.atomic():
        Partner.objects.select_for_update().filter(pk=partner.pk).first()
        fail_lost_runs(partner.pk)
        active = DoctorRun.objects.filter(
            partner=partner, state__in=(RunState.PENDING, RunState.RUNNING)
        ).first()
        if active is not None:
            return active, False
        run = DoctorRun.objects.create(
            partner=partner,
            requested_by=by,
            requested_at=now_utc(),
            versions_url=partner.versions_url,
        )
        transaction.on_commit(lambda: run_doctor.delay(run_id=run.pk))
    return run, True


def _store(run_id: int, report: doctor.Report) -> None:
    DoctorRun.objects.filter(pk=run_id).update(
        checks=[asdict(c) for c in report.checks], versions_url=report.versions_url
    )


def execute(run_id: int) -> DoctorRun | None:
    """Run one queued doctor run (the task's body); None when it was not PENDING (it ran, or
    runs, elsewhere; or it was failed as lost)."""
    claimed = DoctorRun.objects.filter(pk=run_id, state=RunState.PENDING).update(
        state=RunState.RUNNING, started_at=now_utc()
    )
    if claimed != 1:
        return None
    run = DoctorRun.objects.select_related("partner").get(pk=run_id)
    state, verdict, problem = RunState.FAILED, "", ""
    report: doctor.Report | None = None
    try:
        report = doctor.diagnose(run.partner, progress=lambda r: _store(run_id, r))
    except doctor.NotDiagnosable as exc:
        problem = str(exc)
    except SoftTimeLimitExceeded:
        problem = f"The run ran out of time ({SOFT_TIME_LIMIT} s); the checks until then are kept."
    except Exception as exc:
        problem = f"The doctor stopped on an unexpected error ({type(exc).__name__})."
        _finish(run_id, state, verdict, problem)
        raise
    else:
        state, verdict = RunState.DONE, report.verdict.value
        _store(run_id, report)
    _finish(run_id, state, verdict, problem)
    run.refresh_from_db()
    return run


def _finish(run_id: int, state: RunState, verdict: str, problem: str) -> None:
    DoctorRun.objects.filter(pk=run_id).update(
        state=state, verdict=verdict, problem=problem, finished_at=now_utc()
    )
