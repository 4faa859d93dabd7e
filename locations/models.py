"""Locations, EVSEs and connectors: ours (we are the CPO) and our partners' (copies they push).

The relational fields are the source of truth for validation, filters and ordering; each
location also keeps its rendered OCPI JSON (``ocpi_json``), rewritten on every write, so that a
list page is assembled from stored text instead of being serialized on every read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from credentials.models import Partner
from kit.models import ModuleSync, SyncState, stamp_modified  # noqa: F401  (SyncState: as before)
from ocpi_platform.ocpi.types import now_utc

from . import schema


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class LocationQuerySet(models.QuerySet["Location"]):
    def ours(self) -> LocationQuerySet:
        return self.filter(partner__isnull=True)

    def shared(self) -> LocationQuerySet:
        """Ours and meant for roaming partners: what the sender interface lists and pushes."""
        return self.filter(partner__isnull=True, shared=True)

    def ci(self, country_code: str, party_id: str, location_id: str) -> LocationQuerySet:
        """Case-insensitive lookup by the OCPI key (uses the unique index on upper case)."""
        return self.filter(
            cc_upper=country_code.upper(),
            pid_upper=party_id.upper(),
            id_upper=location_id.upper(),
        )


class Location(models.Model):
    partner = models.ForeignKey(
        Partner,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="locations",
        help_text="Empty for our own locations; otherwise the partner that owns this copy.",
    )
    shared = models.BooleanField(
        default=True,
        help_text="Sent to roaming partners. Turn off for private locations that must not be "
        "published via OCPI (the OCPI 'publish' flag is about apps, not about roaming).",
    )
    country_code = models.CharField(max_length=2)
    party_id = models.CharField(max_length=3)
    location_id = models.CharField("id", max_length=36, help_text="OCPI Location.id (CiString).")
    # Upper-case copies of the key: one unique b-tree index serves case-insensitive lookups.
    cc_upper = models.CharField(max_length=2, editable=False)
    pid_upper = models.CharField(max_length=3, editable=False)
    id_upper = models.CharField(max_length=36, editable=False)
    publish = models.BooleanField(default=True)
    publish_allowed_to = models.JSONField(null=True, blank=True)
    name = models.CharField(max_length=255, null=True, blank=True)
    address = models.CharField(max_length=255)
    city = models.CharField(max_length=45)
    postal_code = models.CharField(max_length=10, null=True, blank=True)
    state = models.CharField(max_length=45, null=True, blank=True)
    country = models.CharField(max_length=3, help_text="ISO 3166-1 alpha-3.")
    latitude = models.CharField(max_length=10, help_text="Decimal degrees, e.g. 51.047599.")
    longitude = models.CharField(max_length=11, help_text="Decimal degrees, e.g. 3.729944.")
    related_locations = models.JSONField(null=True, blank=True)
    parking_type = models.CharField(
        max_length=20, choices=_choices(schema.PARKING_TYPES), null=True, blank=True
    )
    directions = models.JSONField(null=True, blank=True)
    operator = models.JSONField(null=True, blank=True)
    suboperator = models.JSONField(null=True, blank=True)
    owner = models.JSONField(null=True, blank=True)
    facilities = models.JSONField(null=True, blank=True)
    time_zone = models.CharField(max_length=255, help_text="IANA name, e.g. Europe/Amsterdam.")
    opening_times = models.JSONField(null=True, blank=True)
    charging_when_closed = models.BooleanField(null=True, blank=True)
    images = models.JSONField(null=True, blank=True)
    energy_mix = models.JSONField(null=True, blank=True)
    last_updated = models.DateTimeField(default=now_utc, db_index=True)
    fields_updated = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the location's own fields last changed (last_updated also follows "
        "its EVSEs): an older PATCH of these fields is not applied.",
    )
    created_at = models.DateTimeField(default=now_utc, editable=False)
    # When the row (its JSON, its sharing) last changed, whatever last_updated says: how web
    # processes find what to refresh in their copy of the sender list (locations.listing).
    modified_at = models.DateTimeField(default=now_utc, editable=False)
    ocpi_json = models.TextField(
        default="", editable=False, help_text="The rendered OCPI Location, kept on every write."
    )

    objects = LocationQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                "cc_upper", "pid_upper", "id_upper", name="location_unique_ci_key"
            ),
        ]
        indexes = [
            # The sender list: our shared locations in a stable order, filtered by date.
            models.Index(
                fields=["id"],
                name="location_shared_list",
                include=["last_updated"],
                condition=models.Q(partner__isnull=True, shared=True),
            ),
            models.Index(
                fields=["modified_at"],
                name="location_own_modified",
                condition=models.Q(partner__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.country_code}/{self.party_id}/{self.location_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.cc_upper = self.country_code.upper()
        self.pid_upper = self.party_id.upper()
        self.id_upper = self.location_id.upper()
        stamp_modified(self, kwargs)
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class Evse(models.Model):
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="evses")
    position = models.PositiveIntegerField(default=0, help_text="Order within the location.")
    uid = models.CharField(max_length=36, help_text="OCPI EVSE.uid (CiString).")
    uid_upper = models.CharField(max_length=36, editable=False)
    evse_id = models.CharField(max_length=48, null=True, blank=True, help_text="eMI3 EVSE ID.")
    status = models.CharField(max_length=12, choices=_choices(schema.EVSE_STATUSES))
    status_schedule = models.JSONField(null=True, blank=True)
    capabilities = models.JSONField(null=True, blank=True)
    floor_level = models.CharField(max_length=4, null=True, blank=True)
    latitude = models.CharField(max_length=10, null=True, blank=True)
    longitude = models.CharField(max_length=11, null=True, blank=True)
    physical_reference = models.CharField(max_length=16, null=True, blank=True)
    directions = models.JSONField(null=True, blank=True)
    parking_restrictions = models.JSONField(null=True, blank=True)
    images = models.JSONField(null=True, blank=True)
    last_updated = models.DateTimeField(default=now_utc)
    fields_updated = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the EVSE's own fields last changed (last_updated also follows its "
        "connectors).",
    )

    class Meta:
        ordering = ["location", "position", "id"]
        verbose_name = "EVSE"
        constraints = [
            models.UniqueConstraint("location", "uid_upper", name="evse_unique_ci_uid"),
        ]

    def __str__(self) -> str:
        return f"{self.uid} ({self.status})"

    def save(self, *args: object, **kwargs: object) -> None:
        self.uid_upper = self.uid.upper()
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class Connector(models.Model):
    evse = models.ForeignKey(Evse, on_delete=models.CASCADE, related_name="connectors")
    position = models.PositiveIntegerField(default=0, help_text="Order within the EVSE.")
    connector_id = models.CharField("id", max_length=36, help_text="OCPI Connector.id.")
    id_upper = models.CharField(max_length=36, editable=False)
    standard = models.CharField(max_length=32, choices=_choices(schema.CONNECTOR_TYPES))
    format = models.CharField(max_length=6, choices=_choices(schema.CONNECTOR_FORMATS))
    power_type = models.CharField(max_length=16, choices=_choices(schema.POWER_TYPES))
    max_voltage = models.PositiveIntegerField()
    max_amperage = models.PositiveIntegerField()
    max_electric_power = models.PositiveIntegerField(null=True, blank=True)
    tariff_ids = models.JSONField(null=True, blank=True)
    terms_and_conditions = models.URLField(max_length=255, null=True, blank=True)
    last_updated = models.DateTimeField(default=now_utc)

    class Meta:
        ordering = ["evse", "position", "id"]
        constraints = [
            models.UniqueConstraint("evse", "id_upper", name="connector_unique_ci_id"),
        ]

    def __str__(self) -> str:
        return f"{self.connector_id} {self.standard}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.id_upper = self.connector_id.upper()
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class LocationSyncManager(models.Manager["LocationSync"]):
    def get_queryset(self) -> models.QuerySet[LocationSync]:
        return super().get_queryset().filter(module="locations")


class LocationSync(ModuleSync):
    """The pull of a partner's locations: the kit's sync row of (partner, "locations")."""

    objects: ClassVar[LocationSyncManager] = LocationSyncManager()

    class Meta:
        proxy = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.module = "locations"
        super().save(*args, **kwargs)
