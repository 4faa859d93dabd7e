from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from credentials import handshake
from credentials.management.base import PartnerCommand


class Command(PartnerCommand):
    help = "Register with a partner that gave us its versions URL and token A."
    waits = True

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--versions-url", required=True, help="The partner's versions URL.")
        parser.add_argument("--token-a", required=True, help="The token A the partner gave us.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            job = handshake.connect_partner(
                name=options["name"],
                versions_url=options["versions_url"],
                token_a=options["token_a"],
            )
        except handshake.HandshakeFailed as exc:
            raise self.failed(exc) from None
        self.run_job(options, job, f"Registration with {options['name']} started")
