"""Storage of the Tokens module: one row per Token, ours (we are the eMSP) or a partner's copy.

A row is a ``kit.models.OcpiObject``: the key (country_code, party_id, uid as ``object_id``,
type as ``object_type``) with upper-case shadows under one unique index, ``last_updated`` and the
rendered OCPI JSON document (``ocpi_json``), which holds every field of the 2.2.1 Token. The
columns below repeat the fields that queries and the admin filter on. Tokens are never deleted:
a token that may no longer charge has ``valid = false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models

from kit.models import OcpiObject

from .schema import WHITELIST_TYPES


class Whitelist(models.TextChoices):
    ALWAYS = "ALWAYS", "ALWAYS (always whitelisted; no real-time authorization)"
    ALLOWED = "ALLOWED", "ALLOWED (the CPO may ask the eMSP)"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE", "ALLOWED_OFFLINE (real-time; local when unreachable)"
    NEVER = "NEVER", "NEVER (always real-time authorization)"


if tuple(Whitelist.values) != WHITELIST_TYPES:  # one list of the enum, in schema.py
    raise RuntimeError("Whitelist and schema.WHITELIST_TYPES differ")


class Token(OcpiObject):
    valid = models.BooleanField(
        default=True, help_text="Spec: is this Token valid (false: blocked, never deleted)."
    )
    whitelist = models.CharField(
        max_length=16,
        choices=Whitelist.choices,
        default=Whitelist.ALWAYS,
        help_text="Spec WhitelistType: how the CPO must authorize this Token.",
    )
    contract_id = models.CharField(
        max_length=36, db_index=True, help_text="Spec: the driver's contract id (eMA ID)."
    )

    class Meta(OcpiObject.Meta):
        constraints = OcpiObject.key_constraints()
        indexes = OcpiObject.list_indexes()

    def assign(self, validated: Mapping[str, Any]) -> None:
        """The indexed columns from a validated Token (the kit calls this on every write)."""
        self.valid = bool(validated["valid"])
        self.whitelist = str(validated["whitelist"])
        self.contract_id = str(validated["contract_id"])

    @property
    def uid(self) -> str:
        return self.object_id

    @property
    def token_type(self) -> str:
        return self.object_type
