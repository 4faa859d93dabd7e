from __future__ import annotations

import socket

from celery import shared_task

from . import health


@shared_task(acks_late=True, soft_time_limit=10, time_limit=20)
def heartbeat() -> None:
    """Beat, every OCPI_HEARTBEAT_SECONDS: a worker is alive (read by /readyz)."""
    health.stamp("worker", socket.gethostname())
