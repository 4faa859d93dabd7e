"""The rules of a declared module's objects: one write path for our data and partners' copies.

- ``put``/``patch``/``delete`` with ``owner`` = a partner's id apply a partner's copy: the body
  must name the URL's object, the newest ``last_updated`` wins under the row's lock (an older
  write is answered as not applied and changes nothing), a creation race is retried under a
  savepoint so that the loser compares with the winner's row;
- with ``owner`` = None they change our own data: ``last_updated`` becomes now (an import may
  keep the file's), the party must be one of ours with the module's owner role, and the
  outbox rows for the partners are written in the same transaction.
Every write stores the rendered JSON, from which reads are served.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from ocpi_platform.db.bulk import update_rows
from ocpi_platform.ocpi.envelope import describe_validation_errors
from ocpi_platform.ocpi.errors import InvalidParameters, OcpiError, UnknownObject
from ocpi_platform.ocpi.fields import as_json
from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.parties import Party, our_parties
from ocpi_platform.ocpi.types import now_utc

from . import push
from .models import OcpiObject
from .spec import ModuleSpec, ObjectKey

Owner = int | None  # a partner's id, or None for our own data


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Outcome:
    created: bool
    stale: bool
    obj: OcpiObject | None

    @property
    def message(self) -> str:
        return outcome_message(created=self.created, stale=self.stale)


def outcome_message(*, created: bool, stale: bool) -> str:
    """The receiver's status_message for a write (every module answers alike)."""
    if stale:
        return "Not applied: we hold a newer version (last_updated) of this object."
    return "Created." if created else "Updated."


# --- reading -------------------------------------------------------------------------------


def document(obj: OcpiObject) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(obj.ocpi_json)
    return data


def list_page(
    spec: ModuleSpec, page: PageRequest, party: tuple[str, str] | None = None
) -> tuple[int, list[str]]:
    """Our objects in creation order (only ``party``'s when given, upper case): the total and
    the page's rendered JSON, in two queries."""
    return page_of(spec.model.objects.ours().exclude(ocpi_json=""), page, party)


def page_of(
    qs: QuerySet[Any], page: PageRequest, party: tuple[str, str] | None = None
) -> tuple[int, list[str]]:
    """A list page of the stored documents of ``qs`` (rows with ``cc_upper``, ``pid_upper``,
    ``last_updated``, ``ocpi_json``): the total and the page's JSON texts, in two queries."""
    if party is not None:
        qs = qs.filter(cc_upper=party[0], pid_upper=party[1])
    if page.date_from is not None:
        qs = qs.filter(last_updated__gte=page.date_from)
    if page.date_to is not None:
        qs = qs.filter(last_updated__lt=page.date_to)
    total = qs.count()
    if page.offset >= total:
        return total, []
    window = qs.order_by("id").values_list("ocpi_json", flat=True)
    return total, list(window[page.offset : page.offset + page.limit])


def sender_object(spec: ModuleSpec, key: ObjectKey, *, party: Party | None) -> dict[str, Any]:
    """One of our objects (sender GET): by its id (and type), in ``party`` when addressed."""
    qs = spec.model.objects.ours().filter(
        id_upper=key.object_id.upper(), object_type=key.object_type
    )
    if party is not None:
        qs = qs.filter(cc_upper=party.country_code, pid_upper=party.party_id)
    found = qs.exclude(ocpi_json="").order_by("id").first()
    if found is None:
        raise UnknownObject(f"Unknown {spec.name} {key.object_id}.")
    return document(found)


def get_object(spec: ModuleSpec, key: ObjectKey, *, owner: Owner) -> dict[str, Any]:
    found = _find(spec, key, owner)
    if found is None or not found.ocpi_json:
        raise UnknownObject(f"Unknown {spec.name} {key}.")
    return document(found)


