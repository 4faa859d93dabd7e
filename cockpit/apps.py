from __future__ import annotations

from django.apps import AppConfig


class CockpitConfig(AppConfig):
    name = "cockpit"
    verbose_name = "Cockpit (dashboard and monitoring)"

    def ready(self) -> None:
        from django.contrib import admin

        from credentials.signals import partner_pinged

        from . import branding, receivers

        branding.brand(admin.site)
        partner_pinged.connect(receivers.on_partner_pinged, dispatch_uid="cockpit-pinged")
