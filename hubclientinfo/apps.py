from __future__ import annotations

from django.apps import AppConfig


def _we_send() -> bool:
    """The sender interface is the hub's."""
    from . import services

    return services.we_are_hub()


def _we_receive() -> bool:
    """Every platform connected to a hub receives ClientInfo (a hub itself does not)."""
    from ocpi_platform.ocpi.parties import our_parties
    from ocpi_platform.ocpi.types import Role

    return any(p.role != Role.HUB for p in our_parties())


class HubclientinfoConfig(AppConfig):
    name = "hubclientinfo"
    verbose_name = "OCPI hubclientinfo"

    def ready(self) -> None:
        from credentials.signals import partner_registered, partner_status_changed
        from ocpi_platform.ocpi import registry
        from ocpi_platform.ocpi.types import InterfaceRole
        from outbox import services as outbox

        from . import services

        registry.mount("hubclientinfo.urls")
        registry.register(
            registry.ModuleEndpoint(
                services.MODULE, InterfaceRole.SENDER, "ocpi:hubclientinfo-sender", _we_send
            )
        )
        registry.register(
            registry.ModuleEndpoint(
                services.MODULE, InterfaceRole.RECEIVER, "ocpi:hubclientinfo-receiver", _we_receive
            )
        )
        partner_status_changed.connect(services.on_status_changed, dispatch_uid="hubclientinfo")
        partner_registered.connect(services.on_partner_registered, dispatch_uid="hubclientinfo")
        outbox.current_state[services.MODULE] = services.current_body
