"""Shared plumbing of the partner management commands: --json output and --wait."""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from credentials import handshake
from credentials.handshake import HandshakeFailed
from credentials.models import JobKind, Partner, PartnerJob
from ocpi_platform.ocpi.types import format_datetime


def partner_summary(partner: Partner) -> dict[str, Any]:
    return {
        "name": partner.name,
        "state": partner.state,
        "initiated_by": partner.initiated_by,
        "version": partner.version or None,
        "versions_url": partner.versions_url or None,
        "status": partner.status,
        "last_connection": (
            format_datetime(partner.last_connection) if partner.last_connection else None
        ),
        "status_since": format_datetime(partner.status_since) if partner.status_since else None,
        "ping_failures": partner.ping_failures,
        "last_ping_error": partner.last_ping_error or None,
        "registered_at": format_datetime(partner.registered_at) if partner.registered_at else None,
        "roles": [
            {"role": r.role, "country_code": r.country_code, "party_id": r.party_id}
            for r in partner.roles.all()
        ],
        "endpoints": [
            {"identifier": e.identifier, "role": e.role, "url": e.url}
            for e in partner.endpoints.all()
        ],
        "failure_reason": partner.failure_reason or None,
    }


class PartnerCommand(BaseCommand):
    """A command about one partner, with --json; job commands also take --wait."""

    waits = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="The partner's name (as in the admin).")
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")
        if self.waits:
            parser.add_argument(
                "--wait", action="store_true", help="Wait until the task finished; fail if it did."
            )
            parser.add_argument(
                "--timeout", type=float, default=300.0, help="Seconds to wait at most (--wait)."
            )

    def get_partner(self, name: str) -> Partner:
        try:
            return Partner.objects.get(name=name)
        except Partner.DoesNotExist:
            raise CommandError(f"No partner named {name!r}.") from None

    def emit(self, options: dict[str, Any], payload: dict[str, Any], text: str) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            self.stdout.write(text)

    def run_job(self, options: dict[str, Any], job: PartnerJob, started: str) -> None:
        """Report a started job; with --wait, poll it and fail when it failed."""
        if not options.get("wait"):
            self.emit(
                options,
                {"partner": job.partner.name, "job": job.pk, "kind": job.kind, "state": job.state},
                f"{started} (job {job.pk}); the worker runs it.",
            )
            return
        deadline = time.monotonic() + options["timeout"]
        while True:
            job.refresh_from_db()
            if job.done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        partner = Partner.objects.get(pk=job.partner_id)
        payload = {
            "job": job.pk,
            "kind": job.kind,
            "state": job.state,
            "message": job.message or None,
            "partner": partner_summary(partner),
        }
        if not job.done:
            payload["message"] = "Timed out waiting for the worker (is a Celery worker running?)."
            self.emit(options, payload, "")
            raise CommandError(payload["message"])
        if job.state != "SUCCEEDED":
            self.emit(options, payload, "")
            raise CommandError(job.message or "The task failed.")
        self.emit(options, payload, job.message)

    @staticmethod
    def failed(exc: HandshakeFailed) -> CommandError:
        return CommandError(exc.message)


class JobCommand(PartnerCommand):
    """Start a job (rotate, unregister, refresh) on a registered partner."""

    waits = True
    kind: JobKind

    def handle(self, *args: Any, **options: Any) -> None:
        partner = self.get_partner(options["name"])
        try:
            job = handshake.request_job(partner, self.kind)
        except HandshakeFailed as exc:
            raise self.failed(exc) from None
        self.run_job(options, job, f"{self.kind.label.capitalize()} of {partner.name} started")
