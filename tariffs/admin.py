"""The operators' admin for tariffs: ours edited as OCPI JSON (validated, stamped, pushed on
save; a delete is pushed as DELETE), partners' copies read-only (``kit.admin.ObjectAdmin``).

A tariff's ``tariff_ids`` references from locations are not checked here: see the README
("Tariffs"); the location's admin page warns about unknown ones.
"""

from __future__ import annotations

from django.contrib import admin

from kit import admin as kit_admin
from ocpi_platform.ocpi.registry import ModuleId

from .models import Tariff


@admin.register(Tariff)
class TariffAdmin(kit_admin.ObjectAdmin):
    spec_id = ModuleId.TARIFFS
    list_display = ("__str__", "owner", "currency", "end_date_time", "last_updated")
