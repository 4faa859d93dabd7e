"""Import our own locations from OCPI JSON: one Location, a list of them, or a response envelope
(``kit.management.importing`` says how)."""

from __future__ import annotations

from typing import Any

from kit.management.importing import ImportCommand
from locations import services
from locations.paths import ObjectPath


class Command(ImportCommand):
    help = (
        "Import our own locations from OCPI JSON files (a Location, a list of Locations or a "
        "response envelope) and push them to the partners."
    )
    noun, title = "location", "Location"

    def store(self, key: list[str], item: dict[str, Any], *, keep: bool) -> bool:
        return services.put(ObjectPath(*key), item, owner=None, keep_timestamps=keep).created
