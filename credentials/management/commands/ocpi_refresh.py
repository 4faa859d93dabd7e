from __future__ import annotations

from typing import Any

from credentials import handshake
from credentials.management.base import PartnerCommand
from credentials.models import JobKind


class Command(PartnerCommand):
    help = "Re-fetch a registered partner's versions and endpoints."
    waits = True

    def handle(self, *args: Any, **options: Any) -> None:
        partner = self.get_partner(options["name"])
        try:
            job = handshake.request_job(partner, JobKind.REFRESH)
        except handshake.HandshakeFailed as exc:
            raise self.failed(exc) from None
        self.run_job(
            options, job, f"{JobKind.REFRESH.label.capitalize()} of {partner.name} started"
        )
