"""Import our own tokens (we are the eMSP) from OCPI JSON: one Token, a list of them, or a
response envelope (``kit.management.importing`` says how). Each is pushed to the CPOs (PUT).
Tokens are never deleted: import one with ``"valid": false`` to block it.
"""

from __future__ import annotations

from typing import Any

from kit import services, spec_of
from kit.management.importing import ImportCommand
from ocpi_platform.ocpi.registry import ModuleId


class Command(ImportCommand):
    help = (
        "Import our own tokens from OCPI JSON files (a Token, a list of Tokens or a response "
        "envelope) and push them to the CPOs."
    )
    noun, title = "token", "Token"
    key_fields = ("country_code", "party_id", "uid", "type")

    def store(self, key: list[str], item: dict[str, Any], *, keep: bool) -> bool:
        spec = spec_of(ModuleId.TOKENS)
        outcome = services.put(spec, spec.key_of(item), item, owner=None, keep_timestamp=keep)
        return outcome.created
