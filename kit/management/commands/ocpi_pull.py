"""Pull a partner's objects of one module (``ocpi_pull MODULE NAME``) from its SENDER
interface and store them (``kit.sync``; ``ocpi_pull_locations NAME`` is ``ocpi_pull locations``).

By default the pull runs here, in the foreground, with a progress bar on stderr (when stderr is
a terminal). ``--queue`` hands it to the Celery worker instead and returns at once. A partner
that asks us to retry later (``Retry-After``) leaves the pull WAITING: the worker continues it
then, and the command says so (exit status 0).
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError
from django.db import transaction
from tqdm import tqdm  # type: ignore[import-untyped]

from credentials.management.base import PartnerCommand
from kit import sync
from kit.models import ModuleSync, SyncState
from ocpi_platform.ocpi.types import format_datetime


def sync_summary(row: ModuleSync) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return format_datetime(value) if value is not None else None

    return {
        "state": row.state,
        "full": row.full,
        "pages": row.pages,
        "total": row.total,
        "received": row.received,
        "stored": row.stored,
        "rejected": row.rejected,
        "message": row.message or None,
        "started_at": when(row.started_at),
        "progress_at": when(row.progress_at),
        "finished_at": when(row.finished_at),
        "retry_at": when(row.retry_at),
        "synced_until": when(row.synced_until),
    }


class Command(PartnerCommand):
    help = (
        "Pull a partner's objects of a module (all pages) and store them: the changes since "
        "the last successful pull, or everything with --full."
    )
    module: str | None = None  # fixed by an alias command (ocpi_pull_locations)

    def add_arguments(self, parser: ArgumentParser) -> None:
        if self.module is None:
            names = ", ".join(p.module for p in sync.pullers())
            parser.add_argument("module", help=f"The OCPI module: {names}.")
        super().add_arguments(parser)
        parser.add_argument(
            "--full",
            action="store_true",
            help="Fetch all objects, not only those changed since the last successful pull.",
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Only queue the pull for the Celery worker, and return.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        module = self.module or options["module"]
        try:
            puller = sync.puller_of(module)
        except KeyError:
            names = ", ".join(p.module for p in sync.pullers())
            raise CommandError(f"No pull for module {module!r} (one of: {names}).") from None
        partner = self.get_partner(options["name"])
        full: bool = options["full"]
        noun = puller.noun
        if options["queue"]:
            reason = sync.cannot_pull(puller, partner)
            if reason is not None:
                raise CommandError(f"Cannot pull the {noun} of {partner.name}: {reason}.")
            with transaction.atomic():
                sync.request_pull(puller, partner.pk, full=full)
            kind = "Full pull" if full else "Pull"
            self.emit(
                options,
                {"partner": partner.name, "queued": True, "full": full},
                f"{kind} of {partner.name}'s {noun} queued; the worker runs it.",
            )
            return

        stream = getattr(self.stderr, "_out", sys.stderr)
        unit = " loc" if module == "locations" else " obj"
        bar = tqdm(desc=f"{partner.name} {noun}", unit=unit, file=stream, disable=None, leave=True)

        def progress(row: ModuleSync) -> None:
            if row.total is not None and bar.total != row.total:
                bar.total = row.total
            counts = {"pages": row.pages, "stored": row.stored, "rejected": row.rejected}
            bar.set_postfix(counts, refresh=False)
            bar.update(row.received - bar.n)

        try:
            row = sync.pull(puller, partner.pk, full=full, progress=progress)
        except sync.SyncUnavailable as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        payload = {"partner": partner.name, **sync_summary(row)}
        if row.state == SyncState.WAITING:
            self.emit(options, payload, row.message + " The worker continues the pull then.")
            return
        if row.state != SyncState.DONE:
            self.emit(options, payload, "")
            raise CommandError(row.message or f"The pull ended in state {row.state}.")
        self.emit(options, payload, row.message)
