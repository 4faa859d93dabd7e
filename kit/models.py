"""Storage of the kit: the abstract base of a document-stored OCPI object, and the pull state.

An ``OcpiObject`` row is one client owned object, ours (``partner`` empty) or a partner's copy.
The OCPI JSON (``ocpi_json``) is the document: rendered once on every write, served as stored.
The key columns are kept with upper-case shadows so that one unique b-tree index serves the
case-insensitive lookups (CiString ids); ``object_type`` is the second key part of modules that
have one (tokens: the token type, an enum compared exactly), empty otherwise.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from credentials.models import Partner
from ocpi_platform.ocpi.types import now_utc


def stamp_modified(row: Any, save_kwargs: dict[str, Any]) -> None:
    """Before a save: ``modified_at`` = now, also written by a save of some fields only."""
    row.modified_at = now_utc()
    update_fields = save_kwargs.get("update_fields")
    if update_fields is not None:
        save_kwargs["update_fields"] = {*update_fields, "modified_at"}


class OcpiObjectQuerySet(models.QuerySet[Any]):
    def ours(self) -> OcpiObjectQuerySet:
        return self.filter(partner__isnull=True)

    def of(self, owner: int | None) -> OcpiObjectQuerySet:
        return self.ours() if owner is None else self.filter(partner_id=owner)

    def ci(
        self, country_code: str, party_id: str, object_id: str, object_type: str = ""
    ) -> OcpiObjectQuerySet:
        return self.filter(
            cc_upper=country_code.upper(),
            pid_upper=party_id.upper(),
            id_upper=object_id.upper(),
            object_type=object_type,
        )


class OcpiObject(models.Model):
    partner = models.ForeignKey(
        Partner,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for our own objects; otherwise the partner that owns this copy.",
    )
    country_code = models.CharField(max_length=2)
    party_id = models.CharField(max_length=3)
    object_id = models.CharField("id", max_length=36, help_text="The OCPI object id (CiString).")
    object_type = models.CharField(
        "type", max_length=16, blank=True, default="", help_text="Second key part, if any."
    )
    cc_upper = models.CharField(max_length=2, editable=False)
    pid_upper = models.CharField(max_length=3, editable=False)
    id_upper = models.CharField(max_length=36, editable=False)
    last_updated = models.DateTimeField(default=now_utc, db_index=True)
    ocpi_json = models.TextField(
        default="", editable=False, help_text="The rendered OCPI object, kept on every write."
    )
    created_at = models.DateTimeField(default=now_utc, editable=False)
    # When the row last changed, whatever last_updated says (the per-process list copy).
    modified_at = models.DateTimeField(default=now_utc, editable=False)

    objects = OcpiObjectQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["id"]

    def __str__(self) -> str:
        suffix = f" ({self.object_type})" if self.object_type else ""
        return f"{self.country_code}/{self.party_id}/{self.object_id}{suffix}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.prepare()
        stamp_modified(self, kwargs)
        super().save(*args, **kwargs)

    def prepare(self) -> None:
        """The shadow columns of a write (``save`` does it; a bulk write calls it itself)."""
        self.cc_upper = self.country_code.upper()
        self.pid_upper = self.party_id.upper()
        self.id_upper = self.object_id.upper()
        self.modified_at = now_utc()

    def assign(self, validated: dict[str, Any]) -> None:
        """Copy what the model keeps in columns of its own from a validated object (the
        document itself is stored by the kit): override where indexed columns pay."""

    @staticmethod
    def key_constraints() -> list[models.BaseConstraint]:
        """The unique case-insensitive key (use in the concrete model's Meta.constraints)."""
        return [
            models.UniqueConstraint(
                "cc_upper",
                "pid_upper",
                "id_upper",
                "object_type",
                name="%(app_label)s_%(class)s_unique_ci_key",
            )
        ]

    @staticmethod
    def list_indexes() -> list[models.Index]:
        """What the sender list and its per-process copy read (Meta.indexes)."""
        return [
            models.Index(
                fields=["modified_at"],
                name="%(app_label)s_%(class)s_own_mod",
                condition=models.Q(partner__isnull=True),
            ),
        ]


class SyncState(models.TextChoices):
    NEVER = "NEVER", "Never run"
    QUEUED = "QUEUED", "Queued"
    RUNNING = "RUNNING", "Running"
    WAITING = "WAITING", "Waiting (the partner asked us to retry later)"
    DONE = "DONE", "Done"
    FAILED = "FAILED", "Failed"


class ModuleSync(models.Model):
    """Pulling a partner's objects of one module (we receive): progress and the last sync."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="module_syncs")
    module = models.CharField(max_length=20, help_text="The OCPI module id (locations, ...).")
    state = models.CharField(max_length=8, choices=SyncState.choices, default=SyncState.NEVER)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of the run (each page): a running pull silent for longer "
        "is taken to have died.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A waiting pull continues at this time (the partner's Retry-After).",
    )
    waits = models.PositiveSmallIntegerField(
        default=0, help_text="Consecutive waits the partner asked for without a page between."
    )
    next_url = models.TextField(
        blank=True, help_text="The next page to read: where a waiting pull continues."
    )
    full = models.BooleanField(default=True, help_text="Whether the run fetches everything.")
    pages = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True, help_text="X-Total-Count.")
    received = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    synced_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Start of the last successful sync: the next one asks for date_from=this.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint("partner", "module", name="module_sync_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.module} sync of {self.partner_id}: {self.state}"
