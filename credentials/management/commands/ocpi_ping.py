from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from credentials import liveness
from credentials.models import ConnectionStatus, Partner


class Command(BaseCommand):
    help = (
        "Ping partners now (GET on their versions endpoint with our token) and print the "
        "outcome; the status changes as a beat ping's would (OFFLINE after the configured "
        "failures, CONNECTED on success). Without NAME: every registered, not suspended partner."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", help="The partner's name (as in the admin).")
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        partners = liveness.pingable().order_by("name")
        if options["name"]:
            partner = Partner.objects.filter(name=options["name"]).first()
            if partner is None:
                raise CommandError(f"No partner named {options['name']!r}.")
            if not partner.is_registered:
                raise CommandError(f"{partner.name} is not registered: there is nothing to ping.")
            if partner.status == ConnectionStatus.SUSPENDED:
                raise CommandError(f"{partner.name} is suspended: resume it before pinging.")
            partners = partners.filter(pk=partner.pk)
        results = [liveness.ping(p) for p in partners]
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in results], indent=2))
        elif not results:
            self.stdout.write("No registered partner to ping.")
        for result in [] if options["json"] else results:
            outcome = "ok" if result.ok else f"FAILED ({result.failures} in a row)"
            changed = " (changed)" if result.changed else ""
            line = f"{result.partner:<24} {outcome:<22} {result.millis:>6} ms  {result.status}"
            self.stdout.write(line + changed)
            if result.reason:
                self.stdout.write(f"{'':<24} {result.reason}")
        if options["name"] and results and not results[0].ok:
            raise CommandError(f"{results[0].partner} did not answer the ping.")
