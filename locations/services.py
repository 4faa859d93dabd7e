"""Business rules of the locations module: one write path for our data and partners' copies.

``put`` and ``patch`` apply an OCPI PUT or PATCH of a location, EVSE or connector:
- for a partner's copy (``owner`` = the partner's id) they keep the partner's ``last_updated``
  and ignore an update older than what we hold (out-of-order delivery never wins);
- for our own data (``owner`` = None) they set ``last_updated`` to now on the object and its
  parents (the spec's cascade) and write the outbox rows for the partners in the same transaction.
Every write also refreshes the location's rendered JSON, from which reads are served.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from rest_framework.exceptions import ValidationError

from kit.services import outcome_message, page_of
from ocpi_platform.db.prepared import prepared_cursor
from ocpi_platform.ocpi.envelope import describe_validation_errors
from ocpi_platform.ocpi.errors import (
    InvalidParameters,
    LocationNotFound,
    UnknownObject,
)
from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.parties import Party, our_parties
from ocpi_platform.ocpi.types import Role, format_datetime, now_utc

from . import push, schema
from .models import Connector, Evse, Location
from .paths import ObjectPath, select
from .render import (
    CONNECTOR_FIELDS,
    EVSE_FIELDS,
    EVSE_ORDER,
    LOCATION_FIELDS,
    assign,
    dumps,
    render_connector,
    render_fields,
    render_location,
)

Owner = int | None  # a partner's id, or None for our own data


@dataclass(frozen=True)
class Outcome:
    created: bool
    stale: bool
    location: Location

    @property
    def message(self) -> str:
        return outcome_message(created=self.created, stale=self.stale)


# --- reading -------------------------------------------------------------------------------


def document(location: Location) -> dict[str, Any]:
    """The location's OCPI JSON as a dict (rendered now if it never was)."""
    if not location.ocpi_json:
        location.ocpi_json = _render(location)
        # Only if still unrendered: a concurrent write's document is never overwritten.
        Location.objects.filter(pk=location.pk, ocpi_json="").update(
            ocpi_json=location.ocpi_json, modified_at=now_utc()
        )
    data: dict[str, Any] = json.loads(location.ocpi_json)
    return data


def list_page(page: PageRequest, party: tuple[str, str] | None = None) -> tuple[int, list[str]]:
    """Our shared locations in creation order (only ``party``'s, (country_code, party_id) upper
    case, when given): the total and the page's rendered JSON.

    Two queries whatever the page size; the page is assembled from stored text.
    """
    return page_of(Location.objects.shared(), page, party)


def sender_object(
    location_id: str, evse_uid: str | None, connector_id: str | None, *, party: Party | None
) -> dict[str, Any]:
    """One of our shared locations, EVSEs or connectors (sender GET: ids without the party)."""
    qs = Location.objects.shared().filter(id_upper=location_id.upper())
    if party is not None:
        qs = qs.filter(cc_upper=party.country_code, pid_upper=party.party_id)
    location = qs.order_by("id").first()
    if location is None:
        raise UnknownObject(f"Unknown location {location_id}.")
    path = ObjectPath(location.country_code, location.party_id, location_id, evse_uid, connector_id)
    found = select(document(location), path)
    if found is None:
        raise UnknownObject(f"Unknown {path.kind} {'/'.join(path.parts[2:])}.")
    return found


def get_object(path: ObjectPath, *, owner: Owner) -> dict[str, Any]:
    location = _location(path, owner)
    if location is None:
        raise UnknownObject(f"Unknown location {path.location}.")
    found = select(document(location), path)
    if found is None:
        raise UnknownObject(f"Unknown {path.kind} {path}.")
    return found


# What a change below the location needs of it (the rest is loaded only if it must be rendered
# again): EVSE status PATCHes are most of the traffic, and the location has many JSON columns.
LIGHT = ("partner_id", "shared", "country_code", "party_id", "location_id", "last_updated",
         "fields_updated", "ocpi_json")  # fmt: skip


