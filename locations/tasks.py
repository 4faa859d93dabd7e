"""Celery tasks of the locations module: thin adapters, safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from credentials.liveness import came_back

from . import push, sync

# Give a partner that just registered time to store our credentials before we call it.
AFTER_REGISTRATION = 3


# Below the broker's visibility timeout (Redis: 3600 s): a task still running then would be
# delivered a second time (late acks). The system check ocpi.E020 keeps it so.
PULL_SOFT_TIME_LIMIT = 3000


@shared_task(acks_late=True, soft_time_limit=PULL_SOFT_TIME_LIMIT, time_limit=3060)
def pull_locations(*, partner_id: int, full: bool = False) -> str:
    """Fetch the partner's locations (all pages) and store them.

    A partner that asks us to retry later leaves the pull WAITING: ``sync.pull`` has sent this
    task again, to run no earlier than the partner's ``Retry-After``.
    """
    try:
        return sync.pull(partner_id, full=full).message
    except sync.SyncUnavailable as exc:  # the sync row says why; retrying cannot help
        return str(exc)
    except SoftTimeLimitExceeded:
        return sync.stop(
            partner_id, f"The pull was stopped after {PULL_SOFT_TIME_LIMIT} s (time limit)."
        )


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def push_all_locations(*, partner_id: int) -> int:
    """Queue a PUT of each of our shared locations for the partner (outbox folds duplicates)."""
    return push.full_resend([partner_id])


def on_status_changed(sender: Any, *, partner: Any, old: str, new: str, **kwargs: Any) -> None:
    """Back from OFFLINE or SUSPENDED: send it the current state of our locations, once."""
    if came_back(old, new) and push.targets([partner.pk]):
        partner_id = partner.pk

        # robust: a broker that is down must not undo the status change (the sweep and the
        # next return resend). Named: Django logs a robust callback's __qualname__.
        def enqueue_push_all_locations() -> None:
            push_all_locations.delay(partner_id=partner_id)

        transaction.on_commit(enqueue_push_all_locations, robust=True)


def on_partner_registered(sender: Any, *, partner_id: int, **kwargs: Any) -> None:
    """A new connection: send it our locations, and fetch its own."""
    if push.targets([partner_id]):
        push_all_locations.apply_async(
            kwargs={"partner_id": partner_id}, countdown=AFTER_REGISTRATION
        )
    if sync.can_pull(partner_id):
        sync.request_pull(partner_id, full=True, countdown=AFTER_REGISTRATION)
