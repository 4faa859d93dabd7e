"""Push our own locations to partners (we are the CPO): outbox rows in the change's transaction.

Receivers are the registered partners that list a locations RECEIVER endpoint. A new or
replaced object is PUT, a small change (an EVSE status, say) is PATCHed; the outbox folds a burst
of changes of one object into one message carrying the newest state.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from kit.push import targets_for
from ocpi_platform.ocpi.parties import Party
from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.types import Role
from outbox.services import Message, Target, enqueue

from .apps import RECEIVING_ROLES as RECEIVING
from .models import Location
from .paths import ObjectPath, select

MODULE = ModuleId.LOCATIONS
# In order of preference for the OCPI-to-* headers.
RECEIVING_ROLES = tuple(Role(r) for r in RECEIVING)


def targets(partner_ids: list[int] | None = None) -> list[Target]:
    """Reachable partners (registered, CONNECTED) with a locations RECEIVER endpoint, with the
    party that receives."""
    return targets_for(MODULE, RECEIVING_ROLES, partner_ids)


def _path(location: Location) -> ObjectPath:
    return ObjectPath(location.country_code, location.party_id, location.location_id)


def _message(
    location: Location, doc: dict[str, Any], path: ObjectPath, method: str, body: dict[str, Any]
) -> Message:
    tree = {p.key: found for p in path.lineage() if (found := select(doc, p)) is not None}
    sender = Party(location.country_code.upper(), location.party_id.upper(), Role.CPO)
    return Message(MODULE, path.key, path.path, method, body, tree, sender)


def _send(location: Location, message: Message, to: list[Target] | None = None) -> int:
    if location.partner_id is not None or not location.shared:
        return 0
    return enqueue(message, targets() if to is None else to)


def location_put(location: Location, doc: dict[str, Any], to: list[Target] | None = None) -> int:
    path = _path(location)
    return _send(location, _message(location, doc, path, "PUT", doc), to)


def object_put(location: Location, doc: dict[str, Any], path: ObjectPath) -> int:
    body = select(doc, path)
    if body is None:
        return location_put(location, doc)
    return _send(location, _message(location, doc, path, "PUT", body))


def object_patch(
    location: Location, doc: dict[str, Any], path: ObjectPath, body: dict[str, Any]
) -> int:
    return _send(location, _message(location, doc, path, "PATCH", body))


def current_body(key: str) -> dict[str, Any] | None:
    """The current document of our shared object ``key`` (outbox retry), or None."""
    path = ObjectPath.from_key(key)
    location = Location.objects.shared().ci(path.country_code, path.party_id, path.location_id)
    found = location.only("ocpi_json").first()
    if found is None or not found.ocpi_json:
        return None
    return select(json.loads(found.ocpi_json), path)


def full_resend(partner_ids: list[int], *, batch: int = 500) -> int:
    """Queue a PUT of every shared location for these partners (after registration, recovery).

    Pending rows of a location fold into its PUT, so a partner that comes back gets the current
    state of each location once rather than every change it missed.
    """
    to = targets(partner_ids)
    if not to:
        return 0
    count = 0
    ids = list(Location.objects.shared().order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), batch):
        with transaction.atomic():
            for location in Location.objects.filter(pk__in=ids[start : start + batch]):
                if location.ocpi_json:
                    count += location_put(location, json.loads(location.ocpi_json), to)
    return count