def _location(
    path: ObjectPath, owner: Owner, *, lock: bool = False, light: bool = False
) -> Location | None:
    qs = Location.objects.ci(path.country_code, path.party_id, path.location_id)
    qs = qs.filter(partner__isnull=True) if owner is None else qs.filter(partner_id=owner)
    if light:
        qs = qs.only(*LIGHT)
    found = list((qs.select_for_update() if lock else qs).order_by()[:1])
    return found[0] if found else None


# --- writing -------------------------------------------------------------------------------


def _validate(kind: str, data: Any, *, partial: bool) -> dict[str, Any]:
    validator: Callable[..., dict[str, Any]] = {
        "location": schema.validate_location,
        "EVSE": schema.validate_evse,
        "connector": schema.validate_connector,
    }[kind]
    try:
        return validator(data, partial=partial)
    except ValidationError as exc:
        lines = describe_validation_errors(exc.detail)
        raise InvalidParameters("Invalid " + kind + ": " + "; ".join(lines)) from None


def validate_object(kind: str, data: Any) -> dict[str, Any]:
    """A full object's validation (a PUT's body); errors become 2001 naming the field."""
    return _validate(kind, data, partial=False)


def check_ids(path: ObjectPath, data: dict[str, Any]) -> None:
    """The body must name the object of the URL (spec: advised 2001 otherwise)."""
    checks: list[tuple[str, str | None]] = []
    if path.kind == "location":
        checks = [
            ("country_code", path.country_code),
            ("party_id", path.party_id),
            ("id", path.location_id),
        ]
    elif path.kind == "EVSE":
        checks = [("uid", path.evse_uid)]
    else:
        checks = [("id", path.connector_id)]
    for name, expected in checks:
        given = data.get(name)
        if given is not None and expected is not None and given.upper() != expected.upper():
            raise InvalidParameters(
                f"The body's {name} {given!r} does not match {expected!r} in the URL."
            )


def _check_own_party(path: ObjectPath) -> None:
    for party in our_parties():
        if (
            party.role == Role.CPO
            and party.country_code == path.country_code.upper()
            and party.party_id == path.party_id.upper()
        ):
            return
    ours = ", ".join(f"{p.country_code}/{p.party_id}" for p in our_parties() if p.role == Role.CPO)
    raise InvalidParameters(
        f"{path.country_code}/{path.party_id} is not one of our CPO parties ({ours or 'none'})."
    )


def _newer(stored: datetime, incoming: datetime | None) -> bool:
    return incoming is not None and stored > incoming


def put(path: ObjectPath, data: Any, *, owner: Owner, keep_timestamps: bool = False) -> Outcome:
    """Create or replace the object at ``path`` with the full object ``data``."""
    validated = _validate(path.kind, data, partial=False)
    check_ids(path, validated)
    if owner is None:
        _check_own_party(path)
    with transaction.atomic():
        if path.kind == "location":
            try:
                return _put_location(path, validated, owner, keep_timestamps)
            except _Taken:
                # Another PUT created it after our look-up, and has committed (the unique
                # index made our insert wait for it): now there is a row to lock and compare.
                return _put_location(path, validated, owner, keep_timestamps, retry=False)
        location = _location(path, owner, lock=True)
        if location is None:
            raise LocationNotFound(
                f"Unknown location {path.location}: PUT the location before its {path.kind}s."
            )
        if path.kind == "EVSE":
            return _put_evse(location, path, validated, owner)
        return _put_connector(location, path, validated, owner)


