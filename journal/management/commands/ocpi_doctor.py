from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from credentials.management.base import PartnerCommand
from journal import doctor


class Command(PartnerCommand):
    help = (
        "Run read-only checks against a registered partner (versions, details, envelopes, "
        "paging, date filters, token encoding, 401 on a wrong token, trailing slashes) and "
        "print a verdict per check with advice. Only GETs: safe against production. "
        "Exit status 1 when a check fails."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        partner = self.get_partner(options["name"])
        try:
            report = doctor.diagnose(partner)
        except doctor.NotDiagnosable as exc:
            raise CommandError(str(exc)) from None
        self.emit(options, report.as_dict(), report.as_text())
        failed = sum(c.verdict == doctor.Verdict.FAIL for c in report.checks)
        if failed:
            raise CommandError(f"{failed} check(s) failed.")
