from __future__ import annotations

from django.apps import AppConfig


class JournalConfig(AppConfig):
    name = "journal"
    verbose_name = "Request journal and partner doctor"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ocpi_platform.ocpi import client

        from . import recorder

        # Every outbound call of every client is journaled (inbound: journal.middleware).
        client.observe(recorder.record_outbound)
