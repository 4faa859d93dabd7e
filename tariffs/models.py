"""Tariffs, ours (we are the CPO) and partners' copies: document-stored (``kit.models``).

Beside the kit's key and document, the columns that pay: ``currency`` and the validity window
(``start_date_time``, ``end_date_time``), to find the tariffs in force without reading JSON.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from kit.models import OcpiObject


class Tariff(OcpiObject):
    currency = models.CharField(max_length=3, help_text="ISO 4217 code of the tariff's prices.")
    start_date_time = models.DateTimeField(null=True, blank=True)
    end_date_time = models.DateTimeField(null=True, blank=True)

    class Meta(OcpiObject.Meta):
        constraints = OcpiObject.key_constraints()
        indexes = OcpiObject.list_indexes()

    def assign(self, validated: dict[str, Any]) -> None:
        self.currency = validated["currency"]
        self.start_date_time = validated.get("start_date_time")
        self.end_date_time = validated.get("end_date_time")