def patch(path: ObjectPath, data: Any, *, owner: Owner) -> Outcome:
    """Change the fields of ``data`` of the existing object at ``path`` (never creates)."""
    validated = _validate(path.kind, data, partial=True)
    check_ids(path, validated)
    if owner is not None and path.kind == "EVSE" and set(validated) == {"status", "last_updated"}:
        outcome = _partner_status(path, owner, validated["status"], validated["last_updated"])
        if outcome is not None:
            return outcome
    with transaction.atomic():
        location = _location(path, owner, lock=True, light=path.kind != "location")
        if location is None:
            if path.kind == "location":
                raise UnknownObject(f"Unknown location {path}: PUT it first.")
            raise LocationNotFound(f"Unknown location {path.location}.")
        now = now_utc()
        stamp = now if owner is None else validated["last_updated"]
        if path.kind == "location":
            return _patch_location(location, path, validated, owner, stamp)
        evse = _evse(location, path)
        if path.kind == "EVSE":
            return _patch_evse(location, evse, path, validated, owner, stamp)
        connector = _connector(evse, path)
        return _patch_connector(location, evse, connector, path, validated, owner, stamp)


# The bulk of inbound traffic: a partner's EVSE status PATCH. The same rules as _patch_evse,
# in three prepared statements without the ORM's query building (PostgreSQL only; elsewhere,
# and for anything unexpected, the general path answers).
#
# Compare-and-set: the SELECT locks the location row, but the EVSE columns it returns may have
# been read before the wait for that lock (PostgreSQL re-reads only the locked row). So the
# stamp comparison is made by the EVSE UPDATE itself, which evaluates its WHERE on the current
# row: an older PATCH that lost the race changes nothing and is answered as stale.
_STATUS_SELECT = """
SELECT l.id, l.last_updated, l.ocpi_json, e.id
FROM locations_location l JOIN locations_evse e ON e.location_id = l.id
WHERE l.cc_upper = %s AND l.pid_upper = %s AND l.id_upper = %s AND l.partner_id = %s
  AND e.uid_upper = %s
FOR UPDATE OF l
"""
_STATUS_EVSE = """
UPDATE locations_evse SET status = %(status)s,
  last_updated = GREATEST(last_updated, %(stamp)s),
  fields_updated = GREATEST(COALESCE(fields_updated, %(stamp)s), %(stamp)s)
WHERE id = %(pk)s AND COALESCE(fields_updated, last_updated) <= %(stamp)s
RETURNING last_updated
"""
_STATUS_LOCATION = (
    "UPDATE locations_location SET last_updated = %s, ocpi_json = %s, modified_at = %s "
    "WHERE id = %s"
)


def _partner_status(path: ObjectPath, owner: int, status: str, stamp: datetime) -> Outcome | None:
    """Apply a partner's ``{status, last_updated}`` PATCH of its EVSE; None: use the general
    path (not PostgreSQL, unknown location or EVSE, no stored document)."""
    if connection.vendor != "postgresql":
        return None
    key = (path.country_code.upper(), path.party_id.upper(), path.location_id.upper())
    with transaction.atomic(), prepared_cursor() as cursor:
        cursor.execute(_STATUS_SELECT, [*key, owner, str(path.evse_uid).upper()])
        row = cursor.fetchone()
        if row is None or not row[2]:
            return None
        location_pk, location_stamp, text, evse_pk = row
        location = Location(pk=location_pk, partner_id=owner, last_updated=location_stamp)
        doc = json.loads(text)
        entry = select(doc, path)
        if entry is None:
            return None  # the document lacks the EVSE: the general path renders it again
        cursor.execute(_STATUS_EVSE, {"status": status, "stamp": stamp, "pk": evse_pk})
        updated = cursor.fetchone()
        if updated is None:
            # We hold a newer version; or the EVSE went away while we waited for the lock
            # (then the general path answers).
            cursor.execute("SELECT 1 FROM locations_evse WHERE id = %s", [evse_pk])
            return Outcome(False, True, location) if cursor.fetchone() else None
        _merge_in_order(
            entry, {"status": status, "last_updated": format_datetime(updated[0])}, EVSE_ORDER
        )
        location.last_updated = max(location_stamp, stamp)
        doc["last_updated"] = format_datetime(location.last_updated)
        location.ocpi_json = dumps(doc)
        cursor.execute(
            _STATUS_LOCATION, [location.last_updated, location.ocpi_json, now_utc(), location_pk]
        )
    return Outcome(False, False, location)


