from __future__ import annotations

from django.apps import AppConfig

# Roles that receive locations from a CPO.
RECEIVING_ROLES = ("EMSP", "NSP", "NAP", "SCSP", "OTHER", "HUB")


def _we_send() -> bool:
    from ocpi_platform.ocpi.parties import has_role
    from ocpi_platform.ocpi.types import Role

    return has_role(Role.CPO)


def _we_receive() -> bool:
    from ocpi_platform.ocpi.parties import our_parties

    return any(p.role in RECEIVING_ROLES for p in our_parties())


class LocationsConfig(AppConfig):
    name = "locations"
    verbose_name = "OCPI locations"

    def ready(self) -> None:
        from credentials.signals import partner_registered, partner_status_changed
        from ocpi_platform.ocpi import registry
        from ocpi_platform.ocpi.types import InterfaceRole
        from outbox import services as outbox

        from . import push, tasks

        registry.mount("locations.urls")
        locations = registry.ModuleId.LOCATIONS
        registry.register(
            registry.ModuleEndpoint(
                locations, InterfaceRole.SENDER, "ocpi:locations-sender", _we_send
            )
        )
        registry.register(
            registry.ModuleEndpoint(
                locations, InterfaceRole.RECEIVER, "ocpi:locations-receiver", _we_receive
            )
        )
        partner_registered.connect(tasks.on_partner_registered, dispatch_uid="locations")
        partner_status_changed.connect(tasks.on_status_changed, dispatch_uid="locations")
        outbox.current_state[push.MODULE] = push.current_body
