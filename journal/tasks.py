"""Celery tasks of the journal: thin adapters around ``doctor_runs``."""

from __future__ import annotations

from celery import shared_task

from . import doctor_runs


@shared_task(
    acks_late=True,
    soft_time_limit=doctor_runs.SOFT_TIME_LIMIT,
    time_limit=doctor_runs.TIME_LIMIT,
)
def run_doctor(*, run_id: int) -> str | None:
    """Run one queued partner doctor run. Claimed first: safe to run twice."""
    run = doctor_runs.execute(run_id)
    return None if run is None else run.state