def _evse(location: Location, path: ObjectPath) -> Evse:
    evse = location.evses.filter(uid_upper=str(path.evse_uid).upper()).first()
    if evse is None:
        raise UnknownObject(f"Unknown EVSE {path.evse_uid} of location {path.location_id}.")
    return evse


def _connector(evse: Evse, path: ObjectPath) -> Connector:
    connector = evse.connectors.filter(id_upper=str(path.connector_id).upper()).first()
    if connector is None:
        raise UnknownObject(f"Unknown connector {path.connector_id} of EVSE {evse.uid}.")
    return connector


def _stamp(data: dict[str, Any], owner: Owner) -> datetime:
    """Our own data: now. A partner's: what it sent."""
    if owner is None:
        return now_utc()
    value: datetime = data["last_updated"]
    return value


class _Taken(Exception):
    """The location was created by another transaction between our look-up and our insert."""


def _put_location(
    path: ObjectPath,
    data: dict[str, Any],
    owner: Owner,
    keep_timestamps: bool,
    *,
    retry: bool = True,
) -> Outcome:
    # Under the lock of the location row (read again after the wait for it): the newest
    # last_updated wins whatever the interleaving. No row yet: see _insert.
    location = _location(path, owner, lock=True)
    created = location is None
    if (
        location is not None
        and owner is not None
        and _newer(location.last_updated, data["last_updated"])
    ):
        return Outcome(False, True, location)
    if location is None:
        if Location.objects.ci(path.country_code, path.party_id, path.location_id).exists():
            if retry:  # created by a PUT that committed after our look-up: look again
                raise _Taken
            raise InvalidParameters(f"Location {path} belongs to another owner.")
        location = Location(partner_id=owner)
    if owner is None and keep_timestamps and created:
        _cascade_timestamps(data)
    assign(location, LOCATION_FIELDS, {k: v for k, v in data.items() if k != "evses"}, full=True)
    stamp = (
        data["last_updated"] if owner is not None or (keep_timestamps and created) else now_utc()
    )
    location.last_updated = stamp
    location.fields_updated = stamp
    if created:
        _insert(location, retry)
    else:
        location.save()
    keep = keep_timestamps and created
    _replace_evses(
        location, data.get("evses") or [], owner, None if (owner is not None or keep) else stamp
    )
    location.ocpi_json = _render(location)
    location.save(update_fields=["ocpi_json"])
    if owner is None:
        push.location_put(location, document(location))
    return Outcome(created, False, location)


def _insert(location: Location, retry: bool) -> None:
    """Insert a new location; ``_Taken`` when a concurrent PUT inserted the same key first
    (a savepoint keeps our transaction usable for the retry, which then compares)."""
    try:
        with transaction.atomic():
            location.save()
    except IntegrityError:
        if not retry:
            raise
        raise _Taken from None


def _cascade_timestamps(data: dict[str, Any]) -> None:
    """An imported location of ours is at least as new as its newest EVSE, and an EVSE as its
    newest connector (the spec's cascade, which a hand-made file may not respect)."""
    for evse in data.get("evses") or []:
        stamps = [c["last_updated"] for c in evse.get("connectors") or []]
        evse["last_updated"] = max([evse["last_updated"], *stamps])
    stamps = [e["last_updated"] for e in data.get("evses") or []]
    data["last_updated"] = max([data["last_updated"], *stamps])


