from __future__ import annotations

from typing import Any

from django.apps import AppConfig

# Roles that receive tariffs from a CPO (as for locations).
RECEIVING_ROLES = ("EMSP", "NSP", "NAP", "SCSP", "OTHER", "HUB")


def validate(data: Any, *, partial: bool, key: Any) -> dict[str, Any]:
    """The kit's validation hook (the module has no PATCH: ``partial`` is never asked)."""
    from . import schema

    return schema.validate_tariff(data)


class TariffsConfig(AppConfig):
    name = "tariffs"
    verbose_name = "OCPI tariffs"

    def ready(self) -> None:
        import kit
        from ocpi_platform.ocpi.registry import ModuleId
        from ocpi_platform.ocpi.types import Role

        from . import schema
        from .models import Tariff

        kit.declare(
            kit.ModuleSpec(
                identifier=ModuleId.TARIFFS,
                owner=Role.CPO,
                receiving_roles=tuple(Role(r) for r in RECEIVING_ROLES),
                model=Tariff,
                validate=validate,
                render=schema.render_tariff,
                name="tariff",
                receiver_methods=frozenset({"GET", "PUT", "DELETE"}),
                push_delete=True,
                # The spec's tariffs sender has no GET of one tariff: a copy the partner's
                # complete list leaves out is kept (its DELETE push removes it).
                check_unlisted=False,
            )
        )
