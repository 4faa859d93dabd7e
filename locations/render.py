"""OCPI JSON <-> model fields, in one table per object, used in both directions.

Rendering follows the spec's field order and leaves absent optional fields out, so a location
that was PUT is given back as it came (the spec examples round-trip unchanged).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import models

from ocpi_platform.ocpi.types import format_datetime

from .models import Connector, Evse, Location

COORDINATES = "coordinates"

# (OCPI name, model attribute). "coordinates" maps to the latitude/longitude pair.
LOCATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("country_code", "country_code"),
    ("party_id", "party_id"),
    ("id", "location_id"),
    ("publish", "publish"),
    ("publish_allowed_to", "publish_allowed_to"),
    ("name", "name"),
    ("address", "address"),
    ("city", "city"),
    ("postal_code", "postal_code"),
    ("state", "state"),
    ("country", "country"),
    (COORDINATES, COORDINATES),
    ("related_locations", "related_locations"),
    ("parking_type", "parking_type"),
    ("directions", "directions"),
    ("operator", "operator"),
    ("suboperator", "suboperator"),
    ("owner", "owner"),
    ("facilities", "facilities"),
    ("time_zone", "time_zone"),
    ("opening_times", "opening_times"),
    ("charging_when_closed", "charging_when_closed"),
    ("images", "images"),
    ("energy_mix", "energy_mix"),
    ("last_updated", "last_updated"),
)
EVSE_FIELDS: tuple[tuple[str, str], ...] = (
    ("uid", "uid"),
    ("evse_id", "evse_id"),
    ("status", "status"),
    ("status_schedule", "status_schedule"),
    ("capabilities", "capabilities"),
    ("floor_level", "floor_level"),
    (COORDINATES, COORDINATES),
    ("physical_reference", "physical_reference"),
    ("directions", "directions"),
    ("parking_restrictions", "parking_restrictions"),
    ("images", "images"),
    ("last_updated", "last_updated"),
)
CONNECTOR_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "connector_id"),
    ("standard", "standard"),
    ("format", "format"),
    ("power_type", "power_type"),
    ("max_voltage", "max_voltage"),
    ("max_amperage", "max_amperage"),
    ("max_electric_power", "max_electric_power"),
    ("tariff_ids", "tariff_ids"),
    ("terms_and_conditions", "terms_and_conditions"),
    ("last_updated", "last_updated"),
)
# Keys under which a parent holds its children: never plain fields.
CHILDREN = {"evses", "connectors"}


def _value(obj: models.Model, attr: str) -> Any:
    if attr == COORDINATES:
        lat, lon = getattr(obj, "latitude", None), getattr(obj, "longitude", None)
        return None if lat is None else {"latitude": lat, "longitude": lon}
    value = getattr(obj, attr)
    return format_datetime(value) if isinstance(value, datetime) else value


def render_fields(
    obj: models.Model, fields: Sequence[tuple[str, str]], names: Iterable[str] | None = None
) -> dict[str, Any]:
    wanted = None if names is None else set(names)
    out: dict[str, Any] = {}
    for name, attr in fields:
        if wanted is not None and name not in wanted:
            continue
        value = _value(obj, attr)
        if value is not None:
            out[name] = value
    return out


def assign(
    obj: models.Model, fields: Sequence[tuple[str, str]], data: Mapping[str, Any], *, full: bool
) -> list[str]:
    """Set model fields from validated OCPI data; ``full``: absent optional fields become null.

    Returns the OCPI names that were set. A PATCH (not full) ignores nulls: it cannot remove
    information (spec transport › PATCH).
    """
    changed: list[str] = []
    for name, attr in fields:
        if name not in data and not full:
            continue
        value = data.get(name)
        if value is None and not full:
            continue
        if attr == COORDINATES:
            obj.latitude = value["latitude"] if value else None  # type: ignore[attr-defined]
            obj.longitude = value["longitude"] if value else None  # type: ignore[attr-defined]
        else:
            setattr(obj, attr, value)
        changed.append(name)
    return changed


def render_connector(connector: Connector) -> dict[str, Any]:
    return render_fields(connector, CONNECTOR_FIELDS)


# The order of an EVSE's keys as rendered: connectors before last_updated.
EVSE_ORDER = [n for n, _ in EVSE_FIELDS if n != "last_updated"] + ["connectors", "last_updated"]


def render_evse(evse: Evse, connectors: Iterable[Connector]) -> dict[str, Any]:
    out = render_fields(evse, EVSE_FIELDS)
    out["connectors"] = [render_connector(c) for c in connectors]
    return _move_last(out, "last_updated")


def render_location(
    location: Location, evses: Iterable[Evse], connectors: Mapping[int, list[Connector]]
) -> dict[str, Any]:
    return render_tree(location, [(e, connectors.get(e.pk, [])) for e in evses])


def render_tree(
    location: Location, evses: Iterable[tuple[Evse, Iterable[Connector]]]
) -> dict[str, Any]:
    """The location with its EVSEs, each with its connectors (saved or not)."""
    out = render_fields(location, LOCATION_FIELDS)
    rendered = [render_evse(evse, connectors) for evse, connectors in evses]
    if rendered:
        out["evses"] = rendered
    return _move_last(out, "last_updated")


def _move_last(out: dict[str, Any], key: str) -> dict[str, Any]:
    if key in out:
        out[key] = out.pop(key)
    return out


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def find(items: Iterable[dict[str, Any]], key: str, wanted: str) -> dict[str, Any] | None:
    """The item whose CiString ``key`` equals ``wanted``, case-insensitively."""
    wanted = wanted.upper()
    return next((item for item in items if str(item.get(key, "")).upper() == wanted), None)