def _replace_evses(
    location: Location, evses: list[dict[str, Any]], owner: Owner, stamp: datetime | None
) -> None:
    """The location's EVSEs become ``evses``.

    A partner's copy is replaced as sent. Our own EVSEs are never deleted (sessions and CDRs
    refer to them): one that the new version leaves out is kept with status REMOVED.
    """
    existing = {e.uid_upper: e for e in location.evses.all()}
    given = {str(e["uid"]).upper() for e in evses}
    gone = [e for key, e in existing.items() if key not in given]
    if owner is not None:
        Evse.objects.filter(pk__in=[e.pk for e in gone]).delete()
    else:
        for evse in gone:
            if evse.status != "REMOVED":
                evse.status = "REMOVED"
                evse.last_updated = stamp or now_utc()
                evse.save(update_fields=["status", "last_updated"])
    for position, item in enumerate(evses):
        evse = existing.get(str(item["uid"]).upper()) or Evse(location=location)
        _store_evse(evse, item, position, stamp)


def _store_evse(
    evse: Evse, data: dict[str, Any], position: int | None, stamp: datetime | None
) -> None:
    assign(evse, EVSE_FIELDS, {k: v for k, v in data.items() if k != "connectors"}, full=True)
    if stamp is not None:
        evse.last_updated = stamp
    evse.fields_updated = evse.last_updated
    if position is not None:
        evse.position = position
    evse.uid_upper = evse.uid.upper()
    evse.save()
    evse.connectors.all().delete()
    connectors = []
    for index, item in enumerate(data.get("connectors") or []):
        connector = Connector(evse=evse, position=index)
        assign(connector, CONNECTOR_FIELDS, item, full=True)
        if stamp is not None:
            connector.last_updated = stamp
        connector.id_upper = connector.connector_id.upper()
        connectors.append(connector)
    Connector.objects.bulk_create(connectors)


def _put_evse(location: Location, path: ObjectPath, data: dict[str, Any], owner: Owner) -> Outcome:
    evse = location.evses.filter(uid_upper=str(path.evse_uid).upper()).first()
    created = evse is None
    if evse is not None and owner is not None and _newer(evse.last_updated, data["last_updated"]):
        return Outcome(False, True, location)
    stamp = _stamp(data, owner)
    position = location.evses.count() if evse is None else None
    _store_evse(evse or Evse(location=location), data, position, stamp if owner is None else None)
    _touch(location, stamp)
    if owner is None:
        push.object_put(location, document(location), path)
    return Outcome(created, False, location)


def _put_connector(
    location: Location, path: ObjectPath, data: dict[str, Any], owner: Owner
) -> Outcome:
    evse = _evse(location, path.up())
    connector = evse.connectors.filter(id_upper=str(path.connector_id).upper()).first()
    created = connector is None
    if (
        connector is not None
        and owner is not None
        and _newer(connector.last_updated, data["last_updated"])
    ):
        return Outcome(False, True, location)
    stamp = _stamp(data, owner)
    if connector is None:
        connector = Connector(evse=evse, position=evse.connectors.count())
    assign(connector, CONNECTOR_FIELDS, data, full=True)
    connector.last_updated = stamp
    connector.id_upper = connector.connector_id.upper()
    connector.save()
    _raise_stamp(evse, stamp)
    _touch(location, stamp)
    if owner is None:
        push.object_put(location, document(location), path)
    return Outcome(created, False, location)


def _raise_stamp(obj: Evse | Location, stamp: datetime) -> None:
    """The cascade: a parent's last_updated follows its children, never backwards."""
    if stamp > obj.last_updated:
        obj.last_updated = stamp
        type(obj).objects.filter(pk=obj.pk).update(last_updated=stamp)


def _touch(location: Location, stamp: datetime) -> None:
    """Raise the location's last_updated and render it again from the database."""
    deferred = location.get_deferred_fields()
    if deferred:
        location.refresh_from_db(fields=list(deferred))
    if stamp > location.last_updated:
        location.last_updated = stamp
    location.ocpi_json = _render(location)
    location.save(update_fields=["last_updated", "ocpi_json"])


