from __future__ import annotations

from typing import Any

from credentials import handshake
from credentials.management.base import PartnerCommand
from ocpi_platform.ocpi.registry import versions_url


class Command(PartnerCommand):
    help = "Invite a partner: issue token A and print it with our versions URL (shown once)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            partner, token_a = handshake.invite_partner(name=options["name"])
        except handshake.HandshakeFailed as exc:
            raise self.failed(exc) from None
        url = versions_url()
        self.emit(
            options,
            {"name": partner.name, "token_a": token_a, "versions_url": url},
            f"Invited {partner.name}. Give the partner, over a secure channel:\n"
            f"  versions URL: {url}\n  token A:      {token_a}\n"
            "The token is not shown again.",
        )
