"""The figures of the cockpit (admin index) and of /metrics: read-only queries, one each.

Every function here answers from the database, so the figures are those of all web processes
and workers together (a worker's pings and pulls included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import TruncHour

from credentials.models import ConnectionStatus, Partner, PartnerState
from kit.models import ModuleSync, SyncState
from ocpi_platform.ocpi.types import now_utc
from outbox.models import Delivery, DeliveryState

OPEN_STATES = (DeliveryState.PENDING, DeliveryState.SENDING)
HOURS = 24


@dataclass(frozen=True)
class PartnerStatus:
    pk: int
    name: str
    status: str
    since: datetime | None


@dataclass(frozen=True)
class StatusSummary:
    counts: dict[str, int]  # ConnectionStatus value -> registered partners
    offline: list[PartnerStatus]  # oldest outage first
    suspended: list[PartnerStatus]
    not_registered: int  # invited, registering, failed (unregistered ones are not counted)


def partners_by_status() -> StatusSummary:
    """Registered partners by HubClientInfo status; who is OFFLINE since when, who SUSPENDED."""
    rows = [
        PartnerStatus(pk, name, status, since)
        for pk, name, status, since in Partner.objects.filter(state=PartnerState.REGISTERED)
        .order_by("name", "pk")
        .values_list("pk", "name", "status", "status_since")
    ]
    counts = {status.value: 0 for status in ConnectionStatus}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    offline = sorted(
        (r for r in rows if r.status == ConnectionStatus.OFFLINE),
        key=lambda r: (r.since is None, r.since or now_utc()),
    )
    not_registered = (
        Partner.objects.exclude(state__in=[PartnerState.REGISTERED, PartnerState.UNREGISTERED])
        .only("pk")
        .count()
    )
    return StatusSummary(
        counts=counts,
        offline=offline,
        suspended=[r for r in rows if r.status == ConnectionStatus.SUSPENDED],
        not_registered=not_registered,
    )


@dataclass(frozen=True)
class OutboxRow:
    partner_id: int
    name: str
    pending: int  # pending or in flight
    failed: int
    oldest_pending: datetime | None

    def oldest_age(self, now: datetime) -> float | None:
        return None if self.oldest_pending is None else (now - self.oldest_pending).total_seconds()


@dataclass(frozen=True)
class OutboxSummary:
    rows: list[OutboxRow]  # partners with pending or failed rows, by name
    pending: int
    failed: int
    oldest_pending: datetime | None

    def oldest_age(self, now: datetime) -> float | None:
        return None if self.oldest_pending is None else (now - self.oldest_pending).total_seconds()


def outbox() -> OutboxSummary:
    """Pending (or in flight) and failed deliveries per partner, and the oldest pending one."""
    rows = [
        OutboxRow(
            partner_id=row["partner_id"],
            name=row["partner__name"],
            pending=row["pending"],
            failed=row["failed"],
            oldest_pending=row["oldest"],
        )
        for row in Delivery.objects.filter(state__in=[*OPEN_STATES, DeliveryState.FAILED])
        .values("partner_id", "partner__name")
        .annotate(
            pending=Count("pk", filter=Q(state__in=OPEN_STATES)),
            failed=Count("pk", filter=Q(state=DeliveryState.FAILED)),
            oldest=Min("created_at", filter=Q(state__in=OPEN_STATES)),
        )
        .order_by("partner__name", "partner_id")
    ]
    oldest = [r.oldest_pending for r in rows if r.oldest_pending is not None]
    return OutboxSummary(
        rows=rows,
        pending=sum(r.pending for r in rows),
        failed=sum(r.failed for r in rows),
        oldest_pending=min(oldest) if oldest else None,
    )


def deliveries_by_state() -> list[tuple[int, str, str, int]]:
    """(partner id, partner name, state, rows) of the outbox as kept (see OCPI_RETENTION_DAYS)."""
    return [
        (row["partner_id"], row["partner__name"], row["state"], row["n"])
        for row in Delivery.objects.values("partner_id", "partner__name", "state")
        .annotate(n=Count("pk"))
        .order_by("partner__name", "partner_id", "state")
    ]


@dataclass
class Activity:
    """Deliveries created per hour over the last 24 hours, and how many of them had an error
    (failed for good, or a failed attempt on the way); index 0 is the oldest hour."""

    partner_id: int
    name: str
    deliveries: list[int] = field(default_factory=lambda: [0] * HOURS)
    errors: list[int] = field(default_factory=lambda: [0] * HOURS)

    @property
    def total(self) -> int:
        return sum(self.deliveries)

    @property
    def total_errors(self) -> int:
        return sum(self.errors)


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def activity(now: datetime | None = None) -> list[Activity]:
    """Per partner with deliveries in the last 24 hours (this hour included), by name."""
    now = now or now_utc()
    first = hour_start(now) - timedelta(hours=HOURS - 1)
    by_partner: dict[int, Activity] = {}
    errors = Q(state=DeliveryState.FAILED) | ~Q(last_error="")
    rows = (
        Delivery.objects.filter(created_at__gte=first)
        .annotate(hour=TruncHour("created_at"))
        .values("partner_id", "partner__name", "hour")
        .annotate(n=Count("pk"), errors=Count("pk", filter=errors))
        .order_by()
    )
    for row in rows:
        item = by_partner.setdefault(
            row["partner_id"], Activity(row["partner_id"], row["partner__name"])
        )
        index = int((row["hour"] - first).total_seconds() // 3600)
        if 0 <= index < HOURS:
            item.deliveries[index] += row["n"]
            item.errors[index] += row["errors"]
    return sorted(by_partner.values(), key=lambda a: (a.name, a.partner_id))


@dataclass(frozen=True)
class Pull:
    partner_id: int
    name: str
    module: str
    state: str
    started_at: datetime | None
    finished_at: datetime | None
    synced_until: datetime | None  # start of the last successful pull
    message: str

    @property
    def duration(self) -> float | None:
        """Seconds the last finished pull took."""
        if self.started_at is None or self.finished_at is None:
            return None
        if self.state not in (SyncState.DONE, SyncState.FAILED):
            return None
        return max((self.finished_at - self.started_at).total_seconds(), 0.0)


def last_pulls() -> list[Pull]:
    """The last pull per partner and module, by partner name.

    Every module's pulls: the kit keeps one sync row per partner and module (``ModuleSync``).
    """
    return [
        Pull(
            partner_id=sync.partner_id,
            name=sync.partner.name,
            module=sync.module,
            state=sync.state,
            started_at=sync.started_at,
            finished_at=sync.finished_at,
            synced_until=sync.synced_until,
            message=sync.message,
        )
        for sync in ModuleSync.objects.select_related("partner").order_by(
            "partner__name", "partner_id", "module"
        )
    ]
