"""LocationsPartner: the fake partner with the locations module (``ModulePartner``, which says
what it serves and records), and the nested EVSE/connector objects of the sender's GET.

``locations`` is what the list serves; ``GET {locations}/{location_id}[/{evse_uid}
[/{connector_id}]]`` serves that location, EVSE or connector (HTTP 404 + 2003 when there is
none). Everything else (versions, credentials, scripted failures) is ``FakePartner``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.fakes.module_partner import ModulePartner

LOCATIONS_PATH = "/ocpi/2.2.1/locations"


@dataclass
class LocationsPartner(ModulePartner):
    module: str = "locations"
    # Sender side: what a GET of the list returns.
    locations: list[dict[str, Any]] = field(default_factory=list)

    def served(self) -> list[dict[str, Any]]:
        return self.locations

    def find(self, ids: list[str]) -> Any:
        found = super().find(ids)
        for key, name in (("evses", "uid"), ("connectors", "id")):
            if found is None or len(ids) < (2 if key == "evses" else 3):
                break
            wanted = ids[1 if key == "evses" else 2].upper()
            found = next(
                (o for o in found.get(key) or [] if str(o.get(name, "")).upper() == wanted), None
            )
        return found
