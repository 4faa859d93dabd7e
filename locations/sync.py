"""Pull a partner's locations from its sender interface: the kit's pull (``kit.sync``, which
says how: paging, date_from, waits, the deletion of copies no longer listed) with locations'
own storing (``services.put`` of the location) and task.

The state is the ``ModuleSync`` row of (partner, "locations"), also seen as ``LocationSync``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from credentials.models import Partner
from kit import sync as kit_sync
from kit.models import ModuleSync
from kit.spec import ObjectKey
from kit.sync import MAX_CHECKS, MAX_WAITS, STALE, Progress, SyncUnavailable
from ocpi_platform.ocpi.types import Role

from . import services
from .apps import RECEIVING_ROLES
from .models import Location
from .paths import ObjectPath

__all__ = [
    "MAX_CHECKS",
    "MAX_WAITS",
    "STALE",
    "SyncUnavailable",
    "can_pull",
    "cannot_pull",
    "pull",
    "request_pull",
    "stop",
]

MODULE = "locations"


def _store(owner: int, key: ObjectKey, item: Any) -> None:
    services.put(ObjectPath(key.country_code, key.party_id, key.object_id), item, owner=owner)


def _store_page(owner: int, items: list[tuple[ObjectKey, Any]]) -> list[Any]:
    from .bulk import put_page

    return put_page(owner, items)


def _send(partner_id: int, full: bool, countdown: float) -> None:
    from .tasks import pull_locations

    transaction.on_commit(
        lambda: pull_locations.apply_async(
            kwargs={"partner_id": partner_id, "full": full}, countdown=countdown
        )
    )


PULLER = kit_sync.Puller(
    module=MODULE,
    noun="locations",
    owner=Role.CPO,
    receiving_roles=RECEIVING_ROLES,
    model=Location,
    id_column="location_id",
    store=_store,
    store_page=_store_page,
    send=_send,
)
kit_sync.register(PULLER)


def can_pull(partner_id: int) -> bool:
    return kit_sync.can_pull(PULLER, partner_id)


def cannot_pull(partner: Partner) -> str | None:
    return kit_sync.cannot_pull(PULLER, partner)


def request_pull(partner_id: int, *, full: bool = False, countdown: float = 0) -> None:
    kit_sync.request_pull(PULLER, partner_id, full=full, countdown=countdown)


def pull(partner_id: int, *, full: bool = False, progress: Progress | None = None) -> ModuleSync:
    return kit_sync.pull(PULLER, partner_id, full=full, progress=progress)


def stop(partner_id: int, reason: str) -> str:
    return kit_sync.stop(PULLER, partner_id, reason)
