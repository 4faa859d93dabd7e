"""Addressing locations, EVSEs and connectors: URL paths and the coalescing keys of pushes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .render import find


@dataclass(frozen=True)
class ObjectPath:
    """``{country_code}/{party_id}/{location_id}[/{evse_uid}[/{connector_id}]]``."""

    country_code: str
    party_id: str
    location_id: str
    evse_uid: str | None = None
    connector_id: str | None = None

    @property
    def parts(self) -> list[str]:
        parts = [self.country_code, self.party_id, self.location_id]
        return parts + [p for p in (self.evse_uid, self.connector_id) if p is not None]

    @property
    def kind(self) -> str:
        return "connector" if self.connector_id else "EVSE" if self.evse_uid else "location"

    @property
    def key(self) -> str:
        return "/".join(self.parts).upper()

    @property
    def path(self) -> str:
        return "/".join(self.parts)

    @property
    def location(self) -> ObjectPath:
        return ObjectPath(self.country_code, self.party_id, self.location_id)

    def lineage(self) -> list[ObjectPath]:
        """The location, then the EVSE, then the connector, down to this path."""
        chain = [self.location]
        if self.evse_uid is not None:
            chain.append(ObjectPath(*self.parts[:4]))
        if self.connector_id is not None:
            chain.append(self)
        return chain

    def up(self) -> ObjectPath:
        if self.connector_id is not None:
            return ObjectPath(self.country_code, self.party_id, self.location_id, self.evse_uid)
        return ObjectPath(self.country_code, self.party_id, self.location_id)

    def __str__(self) -> str:
        return self.path


def select(doc: dict[str, Any], path: ObjectPath) -> dict[str, Any] | None:
    """The location, EVSE or connector the path names, out of the location's document."""
    if path.evse_uid is None:
        return doc
    evse = find(doc.get("evses") or [], "uid", path.evse_uid)
    if evse is None or path.connector_id is None:
        return evse
    return find(evse.get("connectors") or [], "id", path.connector_id)
