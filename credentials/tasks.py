"""Celery tasks of the credentials module: thin adapters around ``handshake`` and ``liveness``."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import handshake, liveness


@shared_task(
    acks_late=True,
    soft_time_limit=handshake.JOB_SOFT_TIME_LIMIT,
    time_limit=handshake.JOB_TIME_LIMIT,
)
def run_partner_job(*, job_id: int) -> None:
    """Connect, rotate, unregister or refresh one partner. Claimed first: safe to run twice."""
    handshake.run_job(job_id)


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def fail_dead_partner_jobs() -> int:
    """Beat: fail the partner jobs whose worker died (still RUNNING past their time limit)."""
    return handshake.fail_dead_jobs()


# A run pings one partner after the other; each ping is bounded by the HTTP timeouts.
@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1860)
def ping_idle_partners() -> list[dict[str, Any]] | None:
    """Beat: ping the partners not seen for OCPI_PING_IDLE_SECONDS (one run at a time)."""
    results = liveness.ping_idle()
    return None if results is None else [r.as_dict() for r in results]


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def ping_partners(*, partner_ids: list[int]) -> list[dict[str, Any]]:
    """Operators' "ping now": ping these partners whatever their idle time."""
    partners = liveness.pingable().filter(pk__in=partner_ids).order_by("name")
    return [liveness.ping(p).as_dict() for p in partners]


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def recover_partner(*, partner_id: int, how: str = liveness.CALLED_US) -> bool:
    """A request came from an OFFLINE partner: make it CONNECTED, with what follows (the full
    resends of the other modules). Idempotent: nothing happens when it is CONNECTED already."""
    return liveness.recover(partner_id, how)
