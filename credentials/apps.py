from __future__ import annotations

from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"
    verbose_name = "OCPI partners (credentials)"

    def ready(self) -> None:
        from ocpi_platform.ocpi import registry
        from ocpi_platform.ocpi.types import InterfaceRole

        # Our credentials endpoint; the role has no meaning for credentials (spec advises SENDER).
        # The versions list and the version details live here too, at /ocpi/versions.
        registry.mount("credentials.urls", prefix="")
        registry.register(
            registry.ModuleEndpoint(
                registry.ModuleId.CREDENTIALS, InterfaceRole.SENDER, "ocpi:credentials"
            )
        )
