"""Celery tasks of the outbox: thin adapters, safe to run twice (the drain takes a lease)."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from . import services


@shared_task(bind=True, acks_late=True, soft_time_limit=600, time_limit=660)
def deliver(self: Task[Any, Any], *, partner_id: int) -> int:
    """Send the partner's pending deliveries, oldest first.

    The drain's lease is named after the task id: when the broker redelivers the task of a
    worker that was killed (acks_late), the new run takes that lease over at once.
    """
    return services.drain(partner_id, owner=self.request.id)


@shared_task(bind=True, acks_late=True, soft_time_limit=600, time_limit=660)
def deliver_many(self: Task[Any, Any], *, partner_ids: list[int]) -> int:
    """``deliver`` for several partners (one task for a group of the partners a change woke: a
    task costs the worker more than an empty drain), their drains run concurrently in this
    process's drain threads (``services.drain_many``). One partner's failure does not keep the
    others from their drain (the sweep wakes it again)."""
    return services.drain_many(partner_ids, owner=str(self.request.id))


@shared_task(acks_late=True)
def sweep() -> int:
    """Beat: wake drains for due rows (backoff over, lost worker)."""
    return services.sweep()
