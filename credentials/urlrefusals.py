"""A call the outbound URL policy refused is recorded on the partner (the audit trail)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from ocpi_platform.ocpi.client import UrlRefused
from ocpi_platform.ocpi.types import now_utc

from .models import PartnerEvent

KIND = "url_refused"
# The same refusal is recorded again at most this often (pings, pushes and retries repeat it).
REPEAT_AFTER = timedelta(hours=1)


def record_refusal(partner_id: int, refused: UrlRefused) -> None:
    """An event naming the URL and the rule; an identical one within REPEAT_AFTER is skipped."""
    recent = PartnerEvent.objects.filter(
        partner_id=partner_id,
        kind=KIND,
        message=refused.message,
        created_at__gt=now_utc() - REPEAT_AFTER,
    )
    if not recent.exists():
        PartnerEvent.objects.create(partner_id=partner_id, kind=KIND, message=refused.message)


def recorder(partner_id: int) -> Callable[[UrlRefused], None]:
    """The ``on_refused`` callback of an ``OcpiClient`` calling this partner."""

    def on_refused(refused: UrlRefused) -> None:
        record_refusal(partner_id, refused)

    return on_refused
