from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.timesince import timesince

from credentials.management.base import partner_summary
from credentials.models import Partner


class Command(BaseCommand):
    help = "List the partners with their state, roles, status and last connection."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        partners = Partner.objects.prefetch_related("roles", "endpoints").order_by("name")
        if options["json"]:
            self.stdout.write(json.dumps([partner_summary(p) for p in partners], indent=2))
            return
        if not partners:
            self.stdout.write("No partners yet: see ocpi_invite and ocpi_connect.")
            return
        for p in partners:
            roles = ", ".join(f"{r.country_code}/{r.party_id} {r.role}" for r in p.roles.all())
            seen = f"{timesince(p.last_connection)} ago" if p.last_connection else "never"
            line = f"{p.name:<24} {p.state:<13} {p.status:<10} seen {seen:<18} {roles or '-'}"
            if p.failure_reason:
                line += f"\n{'':<24} reason: {p.failure_reason}"
            self.stdout.write(line)
