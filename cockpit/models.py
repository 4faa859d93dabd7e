"""What the cockpit keeps itself: signs of life of beat and the workers, the last ping."""

from __future__ import annotations

from django.db import models

from credentials.models import Partner


class Heartbeat(models.Model):
    """The last sign of life of a process kind: ``beat`` (its scheduler ticks) and ``worker``
    (a worker ran the heartbeat task beat sends). /readyz reads them."""

    name = models.CharField(max_length=32, primary_key=True)
    at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.at}"


class LastPing(models.Model):
    """The last ping of a partner (GET versions), for the ping latency metric."""

    partner = models.OneToOneField(
        Partner, on_delete=models.CASCADE, primary_key=True, related_name="last_ping"
    )
    at = models.DateTimeField()
    millis = models.PositiveIntegerField()
    ok = models.BooleanField()

    def __str__(self) -> str:
        return f"ping of {self.partner_id}: {self.millis} ms"
