"""Celery tasks of the outbox: thin adapters, safe to run twice (the drain takes a lease)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def deliver(*, partner_id: int) -> int:
    """Send the partner's pending deliveries, oldest first."""
    return services.drain(partner_id)


@shared_task(acks_late=True)
def sweep() -> int:
    """Beat: wake drains for due rows (backoff over, lost worker)."""
    return services.sweep()
