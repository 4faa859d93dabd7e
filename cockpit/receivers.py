from __future__ import annotations

from typing import Any

from ocpi_platform.ocpi.types import now_utc

from .models import LastPing


def on_partner_pinged(
    sender: Any, *, partner_id: int, millis: int, ok: bool, **kwargs: Any
) -> None:
    LastPing.objects.update_or_create(
        partner_id=partner_id, defaults={"at": now_utc(), "millis": millis, "ok": ok}
    )
