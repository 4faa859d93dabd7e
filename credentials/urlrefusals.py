"""A call the outbound URL policy refused is recorded on the partner (the audit trail)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ocpi_platform.ocpi.client import UrlRefused

from .models import PartnerEvent

logger = logging.getLogger(__name__)

KIND = "url_refused"


def record_refusal(partner_id: int, refused: UrlRefused) -> None:
    """One event per refusal; the same refusal right after the last one is not repeated (a
    partner pinged every minute at a refused URL does not fill the trail)."""
    last = PartnerEvent.objects.filter(partner_id=partner_id).first()
    if last is not None and last.kind == KIND and last.message == refused.message:
        return
    PartnerEvent.objects.create(partner_id=partner_id, kind=KIND, message=refused.message)


def recorder(partner_id: int) -> Callable[[UrlRefused], None]:
    """The ``on_refused`` callback of an ``OcpiClient`` calling this partner."""

    def on_refused(refused: UrlRefused) -> None:
        record_refusal(partner_id, refused)

    return on_refused
