from __future__ import annotations

from typing import Any

from credentials import handshake
from credentials.management.base import PartnerCommand
from credentials.models import JobKind


class Command(PartnerCommand):
    help = "Unregister a partner (credentials DELETE): all traffic with it stops."
    waits = True

    def handle(self, *args: Any, **options: Any) -> None:
        partner = self.get_partner(options["name"])
        try:
            job = handshake.request_job(partner, JobKind.UNREGISTER)
        except handshake.HandshakeFailed as exc:
            raise self.failed(exc) from None
        self.run_job(
            options, job, f"{JobKind.UNREGISTER.label.capitalize()} of {partner.name} started"
        )
