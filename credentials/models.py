"""The credentials model: one ``Partner`` row per platform we are connected to (or inviting).

Tokens by direction:
* inbound: tokens partners present to us (token A while invited, then the token we issued at
  registration or rotation: TOKEN_C when they registered with us, TOKEN_B when we registered with
  them). Stored as a lookup prefix + keyed HMAC digest only (``InboundToken``).
* outbound: the token the partner issued to us (their TOKEN_A before we register, then their
  TOKEN_C or TOKEN_B). Needed in plain text to call them, so encrypted at rest (Fernet).
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from ocpi_platform.ocpi.principal import TokenEncoding, TokenKind
from ocpi_platform.ocpi.types import InterfaceRole, Role, now_utc


class PartnerState(models.TextChoices):
    INVITED = "INVITED", "invited (waiting for the partner to register with token A)"
    REGISTERING = "REGISTERING", "registering"
    REGISTERED = "REGISTERED", "registered"
    UNREGISTERED = "UNREGISTERED", "unregistered"
    FAILED = "FAILED", "failed"


class ConnectionStatus(models.TextChoices):
    """HubClientInfo ConnectionStatus of the connection."""

    CONNECTED = "CONNECTED"
    OFFLINE = "OFFLINE"
    PLANNED = "PLANNED"
    SUSPENDED = "SUSPENDED"


class Initiative(models.TextChoices):
    PARTNER = "PARTNER", "partner registers with us (we issued token A)"
    US = "US", "we register with the partner (they issued token A)"


class PartnerQuerySet(models.QuerySet["Partner"]):
    def registered(self) -> PartnerQuerySet:
        return self.filter(state=PartnerState.REGISTERED)

    def reachable(self) -> PartnerQuerySet:
        """Registered and CONNECTED: the partners we send to (not OFFLINE, not SUSPENDED)."""
        return self.registered().filter(status=ConnectionStatus.CONNECTED)


class Partner(models.Model):
    name = models.CharField(
        max_length=100, unique=True, help_text="Operator's name for this connection."
    )
    state = models.CharField(
        max_length=16, choices=PartnerState.choices, default=PartnerState.INVITED, db_index=True
    )
    initiated_by = models.CharField(
        max_length=8, choices=Initiative.choices, help_text="Who starts the registration."
    )
    failure_reason = models.TextField(blank=True, help_text="Why the last operation failed.")
    versions_url = models.URLField(
        max_length=255, blank=True, help_text="The partner's versions list endpoint."
    )
    version = models.CharField(max_length=10, blank=True, help_text="Negotiated OCPI version.")
    outbound_token_encrypted = models.TextField(
        blank=True, editable=False, help_text="Token the partner issued to us, Fernet-encrypted."
    )
    outbound_token_hint = models.CharField(
        max_length=8, blank=True, editable=False, help_text="First characters of that token."
    )
    token_encoding = models.CharField(
        max_length=8,
        choices=[(e.value, e.value) for e in TokenEncoding],
        default=TokenEncoding.BASE64,
        help_text="How the partner wants the Authorization token: Base64 (2.2.1) or plain.",
    )
    status = models.CharField(
        max_length=10,
        choices=ConnectionStatus.choices,
        default=ConnectionStatus.PLANNED,
        help_text="HubClientInfo status of this connection.",
    )
    last_connection = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last time the partner was seen: a request from it or a successful call to it.",
    )
    status_since = models.DateTimeField(
        null=True, blank=True, help_text="When the status last changed (ClientInfo last_updated)."
    )
    ping_failures = models.PositiveIntegerField(
        default=0, help_text="Consecutive failed pings (GET on the partner's versions endpoint)."
    )
    last_ping_at = models.DateTimeField(null=True, blank=True)
    last_ping_error = models.TextField(blank=True, help_text="Why the last ping failed.")
    former_parties = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="Parties of the connection when it was unregistered (its ClientInfo stays).",
    )
    registered_at = models.DateTimeField(null=True, blank=True)
    busy_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="A handshake operation is running."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PartnerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_registered(self) -> bool:
        return self.state == PartnerState.REGISTERED

    @property
    def is_reachable(self) -> bool:
        return self.is_registered and self.status == ConnectionStatus.CONNECTED

    @property
    def identity_locked(self) -> bool:
        """Once registered, the (country_code, party_id, role) set is fixed."""
        return self.state == PartnerState.REGISTERED

    def endpoint_url(self, identifier: str, role: InterfaceRole | None = None) -> str | None:
        for endpoint in self.endpoints.all():
            if endpoint.identifier == identifier and (role is None or endpoint.role == role):
                return endpoint.url
        return None


class PartnerRole(models.Model):
    """A party (CredentialsRole) hosted by the partner's platform."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(max_length=5, choices=[(r.value, r.value) for r in Role])
    country_code = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, upper case.")
    party_id = models.CharField(max_length=3, help_text="Upper case.")
    business_details = models.JSONField(default=dict, help_text="OCPI BusinessDetails.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["country_code", "party_id", "role"], name="unique_party_role"
            )
        ]
        ordering = ["country_code", "party_id", "role"]

    def __str__(self) -> str:
        return f"{self.country_code}/{self.party_id} {self.role}"


