from __future__ import annotations

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "OCPI push deliveries (outbox)"

    def ready(self) -> None:
        from credentials.signals import partner_status_changed

        from . import services

        partner_status_changed.connect(services.on_status_changed, dispatch_uid="outbox")
