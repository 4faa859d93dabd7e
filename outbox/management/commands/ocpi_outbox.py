"""``manage.py ocpi_outbox``: what the outbox owes each partner, for operators and monitoring."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from outbox.models import Delivery


class Command(BaseCommand):
    help = (
        "Print, per partner, the deliveries still to send (pending or in flight) and those "
        "refused for good (FAILED, not retried). Exits with status 1 when any delivery failed, "
        "so monitoring can alert on it; retry failed rows from the admin."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = [
            {"partner": c["partner__name"], "pending": c["pending"], "failed": c["failed"]}
            for c in Delivery.objects.counts_by_partner()
        ]
        failed = sum(c["failed"] for c in counts)
        pending = sum(c["pending"] for c in counts)
        if options["json"]:
            totals = {"pending": pending, "failed": failed}
            self.stdout.write(json.dumps({"partners": counts, "total": totals}, indent=2))
        else:
            for c in counts:
                self.stdout.write(
                    f"{c['partner']:<24} {c['pending']:>7} pending {c['failed']:>7} failed"
                )
            self.stdout.write(f"{'total':<24} {pending:>7} pending {failed:>7} failed")
        if failed:
            rows = "delivery" if failed == 1 else "deliveries"
            raise CommandError(f"{failed} {rows} failed for good (see the admin, state FAILED).")