def unknown_ids(module: str, ids: Iterable[str], *, owner: Owner) -> list[str]:
    """Those of ``ids`` that name no object of ``module`` of ``owner`` (ours: None), sorted;
    none when the module is not declared (a reference across modules is never refused)."""
    from .spec import declared

    wanted = {i.upper(): i for i in ids}
    spec = next((s for s in declared() if s.identifier == module), None)
    if spec is None or not wanted:
        return []
    held = set(
        spec.model.objects.of(owner)
        .filter(id_upper__in=list(wanted))
        .values_list("id_upper", flat=True)
    )
    return sorted(v for k, v in wanted.items() if k not in held)


def _find(spec: ModuleSpec, key: ObjectKey, owner: Owner, *, lock: bool = False) -> Any:
    qs = spec.model.objects.of(owner).ci(*key.upper())
    rows = list((qs.select_for_update() if lock else qs).order_by()[:1])
    return rows[0] if rows else None


# --- checking ------------------------------------------------------------------------------


def validate(
    spec: ModuleSpec, data: Any, *, partial: bool, key: ObjectKey | None
) -> dict[str, Any]:
    """The module's validation; errors become 2001 naming the field."""
    try:
        return spec.validate(data, partial=partial, key=key)
    except ValidationError as exc:
        lines = describe_validation_errors(exc.detail)
        raise InvalidParameters(f"Invalid {spec.name}: " + "; ".join(lines)) from None


def check_ids(spec: ModuleSpec, key: ObjectKey, data: dict[str, Any]) -> None:
    """The body must name the URL's object (spec: advised 2001 otherwise)."""
    expected = {"country_code": key.country_code, "party_id": key.party_id}
    expected[spec.id_field] = key.object_id
    for name, value in expected.items():
        given = data.get(name)
        if given is not None and str(given).upper() != value.upper():
            raise InvalidParameters(
                f"The body's {name} {given!r} does not match {value!r} in the URL."
            )
    if spec.type_field and data.get(spec.type_field) not in (None, key.object_type):
        raise InvalidParameters(
            f"The body's {spec.type_field} {data[spec.type_field]!r} does not match "
            f"{key.object_type!r} in the URL."
        )


def check_own_party(spec: ModuleSpec, key: ObjectKey) -> None:
    ours = [p for p in our_parties() if p.role == spec.owner]
    if any(
        p.country_code == key.country_code.upper() and p.party_id == key.party_id.upper()
        for p in ours
    ):
        return
    names = ", ".join(f"{p.country_code}/{p.party_id}" for p in ours)
    raise InvalidParameters(
        f"{key.country_code}/{key.party_id} is not one of our {spec.owner} parties "
        f"({names or 'none'})."
    )


def _newer(stored: datetime, incoming: datetime | None) -> bool:
    return incoming is not None and stored > incoming


# --- writing -------------------------------------------------------------------------------


class _Taken(Exception):
    """Created by another transaction between our look-up and our insert."""


def put(
    spec: ModuleSpec,
    key: ObjectKey,
    data: Any,
    *,
    owner: Owner,
    keep_timestamp: bool = False,
) -> Outcome:
    """Create or replace the object ``key`` with the full object ``data``."""
    validated = validate(spec, data, partial=False, key=key)
    check_ids(spec, key, validated)
    if owner is None:
        check_own_party(spec, key)
    with transaction.atomic():
        try:
            return _put(spec, key, validated, owner, keep_timestamp, retry=True)
        except _Taken:
            # The other PUT has committed (the unique index made our insert wait): compare.
            return _put(spec, key, validated, owner, keep_timestamp, retry=False)


def _put(
    spec: ModuleSpec,
    key: ObjectKey,
    validated: dict[str, Any],
    owner: Owner,
    keep_timestamp: bool,
    *,
    retry: bool,
) -> Outcome:
    obj = _find(spec, key, owner, lock=True)
    stamp = validated.get(spec.last_updated)
    if obj is not None and owner is not None and _newer(obj.last_updated, stamp):
        return Outcome(False, True, obj)
    created = obj is None
    if obj is None:
        if spec.model.objects.ci(*key.upper()).exists():
            if retry:  # created by a PUT that committed after our look-up: look again
                raise _Taken
            raise InvalidParameters(f"The {spec.name} {key} belongs to another owner.")
        obj = spec.model(partner_id=owner)
    if owner is None and not (keep_timestamp and created and stamp is not None):
        stamp = now_utc()  # ours: now, but an imported new object may keep the file's
    validated[spec.last_updated] = stamp
    _assign(spec, obj, key, validated)
    if created:
        _insert(obj, retry)
    else:
        obj.save()
    if owner is None:
        push.put(spec, obj, document(obj))
    return Outcome(created, False, obj)


