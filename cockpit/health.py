"""Readiness checks for /readyz: database, broker, beat and a worker, each with a verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from kombu import Connection

from ocpi_platform.ocpi.types import now_utc

from .models import Heartbeat


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def stamp(name: str, detail: str = "") -> None:
    """A sign of life of ``name`` (``beat`` or ``worker``), now."""
    Heartbeat.objects.update_or_create(name=name, defaults={"at": now_utc(), "detail": detail})


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return Check("database", False, f"{type(exc).__name__}: {exc}")
    return Check("database", True, "answers")


def check_broker() -> Check:
    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    try:
        with Connection(url, transport_options=options, connect_timeout=2) as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return Check("broker", False, f"{type(exc).__name__}: {exc}")
    return Check("broker", True, f"{url.split('://', 1)[0]} reachable")


def _heartbeat(name: str, limit: float, what: str) -> Check:
    try:
        beat = Heartbeat.objects.filter(name=name).first()
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    if beat is None:
        return Check(name, False, f"no sign of life of {what} yet")
    age = (now_utc() - beat.at).total_seconds()
    at = _iso(beat.at)
    if age > limit:
        return Check(name, False, f"last sign of life of {what} {age:.0f} s ago ({at})")
    return Check(name, True, f"{what} alive {age:.0f} s ago ({at})")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_beat() -> Check:
    return _heartbeat("beat", settings.OCPI_READY_BEAT_SECONDS, "beat (its scheduler)")


def check_worker() -> Check:
    return _heartbeat(
        "worker", settings.OCPI_READY_WORKER_SECONDS, "a worker (the heartbeat task beat sends)"
    )


CHECKS: tuple[Callable[[], Check], ...] = (check_database, check_broker, check_beat, check_worker)


def readiness() -> list[Check]:
    return [check() for check in CHECKS]
