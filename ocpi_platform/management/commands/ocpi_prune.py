from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from ocpi_platform import housekeeping


class Command(BaseCommand):
    help = (
        "Delete what is done and older than OCPI_RETENTION_DAYS: SENT and CANCELLED outbox "
        "deliveries, partner events, status changes (the newest of each partner stays) and "
        "finished partner jobs. FAILED deliveries stay until handled. Beat runs it hourly."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")
        parser.add_argument(
            "--days", type=float, default=None, help="Retention in days (default: the setting)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = housekeeping.prune(days=options["days"], dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        verb = "Would delete" if report.dry_run else "Deleted"
        for name, count in report.counts.items():
            self.stdout.write(f"{verb} {count} {name.replace('_', ' ')} (before {report.before}).")
        if report.more:
            self.stdout.write("More is left for the next run: " + ", ".join(report.more) + ".")
