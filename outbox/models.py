"""The durable outbox: one row per message we owe a partner (spec transport › Push).

A service that changes data partners must hear about writes the rows in the same transaction
as the change; a Celery task sends them after commit. Rows of one partner are sent in order, one
at a time; a newer change of the same object folds into its pending row (the newest state wins).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from credentials.models import Partner
from ocpi_platform.ocpi.types import now_utc


class DeliveryState(models.TextChoices):
    PENDING = "PENDING", "Pending"
    SENDING = "SENDING", "Sending"
    SENT = "SENT", "Sent"
    FAILED = "FAILED", "Failed (permanent)"
    CANCELLED = "CANCELLED", "Cancelled"


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def open(self) -> DeliveryQuerySet:
        """Not yet sent and still to be sent (pending or in flight)."""
        return self.filter(state__in=[DeliveryState.PENDING, DeliveryState.SENDING])

    def failed_count(self) -> int:
        """Rows refused for good and not retried: what an operator alerts on."""
        return self.filter(state=DeliveryState.FAILED).count()

    def counts_by_partner(self) -> list[dict[str, Any]]:
        """Per partner with open or failed rows: ``partner_id``, ``partner__name``, ``pending``
        (pending or in flight), ``failed``; by partner name."""
        open_states = [DeliveryState.PENDING, DeliveryState.SENDING]
        return list(
            self.filter(state__in=[*open_states, DeliveryState.FAILED])
            .values("partner_id", "partner__name")
            .annotate(
                pending=models.Count("pk", filter=models.Q(state__in=open_states)),
                failed=models.Count("pk", filter=models.Q(state=DeliveryState.FAILED)),
            )
            .order_by("partner__name", "partner_id")
        )


class Delivery(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="deliveries")
    module = models.CharField(max_length=32, help_text="OCPI module, e.g. locations.")
    key = models.CharField(
        max_length=400,
        help_text="The object's path under the partner's module endpoint, upper case: "
        "the coalescing key (COUNTRY/PARTY/LOCATION[/EVSE[/CONNECTOR]]).",
    )
    path = models.CharField(
        max_length=400, help_text="Path appended to the partner's endpoint, as spelled by us."
    )
    method = models.CharField(max_length=6, help_text="PUT or PATCH.")
    body = models.JSONField(help_text="The JSON body; folded changes update it.")
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=now_utc)
    last_error = models.TextField(blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    ocpi_status = models.PositiveIntegerField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    from_country_code = models.CharField(max_length=2, blank=True)
    from_party_id = models.CharField(max_length=3, blank=True)
    to_country_code = models.CharField(max_length=2, blank=True)
    to_party_id = models.CharField(max_length=3, blank=True)
    changes = models.PositiveIntegerField(
        default=1, help_text="How many changes this row carries (folded into one message)."
    )
    created_at = models.DateTimeField(default=now_utc)
    updated_at = models.DateTimeField(default=now_utc)
    sent_at = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(
        null=True,
        blank=True,
        help_text="Written by the drain that took the row to send it: the outcome of that "
        "send is stored only while the row still carries it (not reset or folded into since).",
    )

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["partner", "id"],
                name="outbox_open_by_partner",
                condition=models.Q(state__in=["PENDING", "SENDING"]),
            ),
            models.Index(
                fields=["partner", "key"],
                name="outbox_pending_by_key",
                condition=models.Q(state="PENDING"),
            ),
            # Refused PUTs: a later PATCH of the object (or below it) goes as a PUT instead.
            models.Index(
                fields=["partner", "key"],
                name="outbox_failed_by_key",
                condition=models.Q(state="FAILED"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.module}/{self.path} to {self.partner.name} ({self.state})"


class OutboxLease(models.Model):
    """Who drains a partner's outbox right now: one sender per partner keeps the order.

    The lease is short and renewed while its drain runs (with each batch of rows it takes,
    before a row when a third of the lease has passed, and by a heartbeat while a request is
    in flight): a drain whose worker was killed holds it for at most
    OCPI_OUTBOX_LEASE_SECONDS. ``owner`` names the drain (its Celery task id), so a drain
    that lost its lease stops and never releases the lease of the drain that took it over.
    """

    partner = models.OneToOneField(
        Partner, on_delete=models.CASCADE, primary_key=True, related_name="outbox_lease"
    )
    until = models.DateTimeField(null=True, blank=True)
    owner = models.CharField(
        max_length=64, blank=True, help_text="The drain holding the lease (its task id)."
    )
    not_before = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Nothing is sent to the partner before this time (its Retry-After).",
    )
    scheduled_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A drain task is queued for the partner, due at this time: a change queues "
        "another only when this is empty (one queued task per partner, whatever the number of "
        "changes). The drain clears it when it starts.",
    )
    recheck = models.BooleanField(
        default=False,
        db_default=False,
        help_text="A drain found the lease held: the drain holding it looks for new rows again "
        "when it releases the lease, and changes meanwhile queue no task.",
    )

    def __str__(self) -> str:
        return f"lease of {self.partner_id} until {self.until}"

    @property
    def held(self) -> bool:
        return self.until is not None and self.until > now_utc()