def _patch_location(
    location: Location, path: ObjectPath, data: dict[str, Any], owner: Owner, stamp: datetime
) -> Outcome:
    if owner is not None and _newer(location.fields_updated or location.last_updated, stamp):
        return Outcome(False, True, location)
    location.fields_updated = max(stamp, location.fields_updated or stamp)
    fields = {
        k: v
        for k, v in data.items()
        if k not in ("evses", "last_updated", "country_code", "party_id", "id")
    }
    assign(location, LOCATION_FIELDS, fields, full=False)
    location.save()
    for item in data.get("evses") or []:
        evse = location.evses.filter(uid_upper=str(item["uid"]).upper()).first()
        position = location.evses.count() if evse is None else None
        _store_evse(
            evse or Evse(location=location), item, position, stamp if owner is None else None
        )
    _touch(location, stamp)
    if owner is None:
        if data.get("evses"):
            push.location_put(location, document(location))
        else:
            body = render_fields(location, LOCATION_FIELDS, [*fields, "last_updated"])
            push.object_patch(location, document(location), path, body)
    return Outcome(False, False, location)


def _patch_evse(
    location: Location,
    evse: Evse,
    path: ObjectPath,
    data: dict[str, Any],
    owner: Owner,
    stamp: datetime,
) -> Outcome:
    if owner is not None and _newer(evse.fields_updated or evse.last_updated, stamp):
        return Outcome(False, True, location)
    fields = {k: v for k, v in data.items() if k not in ("connectors", "last_updated", "uid")}
    names = assign(evse, EVSE_FIELDS, fields, full=False)
    evse.last_updated = max(evse.last_updated, stamp)
    evse.fields_updated = max(evse.fields_updated or stamp, stamp)
    update = [a for n, a in EVSE_FIELDS if n in names and n != "coordinates"]
    update += ["latitude", "longitude"] if "coordinates" in names else []
    evse.save(update_fields=[*update, "last_updated", "fields_updated"])
    changed = render_fields(evse, EVSE_FIELDS, [*names, "last_updated"])
    doc: dict[str, Any] | None = None  # the stored document, when edited in place
    connectors = data.get("connectors") or []
    if connectors:
        for item in connectors:
            existing = evse.connectors.filter(id_upper=str(item["id"]).upper()).first()
            connector = existing or Connector(evse=evse, position=evse.connectors.count())
            assign(connector, CONNECTOR_FIELDS, item, full=True)
            if owner is None:
                connector.last_updated = stamp
            connector.id_upper = connector.connector_id.upper()
            connector.save()
        _touch(location, stamp)
    else:
        # The hot path (status updates): change the stored document in place, no re-render.
        doc = document(location)
        entry = select(doc, path)
        if entry is None:
            _touch(location, stamp)
            doc = None
        else:
            _merge_in_order(entry, changed, EVSE_ORDER)
            _store_document(location, doc, stamp)
    if owner is not None:
        return Outcome(False, False, location)
    current = document(location) if doc is None else doc
    if connectors:
        push.object_put(location, current, path)
    else:
        push.object_patch(location, current, path, changed)
    return Outcome(False, False, location)


def _patch_connector(
    location: Location,
    evse: Evse,
    connector: Connector,
    path: ObjectPath,
    data: dict[str, Any],
    owner: Owner,
    stamp: datetime,
) -> Outcome:
    if owner is not None and _newer(connector.last_updated, stamp):
        return Outcome(False, True, location)
    fields = {k: v for k, v in data.items() if k not in ("last_updated", "id")}
    names = assign(connector, CONNECTOR_FIELDS, fields, full=False)
    connector.last_updated = stamp
    connector.save()
    _raise_stamp(evse, stamp)
    doc = document(location)
    evse_entry = select(doc, path.up())
    entry = select(doc, path)
    edited = evse_entry is not None and entry is not None  # else rendered again below
    if evse_entry is None or entry is None:
        _touch(location, stamp)
    else:
        _merge_in_order(entry, render_connector(connector), [n for n, _ in CONNECTOR_FIELDS])
        evse_entry["last_updated"] = render_fields(evse, EVSE_FIELDS, ["last_updated"])[
            "last_updated"
        ]
        _store_document(location, doc, stamp)
    if owner is None:
        body = render_fields(connector, CONNECTOR_FIELDS, [*names, "last_updated"])
        push.object_patch(location, doc if edited else document(location), path, body)
    return Outcome(False, False, location)


