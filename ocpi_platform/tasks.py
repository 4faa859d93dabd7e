"""Celery tasks of the project level (housekeeping across the apps)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import housekeeping


@shared_task(acks_late=True, soft_time_limit=300, time_limit=360)
def prune_done_rows() -> dict[str, Any]:
    """Beat: delete deliveries, partner events, status changes and jobs that are done and
    older than OCPI_RETENTION_DAYS, in batches (idempotent)."""
    return housekeeping.prune_once().as_dict()
