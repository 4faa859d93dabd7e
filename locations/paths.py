"""Addressing locations, EVSEs and connectors: URL paths and the coalescing keys of pushes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from ocpi_platform.ocpi.fields import segments_as_sent

from .render import find

__all__ = ["ObjectPath", "receiver_path", "segments_as_sent", "select"]


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
        """The coalescing key of pushes: the URL path in upper case (CiString ids)."""
        return self.path.upper()

    @property
    def path(self) -> str:
        """The URL path under a locations endpoint: each id one percent-encoded segment (an id
        may hold '/', '?', '#' or '%'; quote's hex digits are upper case, so ``key`` holds no
        two spellings of one path)."""
        return "/".join(quote(part, safe="") for part in self.parts)

    @classmethod
    def from_key(cls, key: str) -> ObjectPath:
        """The path of a ``key`` (or of a ``path``): segments decoded."""
        return cls(*(unquote(part) for part in key.split("/")))

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
        """The ids as given, for messages."""
        return "/".join(self.parts)


def select(doc: dict[str, Any], path: ObjectPath) -> dict[str, Any] | None:
    """The location, EVSE or connector the path names, out of the location's document."""
    if path.evse_uid is None:
        return doc
    evse = find(doc.get("evses") or [], "uid", path.evse_uid)
    if evse is None or path.connector_id is None:
        return evse
    return find(evse.get("connectors") or [], "id", path.connector_id)


RECEIVER = "/receiver/locations/"


def receiver_path(
    meta: Mapping[str, Any], path: str, ids: Mapping[str, str | None]
) -> ObjectPath | None:
    """The object a receiver request addresses: from the raw target when the server gives it
    (ids may hold an encoded '/'), else from the routed ``ids``. None: no such object path."""
    parts = segments_as_sent(meta.get("RAW_URI"), path, RECEIVER)
    if parts is None:
        if "segments" in ids:  # routed by the catch-all: more segments than ids
            return None
        return ObjectPath(**ids)  # type: ignore[arg-type]
    if not 3 <= len(parts) <= 5 or not all(parts):
        return None
    return ObjectPath(*parts)
