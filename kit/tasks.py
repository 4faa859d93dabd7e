"""Celery tasks of the declared modules: thin adapters taking ids, safe to run twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from credentials.liveness import came_back

from .spec import ModuleSpec, spec_of

# Give a partner that just registered time to store our credentials before we call it.
AFTER_REGISTRATION = 3
# Below the broker's visibility timeout (Redis: 3600 s), like locations' pull.
PULL_SOFT_TIME_LIMIT = 3000


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def push_all(*, module: str, partner_id: int) -> int:
    """Queue a PUT of each of our objects of ``module`` for the partner (outbox folds them)."""
    from . import push

    return push.full_resend(spec_of(module), [partner_id])


@shared_task(acks_late=True, soft_time_limit=PULL_SOFT_TIME_LIMIT, time_limit=3060)
def pull(*, module: str, partner_id: int, full: bool = False) -> str:
    """Fetch the partner's objects of ``module`` (all pages) and store them (``kit.sync``)."""
    from . import sync

    puller = sync.puller_of(module)
    try:
        return sync.pull(puller, partner_id, full=full).message
    except sync.SyncUnavailable as exc:
        return str(exc)
    except SoftTimeLimitExceeded:
        return sync.stop(
            puller, partner_id, f"The pull was stopped after {PULL_SOFT_TIME_LIMIT} s (time limit)."
        )


def registered_receiver(spec: ModuleSpec) -> Callable[..., None]:
    """A new connection: send it our objects, and fetch its own."""
    module = spec.identifier.value

    def on_partner_registered(sender: Any, *, partner_id: int, **kwargs: Any) -> None:
        from . import push, sync

        if spec.we_send() and push.targets(spec, [partner_id]):
            push_all.apply_async(
                kwargs={"module": module, "partner_id": partner_id}, countdown=AFTER_REGISTRATION
            )
        puller = sync.puller_of(module)
        if spec.pull and sync.can_pull(puller, partner_id):
            sync.request_pull(puller, partner_id, full=True, countdown=AFTER_REGISTRATION)

    return on_partner_registered


def status_receiver(spec: ModuleSpec) -> Callable[..., None]:
    """Back from OFFLINE or SUSPENDED: send it the current state of our objects, once."""
    module = spec.identifier.value

    def on_status_changed(sender: Any, *, partner: Any, old: str, new: str, **kwargs: Any) -> None:
        from . import push

        if came_back(old, new) and spec.we_send() and push.targets(spec, [partner.pk]):
            partner_id = partner.pk

            def enqueue_push_all() -> None:
                push_all.delay(module=module, partner_id=partner_id)

            transaction.on_commit(enqueue_push_all, robust=True)

    return on_status_changed