def _merge_in_order(entry: dict[str, Any], changed: dict[str, Any], order: list[str]) -> None:
    """Update a rendered object in place, keeping the renderer's field order (the stored text
    stays byte for byte what a fresh render gives, also when a field is added)."""
    merged = {**entry, **changed}
    entry.clear()
    entry.update({name: merged.pop(name) for name in order if name in merged})
    entry.update(merged)


def _store_document(location: Location, doc: dict[str, Any], stamp: datetime) -> None:
    if stamp > location.last_updated:
        location.last_updated = stamp
    doc["last_updated"] = render_fields(location, LOCATION_FIELDS, ["last_updated"])["last_updated"]
    location.ocpi_json = dumps(doc)
    location.save(update_fields=["last_updated", "ocpi_json"])


def _render(location: Location) -> str:
    evses = list(location.evses.all())
    connectors: dict[int, list[Connector]] = {}
    for connector in Connector.objects.filter(evse__location=location):
        connectors.setdefault(connector.evse_id, []).append(connector)
    return dumps(render_location(location, evses, connectors))


def rerender(locations: Iterable[Location]) -> int:
    """Render stored locations again (after an admin edit or a change of the renderer)."""
    count = 0
    for location in locations:
        with transaction.atomic():  # under the row's lock: no concurrent write is undone
            if not _lock(location.pk):
                continue
            Location.objects.filter(pk=location.pk).update(
                ocpi_json=_render(location), modified_at=now_utc()
            )
        count += 1
    return count


def _lock(pk: int) -> bool:
    """Lock the location row ``pk`` until the end of the transaction; False: it is gone."""
    return bool(list(Location.objects.select_for_update().filter(pk=pk).values_list("pk")))


@transaction.atomic
def saved_in_admin(
    location: Location, *, evses: Iterable[int] = (), connectors: Iterable[int] = ()
) -> None:
    """An operator changed our location (and these EVSEs/connectors) in the admin.

    The changed objects and the location get last_updated = now (the cascade), the document is
    rendered again and the whole location is PUT to the partners, in this transaction.
    """
    if location.partner_id is not None:
        raise InvalidParameters("A partner's location is its own: it is not edited here.")
    # The lock (the admin's own UPDATE usually holds it already) before the stamp: a concurrent
    # write of this location is either before this one or after it, never in between.
    _lock(location.pk)
    now = now_utc()
    Connector.objects.filter(pk__in=list(connectors)).update(last_updated=now)
    changed_evses = set(evses) | set(
        Connector.objects.filter(pk__in=list(connectors)).values_list("evse_id", flat=True)
    )
    Evse.objects.filter(pk__in=changed_evses).update(last_updated=now)
    for evse in Evse.objects.filter(location=location):
        if evse.uid_upper != evse.uid.upper():
            evse.save()
    location.last_updated = now
    location.ocpi_json = _render(location)
    location.save()
    push.location_put(location, document(location))


def evse_statuses_saved_in_admin(location: Location, evses: Iterable[Evse]) -> None:
    """Only the status of these EVSEs changed in the admin: a PATCH each, like any status."""
    for evse in evses:
        path = ObjectPath(location.country_code, location.party_id, location.location_id, evse.uid)
        set_evse_status(path, evse.status)


def set_evse_status(path: ObjectPath, status: str) -> Outcome:
    """Our EVSE changed status (a charge point reported it): PATCH it to the partners."""
    return patch(path, {"status": status, "last_updated": format_datetime(now_utc())}, owner=None)