def _assign(spec: ModuleSpec, obj: OcpiObject, key: ObjectKey, validated: dict[str, Any]) -> None:
    obj.country_code = str(validated.get("country_code") or key.country_code)
    obj.party_id = str(validated.get("party_id") or key.party_id)
    obj.object_id = str(validated.get(spec.id_field) or key.object_id)
    obj.object_type = key.object_type
    obj.last_updated = validated[spec.last_updated]
    obj.ocpi_json = dumps(spec.render(validated))
    obj.assign(validated)


def _insert(obj: OcpiObject, retry: bool) -> None:
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        if not retry:
            raise
        raise _Taken from None


# --- a page of a partner's objects at once (the pull) ----------------------------------------

PageItem = tuple[ObjectKey, Any]
# A page's objects to write at once: upper-case key -> (position in the page, key, validated).
Ready = dict[tuple[str, str, str, str], tuple[int, ObjectKey, dict[str, Any]]]


def store_page(
    items: Sequence[PageItem],
    *,
    check: Callable[[ObjectKey, Any], dict[str, Any]],
    write: Callable[[Ready, list[OcpiError | None]], None],
    put_one: Callable[[ObjectKey, Any], object],
) -> list[OcpiError | None]:
    """Store a page of a partner's objects (the pull) in one transaction: ``check`` validates
    one object (OcpiError rejects it), ``write`` stores the valid ones at once (recording a
    rejection in ``results``), ``put_one`` stores one as its PUT would. A key met twice in the
    page, and every object of a page whose insert meets a concurrent writer (a push of the same
    object), go through ``put_one``, which compares with the winner. Per item: None (stored, or
    older than ours) or the error that rejected it."""
    results: list[OcpiError | None] = [None] * len(items)
    ready: Ready = {}
    one_by_one: list[int] = []
    for index, (key, data) in enumerate(items):
        try:
            validated = check(key, data)
        except OcpiError as exc:
            results[index] = exc
            continue
        if key.upper() in ready:
            one_by_one.append(index)
        else:
            ready[key.upper()] = (index, key, validated)
    with transaction.atomic():
        if ready:
            try:
                with transaction.atomic():
                    write(ready, results)
            except IntegrityError:  # created meanwhile by a push: one by one
                one_by_one.extend(index for index, _, _ in ready.values())
        for index in sorted(one_by_one):
            key, data = items[index]
            try:
                put_one(key, data)
            except OcpiError as exc:
                results[index] = exc
            else:
                results[index] = None
    return results


def put_page(spec: ModuleSpec, items: Sequence[PageItem], *, owner: int) -> list[OcpiError | None]:
    """A page of a partner's objects stored as their PUTs would (``put`` with ``owner``), in a
    few statements whatever the page size (``store_page``): the newest ``last_updated`` wins
    under the rows' locks, an object of another owner is refused, an unchanged one is not
    written again."""

    def check(key: ObjectKey, data: Any) -> dict[str, Any]:
        validated = validate(spec, data, partial=False, key=key)
        check_ids(spec, key, validated)
        return validated

    return store_page(
        items,
        check=check,
        write=lambda ready, results: _write_page(spec, ready, owner, results),
        put_one=lambda key, data: put(spec, key, data, owner=owner),
    )


