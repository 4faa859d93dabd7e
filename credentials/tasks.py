"""Celery tasks of the credentials module: thin adapters around ``handshake``."""

from __future__ import annotations

from celery import shared_task

from . import handshake


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def run_partner_job(*, job_id: int) -> None:
    """Connect, rotate, unregister or refresh one partner. Claimed first: safe to run twice."""
    handshake.run_job(job_id)
