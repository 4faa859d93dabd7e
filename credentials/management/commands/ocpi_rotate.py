from __future__ import annotations

from typing import Any

from credentials import handshake
from credentials.management.base import PartnerCommand
from credentials.models import JobKind


class Command(PartnerCommand):
    help = "Rotate the tokens with a registered partner (credentials PUT)."
    waits = True

    def handle(self, *args: Any, **options: Any) -> None:
        partner = self.get_partner(options["name"])
        try:
            job = handshake.request_job(partner, JobKind.ROTATE)
        except handshake.HandshakeFailed as exc:
            raise self.failed(exc) from None
        self.run_job(options, job, f"{JobKind.ROTATE.label.capitalize()} of {partner.name} started")
