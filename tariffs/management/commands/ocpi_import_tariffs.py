"""Import our own tariffs from OCPI JSON: one Tariff, a list of them, or a response envelope
(``kit.management.importing`` says how).

A tariff without ``last_updated`` (the spec's ``tariff_put_example.json`` has none) is stamped
now: the file is ours, and a receiver refuses such a tariff (2001) from a partner.
"""

from __future__ import annotations

from typing import Any

from kit import services, spec_of
from kit.management.importing import ImportCommand
from kit.spec import ObjectKey
from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.types import format_datetime, now_utc


class Command(ImportCommand):
    help = (
        "Import our own tariffs from OCPI JSON files (a Tariff, a list of Tariffs or a "
        "response envelope) and push them to the partners."
    )
    noun, title = "tariff", "Tariff"

    def store(self, key: list[str], item: dict[str, Any], *, keep: bool) -> bool:
        if "last_updated" not in item:
            item = {**item, "last_updated": format_datetime(now_utc())}
        spec = spec_of(ModuleId.TARIFFS)
        return services.put(spec, ObjectKey(*key), item, owner=None, keep_timestamp=keep).created
