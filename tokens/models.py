"""Storage of the Tokens module: one row per Token, ours (we are the eMSP) or a partner's copy.

A row is a ``kit.models.OcpiObject``: the key (country_code, party_id, uid as ``object_id``,
type as ``object_type``) with upper-case shadows under one unique index, ``last_updated`` and the
rendered OCPI JSON document (``ocpi_json``), which holds every field of the 2.2.1 Token. The
columns below repeat the fields that queries and the admin filter on. Tokens are never deleted:
a token that may no longer charge has ``valid = false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from django.db import connection, models

from kit.models import OcpiObject
from ocpi_platform.db.prepared import fetch_one

from .schema import WHITELIST_TYPES


class Whitelist(models.TextChoices):
    ALWAYS = "ALWAYS", "ALWAYS (always whitelisted; no real-time authorization)"
    ALLOWED = "ALLOWED", "ALLOWED (the CPO may ask the eMSP)"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE", "ALLOWED_OFFLINE (real-time; local when unreachable)"
    NEVER = "NEVER", "NEVER (always real-time authorization)"


if tuple(Whitelist.values) != WHITELIST_TYPES:  # one list of the enum, in schema.py
    raise RuntimeError("Whitelist and schema.WHITELIST_TYPES differ")


# What an authorization reads of a token (the rest of the row is deferred).
_LOOKUP_FIELDS = frozenset(
    {
        "id",
        "partner_id",
        "country_code",
        "party_id",
        "object_id",
        "object_type",
        "valid",
        "whitelist",
        "contract_id",
        "last_updated",
        "ocpi_json",
    }
)


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
        indexes = [
            *OcpiObject.list_indexes(),
            # Authorization looks a token up by (uid, type) without its party (the CPO's
            # charge point knows only the uid; the eMSP's authorize URL has no party).
            models.Index(fields=["id_upper", "object_type"], name="tokens_token_uid_type"),
        ]

    def assign(self, validated: Mapping[str, Any]) -> None:
        """The indexed columns from a validated Token (the kit calls this on every write)."""
        self.valid = bool(validated["valid"])
        self.whitelist = str(validated["whitelist"])
        self.contract_id = str(validated["contract_id"])

    @classmethod
    def lookup(
        cls, uid: str, token_type: str, *, ours: bool, party: tuple[str, str] | None = None
    ) -> Token | None:
        """The token (uid, type), ours or a partner's copy (the newest if several eMSPs use
        the uid), of ``party`` when given: one indexed query, no ORM compilation (the
        real-time authorization path; see bench/tokens.py), prepared once per connection."""
        columns = cls._lookup_columns()
        # Only the table name and a constant are formatted in; the values are parameters.
        sql = (
            f"SELECT {', '.join(columns)} FROM {cls._meta.db_table} "  # noqa: S608
            f"WHERE id_upper = %s AND object_type = %s AND partner_id IS "
            f"{'NULL' if ours else 'NOT NULL'}"
        )
        params: list[str] = [uid.upper(), token_type]
        if party is not None:
            sql += " AND cc_upper = %s AND pid_upper = %s"
            params += [party[0].upper(), party[1].upper()]
        sql += " ORDER BY last_updated DESC LIMIT 1"
        row = fetch_one(sql, params)
        if row is None:
            return None
        return cls.from_db(connection.alias, columns, row)

    @classmethod
    @cache
    def _lookup_columns(cls) -> tuple[str, ...]:
        # In the model's field order: from_db() takes the values of a partial row in that order.
        return tuple(f.column for f in cls._meta.concrete_fields if f.attname in _LOOKUP_FIELDS)

    @property
    def uid(self) -> str:
        return self.object_id

    @property
    def token_type(self) -> str:
        return self.object_type
