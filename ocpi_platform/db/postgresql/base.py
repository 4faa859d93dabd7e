"""PostgreSQL as Django's backend, with a health check that costs a round trip only when due.

With ``CONN_HEALTH_CHECKS`` Django asks a persistent connection ``SELECT 1`` before the first
query of every request: on the hot paths (a real-time authorization, an EVSE status PATCH) that
is a second round trip per request and a sixth of the CPU. Here a connection that worked in a
request that ended less than ``DATABASE_HEALTH_CHECK_IDLE_SECONDS`` ago (default 1) is taken to
be alive; one that sat idle for longer, or whose last request met a database error, is checked
as Django does. A connection the server dropped within that second fails one query, which
Django then closes (its errors are seen at the end of that request) and opens again.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    health_check_done: bool
    alive_at = -math.inf  # when a request that used this connection without error ended

    def close_if_health_check_failed(self) -> None:
        idle = float(getattr(settings, "DATABASE_HEALTH_CHECK_IDLE_SECONDS", 1.0))
        if (
            self.connection is not None
            and self.settings_dict["CONN_HEALTH_CHECKS"]
            and not self.health_check_done
            and time.monotonic() - self.alive_at < idle
        ):
            self.health_check_done = True  # worked a moment ago: no SELECT 1
            return
        super().close_if_health_check_failed()

    def close_if_unusable_or_obsolete(self) -> None:
        # At the end of a request (and of a task): health_check_done says a cursor was taken.
        worked = self.connection is not None and self.health_check_done and not self.errors_occurred
        super().close_if_unusable_or_obsolete()
        if worked and self.connection is not None:
            self.alive_at = time.monotonic()
