"""Housekeeping: prune what is done once it is older than OCPI_RETENTION_DAYS.

Project level (it may import the apps; the core ``ocpi_platform/ocpi`` may not). What goes:

* outbox deliveries that are SENT or CANCELLED (by the time of their last change); FAILED rows
  stay until an operator handled them (a retry makes them PENDING again, then SENT) or a later
  delivered PUT resolved them (CANCELLED, see outbox.services);
* partner events;
* status changes, except the newest one of each partner (it says why the status is what it is);
* partner jobs that finished (SUCCEEDED or FAILED); pending and running ones stay;
* request journal entries, after OCPI_JOURNAL_RETENTION_DAYS (or the run's shorter --days).

Rows are deleted in batches of ids (``BATCH`` per DELETE, at most ``MAX_BATCHES`` per kind and
run), so a run never holds long locks; a backlog is worked off over the next runs. Safe to run
twice at once: a row deleted by the other run is simply not found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Model, OuterRef, QuerySet, Subquery

from credentials.models import JobState, PartnerEvent, PartnerJob, StatusChange
from journal.models import Entry
from ocpi_platform.locks import single_run
from ocpi_platform.ocpi.types import now_utc
from outbox.models import Delivery, DeliveryState

logger = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 50
LOCK = "housekeeping-prune"


def cutoff(at: datetime | None = None, days: float | None = None) -> datetime:
    keep = float(settings.OCPI_RETENTION_DAYS if days is None else days)
    return (at or now_utc()) - timedelta(days=keep)


def done_deliveries(before: datetime) -> QuerySet[Delivery]:
    return Delivery.objects.filter(
        state__in=[DeliveryState.SENT, DeliveryState.CANCELLED], updated_at__lt=before
    )


def old_events(before: datetime) -> QuerySet[PartnerEvent]:
    return PartnerEvent.objects.filter(created_at__lt=before)


def old_status_changes(before: datetime) -> QuerySet[StatusChange]:
    newest = (
        StatusChange.objects.filter(partner=OuterRef("partner"))
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    return StatusChange.objects.filter(created_at__lt=before).exclude(pk=Subquery(newest))


def finished_jobs(before: datetime) -> QuerySet[PartnerJob]:
    return PartnerJob.objects.filter(
        state__in=[JobState.SUCCEEDED, JobState.FAILED], finished_at__lt=before
    )


def old_journal_entries(before: datetime) -> QuerySet[Entry]:
    """Older than OCPI_JOURNAL_RETENTION_DAYS, or than the run's cutoff when that is later."""
    journal = now_utc() - timedelta(days=float(settings.OCPI_JOURNAL_RETENTION_DAYS))
    return Entry.objects.filter(created_at__lt=max(before, journal))


KINDS: dict[str, Callable[[datetime], QuerySet[Any]]] = {
    "deliveries": done_deliveries,
    "partner_events": old_events,
    "status_changes": old_status_changes,
    "partner_jobs": finished_jobs,
    "journal_entries": old_journal_entries,
}


@dataclass
class PruneReport:
    before: str
    dry_run: bool
    # Per kind: rows deleted (or, in a dry run, that would be).
    counts: dict[str, int] = field(default_factory=dict)
    # Kinds that still have rows to prune after this run's batch budget.
    more: list[str] = field(default_factory=list)
    skipped: bool = False  # another run held the lock

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _delete_in_batches(
    make: Callable[[datetime], QuerySet[Model]],
    before: datetime,
    batch: int,
    max_batches: int,
) -> tuple[int, bool]:
    """Delete the rows of ``make(before)`` by batches of ids; (deleted, rows left over)."""
    deleted = 0
    for _ in range(max_batches):
        ids = list(make(before).order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted, False
        # The query again, restricted to these ids: a row that changed meanwhile (a FAILED
        # delivery retried, the newest status change) no longer qualifies and stays.
        count, _ = make(before).filter(pk__in=ids).delete()
        deleted += count
        if len(ids) < batch:
            return deleted, False
    return deleted, make(before).exists()


def prune(
    *,
    at: datetime | None = None,
    days: float | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> PruneReport:
    """Delete what is done and older than the retention (see the module docstring)."""
    before = cutoff(at, days)
    report = PruneReport(before=before.isoformat(), dry_run=dry_run)
    for name, make in KINDS.items():
        if dry_run:
            report.counts[name] = make(before).count()
            continue
        deleted, more = _delete_in_batches(make, before, batch, max_batches)
        report.counts[name] = deleted
        if more:
            report.more.append(name)
    if not dry_run and any(report.counts.values()):
        logger.info("Housekeeping: pruned %s (older than %s).", report.counts, report.before)
    return report


def prune_once() -> PruneReport:
    """Beat: one prune at a time across beats and workers."""
    with single_run(LOCK, ttl=600) as held:
        if held is None:
            return PruneReport(before=cutoff().isoformat(), dry_run=False, skipped=True)
        return prune()
