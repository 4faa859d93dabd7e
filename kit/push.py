"""Push our own objects of a module to partners: outbox rows in the change's transaction.

Receivers are the reachable partners (registered, CONNECTED) that list the module's RECEIVER
endpoint; the OCPI-to-* headers name the partner's party of the first receiving role it holds.
A new or replaced object is PUT, a change of only the ``push_patch_fields`` is PATCHed, a
removal is DELETEd when the module declares ``push_delete``. The outbox folds a burst of
changes of one object into one message carrying the newest state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from credentials.models import Partner, PartnerRole
from ocpi_platform.ocpi.parties import Party
from ocpi_platform.ocpi.types import InterfaceRole, Role
from outbox.services import CurrentState, Message, Target, enqueue

from .models import OcpiObject
from .spec import ModuleSpec, ObjectKey


def targets_for(
    module: str, receiving_roles: Sequence[Role], partner_ids: list[int] | None = None
) -> list[Target]:
    """Reachable partners with a ``module`` RECEIVER endpoint, with the party that receives
    (the first of ``receiving_roles`` the partner holds)."""
    partners = Partner.objects.reachable().filter(
        endpoints__identifier=module, endpoints__role=InterfaceRole.RECEIVER
    )
    if partner_ids is not None:
        partners = partners.filter(pk__in=partner_ids)
    ids = list(partners.values_list("pk", flat=True).distinct())
    receivers: dict[int, Party] = {}
    rank = {Role(role).value: index for index, role in enumerate(receiving_roles)}
    roles = PartnerRole.objects.filter(partner_id__in=ids, role__in=list(rank))
    for row in sorted(roles, key=lambda r: (rank[r.role], r.pk)):
        receivers.setdefault(row.partner_id, Party(row.country_code, row.party_id, Role(row.role)))
    return [Target(pid, receivers.get(pid)) for pid in sorted(ids)]


def targets(spec: ModuleSpec, partner_ids: list[int] | None = None) -> list[Target]:
    return targets_for(spec.identifier.value, spec.receiving_roles, partner_ids)


def key_of(obj: OcpiObject) -> ObjectKey:
    return ObjectKey(obj.country_code, obj.party_id, obj.object_id, obj.object_type)


def _send(
    spec: ModuleSpec,
    obj: OcpiObject,
    method: str,
    body: dict[str, Any],
    doc: dict[str, Any] | None,
    to: list[Target] | None = None,
) -> int:
    if obj.partner_id is not None:
        return 0
    key = key_of(obj)
    tree = {key.key: doc} if doc is not None else {}
    sender = Party(obj.country_code.upper(), obj.party_id.upper(), spec.owner)
    message = Message(spec.identifier.value, key.key, key.path, method, body, tree, sender)
    return enqueue(message, targets(spec) if to is None else to)


def put(
    spec: ModuleSpec, obj: OcpiObject, doc: dict[str, Any], to: list[Target] | None = None
) -> int:
    return _send(spec, obj, "PUT", doc, doc, to)


def patch(spec: ModuleSpec, obj: OcpiObject, doc: dict[str, Any], body: dict[str, Any]) -> int:
    return _send(spec, obj, "PATCH", body, doc)


def delete(spec: ModuleSpec, obj: OcpiObject) -> int:
    if not spec.push_delete:
        return 0
    return _send(spec, obj, "DELETE", {}, None)


def current_state_of(spec: ModuleSpec) -> CurrentState:
    """The outbox's hook: the current document of our object ``key``, or None (gone)."""

    def current(key: str) -> dict[str, Any] | None:
        k = ObjectKey.from_key(key)
        found = spec.model.objects.ours().ci(*k.upper()).only("ocpi_json").first()
        if found is None or not found.ocpi_json:
            return None
        doc: dict[str, Any] = json.loads(found.ocpi_json)
        return doc

    return current


def full_resend(spec: ModuleSpec, partner_ids: list[int], *, batch: int = 500) -> int:
    """Queue a PUT of each of our objects for these partners (after registration, recovery);
    pending rows of an object fold into its PUT."""
    to = targets(spec, partner_ids)
    if not to:
        return 0
    count = 0
    ids = list(spec.model.objects.ours().order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), batch):
        with transaction.atomic():
            for obj in spec.model.objects.filter(pk__in=ids[start : start + batch]):
                if obj.ocpi_json:
                    count += put(spec, obj, json.loads(obj.ocpi_json), to)
    return count