def _write_page(
    spec: ModuleSpec, ready: Ready, owner: int, results: list[OcpiError | None]
) -> None:
    objects = spec.model.objects
    ids = sorted({upper[2] for upper in ready})
    held = {
        (o.cc_upper, o.pid_upper, o.id_upper, o.object_type): o
        for o in objects.of(owner).filter(id_upper__in=ids).order_by("pk").select_for_update()
    }
    others = set(
        objects.exclude(partner_id=owner)
        .filter(id_upper__in=ids)
        .values_list("cc_upper", "pid_upper", "id_upper", "object_type")
    )
    creates: list[OcpiObject] = []
    updates: list[OcpiObject] = []
    for upper, (index, key, validated) in ready.items():
        obj = held.get(upper)
        if obj is None and upper in others:
            results[index] = InvalidParameters(f"The {spec.name} {key} belongs to another owner.")
            continue
        if obj is not None and _newer(obj.last_updated, validated.get(spec.last_updated)):
            continue  # we hold a newer version: not applied (as a stale PUT)
        before = (obj.ocpi_json, obj.last_updated) if obj is not None else None
        if obj is None:
            obj = spec.model(partner_id=owner)
        _assign(spec, obj, key, validated)
        if before == (obj.ocpi_json, obj.last_updated):
            continue  # the same object again: nothing to write
        obj.prepare()
        (updates if obj.pk else creates).append(obj)
    if updates:
        update_rows(updates, _update_fields(spec))
    if creates:
        objects.bulk_create(creates)


def _update_fields(spec: ModuleSpec) -> list[str]:
    return [
        f.name
        for f in spec.model._meta.concrete_fields
        if not f.primary_key and f.name not in ("partner", "created_at")
    ]


def patch(spec: ModuleSpec, key: ObjectKey, data: Any, *, owner: Owner) -> Outcome:
    """Change the fields of ``data`` of the existing object ``key`` (never creates)."""
    validated = validate(spec, data, partial=True, key=key)
    check_ids(spec, key, validated)
    changed = [name for name in validated if name not in (*spec.key_fields, spec.last_updated)]
    if spec.patchable is not None:
        wrong = sorted(set(changed) - spec.patchable)
        if wrong:
            raise InvalidParameters(
                f"Invalid {spec.name}: {', '.join(wrong)}: cannot be changed by a PATCH "
                f"(only {', '.join(sorted(spec.patchable))})."
            )
    with transaction.atomic():
        obj = _find(spec, key, owner, lock=True)
        if obj is None or not obj.ocpi_json:
            raise UnknownObject(f"Unknown {spec.name} {key}: PUT it first.")
        stamp = validated.get(spec.last_updated) if owner is not None else now_utc()
        if owner is not None and _newer(obj.last_updated, stamp):
            return Outcome(False, True, obj)
        doc = document(obj)
        fields = as_json({name: validated[name] for name in changed})
        for name in changed:
            if validated[name] is None:
                doc.pop(name, None)
            else:
                doc[name] = fields[name]
        doc[spec.last_updated] = as_json({"t": stamp})["t"]
        # The merged object must still be valid as a whole (cross-field rules).
        merged = validate(spec, doc, partial=False, key=key)
        _assign(spec, obj, key, merged)
        obj.save()
        if owner is None:
            current = document(obj)
            if set(changed) <= spec.push_patch_fields:
                body = {name: current.get(name) for name in changed}
                body[spec.last_updated] = current[spec.last_updated]
                push.patch(spec, obj, current, body)
            else:
                push.put(spec, obj, current)
    return Outcome(False, False, obj)


def delete(spec: ModuleSpec, key: ObjectKey, *, owner: Owner) -> Outcome:
    """Remove the object ``key`` (ours: the partners are sent a DELETE where declared)."""
    with transaction.atomic():
        obj = _find(spec, key, owner, lock=True)
        if obj is None:
            raise UnknownObject(f"Unknown {spec.name} {key}.")
        if owner is None:
            push.delete(spec, obj)
        obj.delete()
    return Outcome(False, False, None)


@transaction.atomic
def saved_in_admin(spec: ModuleSpec, obj: OcpiObject, data: dict[str, Any]) -> Outcome:
    """An operator wrote our object in the admin (``data``: the OCPI object): the same rules
    as any other way in (validation, last_updated = now, pushed)."""
    if obj.partner_id is not None:
        raise InvalidParameters(f"A partner's {spec.name} is its own: it is not edited here.")
    key = spec.key_of({**data, spec.id_field: data.get(spec.id_field, obj.object_id)})
    return put(spec, key, data, owner=None)
