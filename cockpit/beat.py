"""Beat's scheduler: django-celery-beat's, stamping beat's heartbeat (for /readyz)."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)
STAMP_SECONDS = 10.0


class StampingDatabaseScheduler(DatabaseScheduler):  # type: ignore[misc]
    _stamped = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._stamped >= STAMP_SECONDS:
            self._stamped = now
            try:
                from .health import stamp

                stamp("beat", socket.gethostname())
            except Exception:  # a stamp must never stop beat
                logger.exception("Could not stamp beat's heartbeat")
        return interval
