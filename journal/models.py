"""The request journal: one row per call between us and a partner, in either direction.

No bodies and no tokens by default. Bodies are kept only while a partner's ``BodyCapture`` runs
(an operator turns it on for debugging, until a time), and then with every token redacted.
"""

from __future__ import annotations

from django.db import models

from credentials.models import Partner


class Direction(models.TextChoices):
    IN = "IN", "inbound (the partner called us)"
    OUT = "OUT", "outbound (we called the partner)"


class Entry(models.Model):
    created_at = models.DateTimeField(db_index=True, help_text="When the request started.")
    partner = models.ForeignKey(
        Partner,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="journal_entries",
        help_text="Empty for an inbound request whose token matched no partner.",
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    method = models.CharField(max_length=10)
    path = models.CharField(
        max_length=1000,
        help_text="Inbound: path and query; outbound: the URL without user info. Values of "
        "query parameters that look secret are replaced by ***.",
    )
    http_status = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name="HTTP", help_text="Empty: no answer (see error)."
    )
    ocpi_status = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="OCPI", help_text="The envelope's status_code."
    )
    duration_ms = models.PositiveIntegerField(verbose_name="ms")
    request_id = models.CharField(max_length=255, blank=True, verbose_name="X-Request-ID")
    correlation_id = models.CharField(
        max_length=255, blank=True, db_index=True, verbose_name="X-Correlation-ID"
    )
    error = models.TextField(blank=True, help_text="Why the call failed, in our words.")
    request_body = models.TextField(blank=True, help_text="Only while bodies are journaled.")
    response_body = models.TextField(blank=True, help_text="Only while bodies are journaled.")

    class Meta:
        verbose_name = "journal entry"
        verbose_name_plural = "request journal"
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["partner", "-created_at"], name="journal_partner_time")]

    def __str__(self) -> str:
        return f"{self.direction} {self.method} {self.path} -> {self.http_status}"


class BodyCapture(models.Model):
    """While ``until`` is in the future, the partner's calls are journaled with their bodies."""

    partner = models.OneToOneField(
        Partner, primary_key=True, on_delete=models.CASCADE, related_name="journal_bodies"
    )
    until = models.DateTimeField(verbose_name="journal bodies until")
    set_by = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name = "body capture"

    def __str__(self) -> str:
        return f"bodies of {self.partner_id} until {self.until}"


class RunState(models.TextChoices):
    PENDING = "PENDING", "queued"
    RUNNING = "RUNNING", "running"
    DONE = "DONE", "done"
    FAILED = "FAILED", "could not run"


class DoctorRun(models.Model):
    """One run of the partner doctor, asked for in the admin and run by a Celery worker."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="doctor_runs")
    requested_by = models.CharField(max_length=150, blank=True, help_text="Who asked for it.")
    requested_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.PENDING)
    verdict = models.CharField(
        max_length=4, blank=True, help_text="The worst verdict of the checks (PASS, WARN, FAIL)."
    )
    versions_url = models.CharField(max_length=1000, blank=True, help_text="What was checked.")
    checks = models.JSONField(
        default=list, blank=True, help_text="A {name, verdict, summary, advice} per check."
    )
    problem = models.TextField(blank=True, help_text="Why the doctor could not run (or finish).")

    class Meta:
        verbose_name = "doctor run"
        ordering = ("-requested_at", "-id")
        indexes = [models.Index(fields=["partner", "-requested_at"], name="journal_doctor_partner")]

    def __str__(self) -> str:
        return f"doctor run {self.pk} of {self.partner.name} ({self.get_state_display()})"

    @property
    def is_active(self) -> bool:
        return self.state in (RunState.PENDING, RunState.RUNNING)