class PartnerEndpoint(models.Model):
    """One entry of the partner's version details."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="endpoints")
    identifier = models.CharField(max_length=64, help_text="ModuleID, e.g. locations.")
    role = models.CharField(max_length=8, choices=[(r.value, r.value) for r in InterfaceRole])
    url = models.URLField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "identifier", "role"], name="unique_partner_endpoint"
            )
        ]
        ordering = ["identifier", "role"]

    def __str__(self) -> str:
        return f"{self.identifier} {self.role}"


class InboundTokenQuerySet(models.QuerySet["InboundToken"]):
    def active(self, at: datetime | None = None) -> InboundTokenQuerySet:
        moment = at or now_utc()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=moment)
        )


class InboundToken(models.Model):
    """A token a partner presents to us: lookup prefix + HMAC-SHA256 digest, never the value."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="inbound_tokens")
    kind = models.CharField(
        max_length=1,
        choices=[(TokenKind.REGISTRATION.value, "token A"), (TokenKind.REGULAR.value, "regular")],
    )
    prefix = models.CharField(max_length=8, db_index=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=now_utc)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when a rotation replaced it (grace period)."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InboundTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.get_kind_display()})"


class PartnerEvent(models.Model):
    """Audit trail of what happened with a partner (shown in the admin)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=now_utc, db_index=True)
    kind = models.CharField(max_length=32)
    message = models.TextField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"


class StatusChange(models.Model):
    """One change of a partner's HubClientInfo status, with its reason (shown in the admin)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="status_changes")
    created_at = models.DateTimeField(default=now_utc, db_index=True)
    old_status = models.CharField(max_length=10, choices=ConnectionStatus.choices)
    new_status = models.CharField(max_length=10, choices=ConnectionStatus.choices)
    reason = models.TextField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.old_status} -> {self.new_status}: {self.reason[:60]}"


class HubParty(models.Model):
    """A party behind a hub partner, as the hub's ClientInfo pushes describe it.

    A hub lists only itself in its credentials; the parties it connects us to, and whether they
    are reachable, arrive through the hubclientinfo module. Keyed like the spec's ClientInfo:
    country_code, party_id and role (one party id may serve several roles).
    """

    hub = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="hub_parties")
    country_code = models.CharField(max_length=2, help_text="Upper case.")
    party_id = models.CharField(max_length=3, help_text="Upper case.")
    role = models.CharField(max_length=5, choices=[(r.value, r.value) for r in Role])
    status = models.CharField(max_length=10, choices=ConnectionStatus.choices)
    last_updated = models.DateTimeField(help_text="last_updated of the hub's ClientInfo.")
    received_at = models.DateTimeField(default=now_utc)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hub", "country_code", "party_id", "role"], name="unique_hub_party"
            )
        ]
        ordering = ["country_code", "party_id", "role"]
        verbose_name_plural = "hub parties"

    def __str__(self) -> str:
        return f"{self.country_code}/{self.party_id} {self.role} ({self.status})"


class JobKind(models.TextChoices):
    CONNECT = "CONNECT", "connect (register with the partner)"
    ROTATE = "ROTATE", "rotate tokens"
    UNREGISTER = "UNREGISTER", "unregister"
    REFRESH = "REFRESH", "re-fetch endpoints"


class JobState(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class PartnerJob(models.Model):
    """An outbound credentials operation run by a Celery task; commands wait on it."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=12, choices=JobKind.choices)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.PENDING)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now_utc)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.state}"

    @property
    def done(self) -> bool:
        return self.state in (JobState.SUCCEEDED, JobState.FAILED)
