"""The credentials handshake in both directions, token rotation and unregistering.

Never holds a database transaction open across an HTTP call: partners are called first (or
after a short transaction that issues a token), then the outcome is stored in one short atomic
block on the locked partner row.

Token letters, by direction:
* the partner registers with us: token A is ours (inbound), the partner offers its TOKEN_B
  (our outbound), we answer with TOKEN_C (inbound);
* we register with the partner: token A is theirs (outbound until replaced), we offer TOKEN_B
  (inbound), they answer with TOKEN_C (outbound).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from ocpi_platform.ocpi.client import OcpiClient, PartnerError
from ocpi_platform.ocpi.envelope import describe_validation_errors
from ocpi_platform.ocpi.errors import InvalidParameters, MethodNotAllowed, OcpiError, ServerError
from ocpi_platform.ocpi.parties import Party, our_parties
from ocpi_platform.ocpi.principal import PartnerPrincipal, TokenEncoding, TokenKind
from ocpi_platform.ocpi.registry import VERSION, versions_url
from ocpi_platform.ocpi.types import Role, now_utc, validate_credentials_token, validate_url
from ocpi_platform.ocpi.urlpolicy import PolicyViolation
from ocpi_platform.ocpi.urlpolicy import current as url_policy

from . import liveness, signals, tokens, urlrefusals
from .discovery import Discovery, DiscoveryFailed, discover
from .models import (
    ConnectionStatus,
    InboundToken,
    Initiative,
    JobKind,
    JobState,
    Partner,
    PartnerEndpoint,
    PartnerEvent,
    PartnerJob,
    PartnerRole,
    PartnerState,
)
from .serializers import CredentialsSerializer, drop_invalid_optional, strip_nulls

logger = logging.getLogger(__name__)

BUSY_TIMEOUT = timedelta(minutes=5)

# The time limits of the task that runs a PartnerJob (credentials.tasks.run_partner_job). A
# connect makes up to three calls (versions, details, the POST that waits for the partner's
# callbacks: OCPI_HTTP_HANDSHAKE_TIMEOUT), each possibly twice (401 -> unencoded token): a slow
# but healthy partner needs more than two minutes at worst.
JOB_SOFT_TIME_LIMIT = 240
JOB_TIME_LIMIT = 270
# A job still RUNNING this long after its start outlived its task's hard time limit: the worker
# running it died (OOM, SIGKILL). The margin covers clock differences between hosts.
JOB_DEAD_AFTER = timedelta(seconds=JOB_TIME_LIMIT + 30)
# The cleanup DELETE after an interruption (the soft time limit): the hard limit comes
# JOB_TIME_LIMIT - JOB_SOFT_TIME_LIMIT = 30 s later, so the DELETE gets this read timeout (plus
# OCPI_HTTP_CONNECT_TIMEOUT) and no second, unencoded attempt.
LATE_DELETE_READ_TIMEOUT = 15.0


class HandshakeFailed(Exception):
    """An outbound operation did not succeed; the message is for the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RoleOffer:
    role: Role
    country_code: str
    party_id: str
    business_details: dict[str, Any]

    @property
    def party(self) -> Party:
        return Party(self.country_code, self.party_id, self.role)


@dataclass(frozen=True)
class Offer:
    """A validated credentials object received from a partner."""

    token: str
    url: str
    roles: tuple[RoleOffer, ...]
    # Invalid optional parts left out of what the partner sent (one line each, for the record).
    dropped: tuple[str, ...] = ()

    @classmethod
    def from_validated(cls, data: dict[str, Any], dropped: tuple[str, ...] = ()) -> Offer:
        return cls(
            token=data["token"],
            url=data["url"],
            roles=tuple(
                RoleOffer(
                    Role(r["role"]),
                    r["country_code"],
                    r["party_id"],
                    strip_nulls(dict(r["business_details"])),
                )
                for r in data["roles"]
            ),
            dropped=dropped,
        )

    @property
    def parties(self) -> set[Party]:
        return {r.party for r in self.roles}


def parse_offer(data: Any, *, source: str) -> Offer:
    """A partner's Credentials object. An invalid optional part (a logo without url, a bad
    website) is left out and listed in ``Offer.dropped``; required fields fail (2001)."""
    cleaned, dropped = drop_invalid_optional(data)
    serializer = CredentialsSerializer(data=cleaned)
    if not serializer.is_valid():
        raise InvalidParameters(
            f"{source}: " + "; ".join(describe_validation_errors(serializer.errors))
        )
    return Offer.from_validated(serializer.validated_data, dropped=tuple(dropped))


def record_dropped(partner: Partner, offer: Offer, source: str) -> None:
    if offer.dropped:
        record(
            partner,
            "credentials_warning",
            f"{source}: invalid optional fields were left out: " + "; ".join(offer.dropped),
        )


def parse_answer(partner: Partner, data: Any, *, source: str) -> Offer:
    """A partner's credentials in its answer to our POST or PUT (see ``parse_offer``); what
    was left out is recorded."""
    offer = parse_offer(data, source=source)
    record_dropped(partner, offer, source)
    return offer


def offered_token(data: Any) -> str | None:
    """The token in a partner's credentials answer, when it is a usable one (else None)."""
    value = data.get("token") if isinstance(data, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return validate_credentials_token(value)
    except ValueError:
        return None


# --- our side of the credentials object --------------------------------------------------------


def our_credentials(token: str) -> dict[str, Any]:
    """Our Credentials object, carrying the token the partner must use to call us."""
    business: dict[str, Any] = {"name": settings.OCPI_BUSINESS_NAME}
    if settings.OCPI_BUSINESS_WEBSITE:
        business["website"] = settings.OCPI_BUSINESS_WEBSITE
    return {
        "token": token,
        "url": versions_url(),
        "roles": [
            {
                "role": str(p.role),
                "business_details": business,
                "party_id": p.party_id,
                "country_code": p.country_code,
            }
            for p in our_parties()
        ],
    }


# --- shared steps -------------------------------------------------------------------------------


def record(partner: Partner, kind: str, message: str) -> None:
    PartnerEvent.objects.create(partner=partner, kind=kind, message=message)
    logger.info("partner %s: %s: %s", partner.name, kind, message)


def describe_parties(parties: Iterable[Party]) -> str:
    return ", ".join(sorted(str(p) for p in parties)) or "none"


def locked_parties(partner: Partner) -> set[Party]:
    return {Party(r.country_code, r.party_id, Role(r.role)) for r in partner.roles.all()}


def check_parties_available(partner: Partner, parties: Iterable[Party]) -> None:
    """A party belongs to one connection only, and never to us (2001 otherwise)."""
    ours = set(our_parties())
    wanted = set(parties)
    clash = wanted & ours
    if clash:
        raise InvalidParameters(
            f"{describe_parties(clash)} is one of our own parties and cannot be registered."
        )
    query = Q()
    for p in wanted:
        query |= Q(country_code=p.country_code, party_id=p.party_id, role=p.role)
    taken = PartnerRole.objects.filter(query).exclude(partner=partner).select_related("partner")
    if wanted and taken.exists():
        names = ", ".join(sorted(str(r) for r in taken))
        raise InvalidParameters(f"{names} is already registered by another connection.")


def claim(partner_id: int) -> bool:
    """Mark the partner busy with a handshake operation; False when another one runs."""
    now = now_utc()
    return (
        Partner.objects.filter(pk=partner_id)
        .filter(Q(busy_since__isnull=True) | Q(busy_since__lt=now - BUSY_TIMEOUT))
        .update(busy_since=now)
        == 1
    )


def release(partner_id: int) -> None:
    Partner.objects.filter(pk=partner_id).update(busy_since=None)


def _store_discovery(partner: Partner, found: Discovery) -> None:
    partner.version = found.version
    PartnerEndpoint.objects.filter(partner=partner).delete()
    PartnerEndpoint.objects.bulk_create(
        PartnerEndpoint(partner=partner, identifier=e.identifier, role=e.role, url=e.url)
        for e in found.endpoints
    )


def _store_roles(partner: Partner, offer: Offer) -> None:
    """Replace the roles (before the identity is locked); the caller saves the partner."""
    partner.former_parties = []
    PartnerRole.objects.filter(partner=partner).delete()
    PartnerRole.objects.bulk_create(
        PartnerRole(
            partner=partner,
            role=r.role,
            country_code=r.country_code,
            party_id=r.party_id,
            business_details=r.business_details,
        )
        for r in offer.roles
    )


def _update_business_details(partner: Partner, offer: Offer) -> None:
    """The identity is locked; business details may still change."""
    by_party = {r.party: r for r in offer.roles}
    for row in partner.roles.all():
        offered = by_party.get(Party(row.country_code, row.party_id, Role(row.role)))
        if offered and offered.business_details != row.business_details:
            row.business_details = offered.business_details
            row.save(update_fields=["business_details"])


def _identity_change(partner: Partner, offer: Offer) -> str | None:
    """Describe an attempt to change a locked identity, or None when it is unchanged."""
    locked, offered = locked_parties(partner), offer.parties
    if locked == offered:
        return None
    parts = []
    if offered - locked:
        parts.append(f"adds {describe_parties(offered - locked)}")
    if locked - offered:
        parts.append(f"removes {describe_parties(locked - offered)}")
    return (
        f"The parties of a registered partner are locked ({describe_parties(locked)}); "
        f"the credentials {' and '.join(parts)}. Unregister and register again to change them."
    )


def _mark_registered(partner: Partner, offer: Offer, encoding: TokenEncoding) -> None:
    now = now_utc()
    tokens.set_outbound_token(partner, offer.token)
    partner.versions_url = offer.url
    partner.token_encoding = encoding
    partner.state = PartnerState.REGISTERED
    partner.failure_reason = ""
    partner.registered_at = now
    partner.last_connection = now
    partner.ping_failures = 0
    partner.last_ping_error = ""
    partner.save()
    if partner.status != ConnectionStatus.SUSPENDED:  # an operator's suspension holds
        liveness.change_status(partner, ConnectionStatus.CONNECTED, "registered", at=now)
    transaction.on_commit(
        partial(signals.partner_registered.send, sender=Partner, partner_id=partner.pk)
    )


def _expire_previous_tokens(partner: Partner, keep: InboundToken) -> None:
    """After a rotation the old inbound tokens stay valid for a short grace period."""
    until = now_utc() + timedelta(seconds=settings.OCPI_TOKEN_GRACE_SECONDS)
    partner.inbound_tokens.active().exclude(pk=keep.pk).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=until)
    ).update(expires_at=until)


def _client(partner: Partner, token: str | None = None) -> OcpiClient:
    return OcpiClient(
        token if token is not None else tokens.outbound_token(partner),
        encoding=TokenEncoding(partner.token_encoding),
        read_timeout=settings.OCPI_HTTP_HANDSHAKE_TIMEOUT,
        on_refused=urlrefusals.recorder(partner.pk),
        partner_id=partner.pk,
    )


def unregister_locally(partner: Partner, reason: str) -> None:
    """Stop all traffic: revoke every inbound token, forget ours, free the parties."""
    roles = describe_parties(locked_parties(partner))
    # While its parties are still known: the ClientInfo pushes name them.
    liveness.change_status(partner, ConnectionStatus.OFFLINE, f"unregistered: {reason}")
    tokens.revoke(partner.inbound_tokens.all())
    tokens.set_outbound_token(partner, None)
    partner.former_parties = [
        {"country_code": r.country_code, "party_id": r.party_id, "role": r.role}
        for r in partner.roles.all()
    ]
    partner.roles.all().delete()
    partner.state = PartnerState.UNREGISTERED
    partner.save()
    record(partner, "unregistered", f"{reason} (parties were: {roles})")


# --- the partner calls us (we are the server of the credentials module) -----------------------


def register_partner(*, principal: PartnerPrincipal, offer: Offer) -> dict[str, Any]:
    """POST credentials with token A (spec credentials › Registration, steps 6-9).

    1. refuse parties that are ours or another connection's (2001);
    2. call back the partner's versions and details with the token it offered (3001/3002/3003);
    3. in one transaction: store roles, endpoints and its token, revoke token A, issue ours.
    Token A stays usable when anything fails, so the partner can retry.
    """
    partner = Partner.objects.get(pk=principal.partner_id)
    check_parties_available(partner, offer.parties)
    if not claim(partner.pk):
        raise ServerError("A registration for this partner is already running; retry shortly.")
    try:
        Partner.objects.filter(pk=partner.pk).exclude(state=PartnerState.REGISTERED).update(
            state=PartnerState.REGISTERING
        )
        with OcpiClient(
            offer.token,
            encoding=principal.encoding,
            on_refused=urlrefusals.recorder(partner.pk),
            partner_id=partner.pk,
        ) as client:
            found = discover(client, offer.url, version=VERSION)
            encoding = client.encoding
        try:
            with transaction.atomic():
                partner = Partner.objects.select_for_update().get(pk=partner.pk)
                if partner.state == PartnerState.REGISTERED:
                    raise MethodNotAllowed("Already registered: use PUT to update the credentials.")
                check_parties_available(partner, offer.parties)
                _store_discovery(partner, found)
                _store_roles(partner, offer)
                tokens.revoke(partner.inbound_tokens.filter(kind=TokenKind.REGISTRATION))
                _, token_c = tokens.issue_inbound_token(partner, TokenKind.REGULAR)
                _mark_registered(partner, offer, encoding)
                record_dropped(partner, offer, "The partner's credentials")
                record(
                    partner,
                    "registered",
                    f"The partner registered with us: version {found.version}, parties "
                    f"{describe_parties(offer.parties)}, {len(found.endpoints)} endpoints.",
                )
        except IntegrityError:
            raise InvalidParameters(
                "One of these parties was just registered by another connection."
            ) from None
    except OcpiError as exc:
        _fail(partner.pk, "registration_failed", _message(exc))
        raise
    finally:
        release(partner.pk)
    return our_credentials(token_c)


def update_credentials(*, principal: PartnerPrincipal, offer: Offer) -> dict[str, Any]:
    """PUT credentials (spec credentials › Updating): re-fetch endpoints, rotate both tokens.

    The identity is locked: a change of parties is refused (2001) and recorded. The tokens the
    partner used until now stay valid for OCPI_TOKEN_GRACE_SECONDS.
    """
    partner = Partner.objects.get(pk=principal.partner_id)
    change = _identity_change(partner, offer)
    if change:
        record(partner, "identity_refused", change)
        raise InvalidParameters(change)
    if not claim(partner.pk):
        raise ServerError("Another credentials update for this partner is running; retry shortly.")
    try:
        with OcpiClient(
            offer.token,
            encoding=principal.encoding,
            on_refused=urlrefusals.recorder(partner.pk),
            partner_id=partner.pk,
        ) as client:
            found = discover(client, offer.url, version=VERSION)
            encoding = client.encoding
        with transaction.atomic():
            partner = Partner.objects.select_for_update().get(pk=partner.pk)
            if not partner.is_registered:
                raise MethodNotAllowed("Not registered: PUT is allowed only after registration.")
            _store_discovery(partner, found)
            _update_business_details(partner, offer)
            row, new_token = tokens.issue_inbound_token(partner, TokenKind.REGULAR)
            _expire_previous_tokens(partner, keep=row)
            tokens.set_outbound_token(partner, offer.token)
            partner.versions_url = offer.url
            partner.token_encoding = encoding
            partner.save()
            record_dropped(partner, offer, "The partner's credentials")
            record(
                partner,
                "rotated",
                f"The partner updated its credentials (version {found.version}, "
                f"{len(found.endpoints)} endpoints); both tokens rotated.",
            )
    except OcpiError as exc:
        record(partner, "update_failed", _message(exc))
        raise
    finally:
        release(partner.pk)
    return our_credentials(new_token)


def unregister_partner(*, principal: PartnerPrincipal) -> None:
    """DELETE credentials: the partner ends the connection."""
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=principal.partner_id)
        unregister_locally(partner, "The partner unregistered (DELETE credentials).")


def _fail(partner_id: int, kind: str, reason: str) -> None:
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner_id)
        if partner.state != PartnerState.REGISTERED:
            partner.state = PartnerState.FAILED
        partner.failure_reason = reason
        partner.save()
        record(partner, kind, reason)


# --- operators start operations; a Celery task runs them (we are the client) ------------------


def _new_connection(
    name: str, *, initiated_by: Initiative, state: PartnerState, outbound: str | None
) -> Partner:
    """Create the partner, or reset one that is not connected, for a new registration."""
    name = name.strip()
    if not name or len(name) > 100:
        raise HandshakeFailed("The partner name must have 1 to 100 characters.")
    partner, created = Partner.objects.select_for_update().get_or_create(
        name=name, defaults={"initiated_by": initiated_by}
    )
    if not created and partner.state == PartnerState.REGISTERING and fail_dead_jobs_of(partner):
        partner.refresh_from_db()  # a connect whose worker died is failed: connect again
    if not created and partner.state in (PartnerState.REGISTERED, PartnerState.REGISTERING):
        raise HandshakeFailed(
            f"{name} is {partner.get_state_display()}; unregister it before a new connection."
        )
    tokens.revoke(partner.inbound_tokens.all())
    partner.initiated_by = initiated_by
    partner.state = state
    what = "invited" if state == PartnerState.INVITED else "registering"
    liveness.change_status(partner, ConnectionStatus.PLANNED, f"{what}: a new connection")
    partner.failure_reason = ""
    partner.token_encoding = TokenEncoding.BASE64
    tokens.set_outbound_token(partner, outbound)
    return partner


def invite_partner(*, name: str) -> tuple[Partner, str]:
    """Create (or re-invite) a partner and issue token A. The token is returned once."""
    with transaction.atomic():
        partner = _new_connection(
            name, initiated_by=Initiative.PARTNER, state=PartnerState.INVITED, outbound=None
        )
        partner.save()
        _, token_a = tokens.issue_inbound_token(partner, TokenKind.REGISTRATION)
        record(partner, "invited", "Token A issued; waiting for the partner to register.")
    return partner, token_a


def connect_partner(*, name: str, versions_url: str, token_a: str) -> PartnerJob:
    """Register with a partner that gave us its versions URL and token A (runs as a task)."""
    try:
        validate_url(versions_url)
    except ValueError as exc:
        raise HandshakeFailed(f"The versions URL {exc}.") from None
    try:
        url_policy().check_url(versions_url)
    except PolicyViolation as exc:
        raise HandshakeFailed(f"The versions URL is not called: {exc.rule}.") from None
    try:
        validate_credentials_token(token_a)
    except ValueError as exc:
        raise HandshakeFailed(f"Token A {exc}.") from None
    with transaction.atomic():
        partner = _new_connection(
            name, initiated_by=Initiative.US, state=PartnerState.REGISTERING, outbound=token_a
        )
        partner.versions_url = versions_url
        partner.save()
        record(partner, "connect_requested", f"Connecting to {versions_url}.")
        return _enqueue(partner, JobKind.CONNECT)


def request_job(partner: Partner, kind: JobKind) -> PartnerJob:
    """Rotate, unregister or refresh: only for a registered partner."""
    if not partner.is_registered:
        raise HandshakeFailed(f"{partner.name} is {partner.get_state_display()}, not registered.")
    with transaction.atomic():
        return _enqueue(partner, kind)


def _enqueue(partner: Partner, kind: JobKind) -> PartnerJob:
    from .tasks import run_partner_job

    job = PartnerJob.objects.create(partner=partner, kind=kind)
    transaction.on_commit(lambda: run_partner_job.delay(job_id=job.pk))
    return job


class _JobGone(Exception):
    """The job was failed as lost (``fail_dead_jobs``) while this run still went on."""


def _job_running(job_id: int | None) -> bool:
    return job_id is None or PartnerJob.objects.filter(pk=job_id, state=JobState.RUNNING).exists()


def _interruption(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"The job ran out of time (the task's soft time limit, {JOB_SOFT_TIME_LIMIT} s)."
    return f"The job was interrupted ({type(exc).__name__})."


def _connect(partner: Partner, job_id: int | None = None) -> str:
    """We are the Initiator (spec credentials › Registration, steps 1-5 and 10).

    From the moment our TOKEN_B exists until the registration is stored, whatever fails or
    interrupts the run (a refusal, an unreadable answer, a party that is ours or another
    connection's, one that another connection registered meanwhile, a crash, the soft time
    limit, a job failed as lost meanwhile) revokes TOKEN_B. Once the partner answered our POST
    it holds us as registered: we also send it a DELETE with the token it returned, so that
    neither side stays half registered. An interruption that is not an ``Exception`` (e.g.
    KeyboardInterrupt) is re-raised after that cleanup.
    """
    with _client(partner) as client:
        found = discover(client, partner.versions_url)
        credentials_url = found.url_of("credentials")
        with transaction.atomic():
            _store_discovery(partner, found)
            # Only what discovery changed: the row's status may have moved meanwhile.
            partner.save(update_fields=["version", "updated_at"])
            # Persist TOKEN_B before the POST: the partner calls us back with it meanwhile.
            token_b_row, token_b = tokens.issue_inbound_token(partner, TokenKind.REGULAR)
        try:
            reply = client.post(credentials_url, our_credentials(token_b))
        except (PartnerError, OcpiError) as exc:
            tokens.revoke(partner.inbound_tokens.all())
            raise HandshakeFailed(f"Registration refused or failed: {_message(exc)}") from None
        except BaseException as exc:
            # The partner may have taken our token, but its answer (and its token) is lost:
            # we cannot tell it to forget us; our token stops working at once.
            tokens.revoke(partner.inbound_tokens.all())
            lost = (
                "Our token for the partner is revoked; the partner may have registered us "
                "before its answer was lost: ask its operator to remove that registration."
            )
            record(partner, "remote_unregister_failed", lost)
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, SoftTimeLimitExceeded):
                reason = _interruption(exc)
            else:
                logger.exception("registration POST to partner %s crashed", partner.name)
                reason = f"Internal error ({type(exc).__name__}); see the worker log."
            raise HandshakeFailed(f"{reason} {lost}") from None
        encoding = client.encoding
    offer: Offer | None = None
    try:
        offer = parse_answer(partner, reply.data, source="The partner's credentials response")
        check_parties_available(partner, offer.parties)
        with transaction.atomic():
            partner = Partner.objects.select_for_update().get(pk=partner.pk)
            if job_id is not None and not (
                PartnerJob.objects.select_for_update()
                .filter(pk=job_id, state=JobState.RUNNING)
                .exists()
            ):
                raise _JobGone
            check_parties_available(partner, offer.parties)
            # Another connection may commit one of these parties after the check: the unique
            # constraint refuses it (IntegrityError), handled below like the check's refusal.
            _store_roles(partner, offer)
            _mark_registered(partner, offer, encoding)
            record(
                partner,
                "registered",
                f"We registered with the partner: version {found.version}, parties "
                f"{describe_parties(offer.parties)}, {len(found.endpoints)} endpoints.",
            )
    except BaseException as exc:
        late = not isinstance(exc, Exception) or isinstance(exc, SoftTimeLimitExceeded)
        if isinstance(exc, OcpiError):
            reason = f"Registration refused here: {exc.message}"
        elif isinstance(exc, IntegrityError):
            parties = describe_parties(offer.parties) if offer is not None else "none"
            reason = (
                "Registration refused here: one of the partner's parties "
                f"({parties}) was just registered by another connection."
            )
        elif isinstance(exc, _JobGone):
            reason = "This job was failed as lost (past its time limit) while it ran."
        elif late:
            reason = _interruption(exc)
        else:
            logger.exception("registration with partner %s crashed", partner.name)
            reason = f"Internal error ({type(exc).__name__}); see the worker log."
        if isinstance(exc, _JobGone):
            # The partner may be on a new connection since: only this run's token goes.
            tokens.revoke(InboundToken.objects.filter(pk=token_b_row.pk))
        else:
            tokens.revoke(partner.inbound_tokens.all())
        undone = _undo_remote_registration(
            partner, credentials_url, offered_token(reply.data), encoding, late=late
        )
        if not isinstance(exc, Exception):
            raise
        raise HandshakeFailed(f"{reason} {undone}") from None
    return f"Registered with {partner.name} (OCPI {found.version})."


def _undo_remote_registration(
    partner: Partner, url: str, token: str | None, encoding: TokenEncoding, *, late: bool = False
) -> str:
    """Best effort, bounded by the client's timeouts, never raises: DELETE credentials at the
    partner with the token it just returned; the outcome is recorded and returned. ``late``
    (after the soft time limit or an interruption): a shorter read timeout and no unencoded
    second attempt, so that the DELETE ends before the task's hard time limit."""
    if token is None:
        outcome = (
            "The partner's answer carried no usable token, so it could not be told to forget "
            "the registration; ask its operator to remove it."
        )
        record(partner, "remote_unregister_failed", outcome)
        return outcome
    try:
        with OcpiClient(
            token,
            encoding=encoding,
            read_timeout=LATE_DELETE_READ_TIMEOUT if late else None,
            encoding_fallback=not late,
            on_refused=urlrefusals.recorder(partner.pk),
            partner_id=partner.pk,
        ) as client:
            client.delete(url)
    except Exception as exc:
        outcome = f"Unregistering at the partner failed too: {_message(exc)}"
        record(partner, "remote_unregister_failed", outcome)
        return outcome
    outcome = "We unregistered at the partner again."
    record(partner, "remote_unregistered", outcome)
    return outcome


def _rotate(partner: Partner) -> str:
    """We send PUT credentials: new tokens both ways, endpoints re-fetched."""
    with _client(partner) as client:
        found = discover(client, partner.versions_url)
        credentials_url = found.url_of("credentials")
        row, new_token = tokens.issue_inbound_token(partner, TokenKind.REGULAR)
        try:
            reply = client.put(credentials_url, our_credentials(new_token))
        except PartnerError as exc:
            tokens.revoke(InboundToken.objects.filter(pk=row.pk))
            raise HandshakeFailed(f"Rotation refused or failed: {exc.message}") from None
        encoding = client.encoding
    data = reply.data if isinstance(reply.data, dict) else {}
    try:
        their_token = validate_credentials_token(str(data.get("token") or ""))
    except ValueError:
        tokens.revoke(InboundToken.objects.filter(pk=row.pk))
        raise HandshakeFailed("The partner's PUT response carries no valid token.") from None
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner.pk)
        _store_discovery(partner, found)
        _expire_previous_tokens(partner, keep=row)
        tokens.set_outbound_token(partner, their_token)
        partner.token_encoding = encoding
        try:
            offer = parse_answer(partner, data, source="The partner's PUT response")
        except OcpiError as exc:
            record(
                partner,
                "rotated",
                f"Tokens rotated; the partner's roles were unreadable: {exc.message}",
            )
        else:
            partner.versions_url = offer.url
            change = _identity_change(partner, offer)
            if change:
                record(partner, "identity_refused", change)
            else:
                _update_business_details(partner, offer)
            record(partner, "rotated", f"We rotated the tokens (version {found.version}).")
        partner.save()
    return f"Tokens rotated with {partner.name}."


def _unregister(partner: Partner) -> str:
    """We send DELETE credentials; our side stops whatever the partner answers."""
    problem = None
    try:
        with _client(partner) as client:
            url = partner.endpoint_url("credentials")
            if not url:
                raise PartnerError("no credentials endpoint is known")
            client.delete(url)
    except PartnerError as exc:
        problem = exc.message
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner.pk)
        unregister_locally(partner, "We unregistered (DELETE credentials).")
    if problem:
        raise HandshakeFailed(f"Unregistered here, but the partner could not be told: {problem}")
    return f"Unregistered from {partner.name}."


def _refresh(partner: Partner) -> str:
    with _client(partner) as client:
        found = discover(client, partner.versions_url, version=partner.version or None)
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner.pk)
        _store_discovery(partner, found)
        partner.save()
        record(
            partner,
            "endpoints_refreshed",
            f"{len(found.endpoints)} endpoints (version {found.version}).",
        )
    return f"{len(found.endpoints)} endpoints of {partner.name} stored."


_RUNNERS: dict[str, Callable[[Partner], str]] = {
    JobKind.CONNECT: _connect,
    JobKind.ROTATE: _rotate,
    JobKind.UNREGISTER: _unregister,
    JobKind.REFRESH: _refresh,
}


def _message(exc: Exception) -> str:
    """For the operator (a 3001 tells the partner less: ``DiscoveryFailed.operator_message``)."""
    if isinstance(exc, DiscoveryFailed):
        return exc.operator_message
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def run_job(job_id: int) -> None:
    """Run one PartnerJob once: claimed first, so a duplicate task message does nothing.

    A message delivered again after its worker died (``task_reject_on_worker_lost``) finds the
    job RUNNING: within ``JOB_DEAD_AFTER`` of its start it does nothing (the job may still be
    running elsewhere); later the job is failed as lost (``fail_dead_jobs``), not run again.
    """
    now = now_utc()
    claimed = PartnerJob.objects.filter(pk=job_id, state=JobState.PENDING).update(
        state=JobState.RUNNING, started_at=now
    )
    if not claimed:
        partner_id = (
            PartnerJob.objects.filter(pk=job_id, state=JobState.RUNNING)
            .values_list("partner_id", flat=True)
            .first()
        )
        if partner_id is not None:
            _fail_dead_jobs_of_partner(partner_id)
        return
    job = PartnerJob.objects.select_related("partner").get(pk=job_id)
    partner = job.partner
    if not claim(partner.pk):
        _finish(job, JobState.FAILED, "Another operation on this partner is running; try again.")
        return
    try:
        if job.kind != JobKind.CONNECT and not Partner.objects.get(pk=partner.pk).is_registered:
            raise HandshakeFailed(f"{partner.name} is no longer registered.")
        current = Partner.objects.get(pk=partner.pk)
        if job.kind == JobKind.CONNECT:
            message = _connect(current, job_id=job.pk)
        else:
            message = _RUNNERS[job.kind](current)
    except (HandshakeFailed, OcpiError, PartnerError) as exc:
        reason = _message(exc)
        _failed(job, reason)
    except Exception as exc:
        if isinstance(exc, SoftTimeLimitExceeded):
            reason = _interruption(exc)
        else:
            logger.exception("partner job %s (%s) crashed", job_id, job.kind)
            reason = f"Internal error ({type(exc).__name__}); see the worker log."
        _failed(job, reason, record_other=False)
    except BaseException as exc:
        # KeyboardInterrupt, SystemExit: the job ends here; the interruption goes on.
        try:
            _failed(job, _interruption(exc), record_other=False)
        except Exception:
            logger.exception("partner job %s (%s): its failure was not stored", job_id, job.kind)
        raise
    else:
        _finish(job, JobState.SUCCEEDED, message)
    finally:
        release(partner.pk)


def _failed(job: PartnerJob, reason: str, *, record_other: bool = True) -> None:
    """The job failed: the partner's state (a connect) or its trail says why. Nothing when the
    job is no longer RUNNING (``fail_dead_jobs`` failed it as lost meanwhile)."""
    if not _job_running(job.pk):
        return
    if job.kind == JobKind.CONNECT:
        _fail(job.partner_id, "registration_failed", reason)
    elif record_other:
        record(job.partner, f"{job.kind.lower()}_failed", reason)
    _finish(job, JobState.FAILED, reason)


def _finish(job: PartnerJob, state: JobState, message: str) -> None:
    """Store the outcome, unless the job is no longer RUNNING (failed as lost meanwhile)."""
    finished_at = now_utc()
    if (
        PartnerJob.objects.filter(pk=job.pk, state=JobState.RUNNING).update(
            state=state, message=message, finished_at=finished_at
        )
        == 1
    ):
        job.state, job.message, job.finished_at = state, message, finished_at


# --- jobs whose worker died ---------------------------------------------------------------------


def _dead_cutoff() -> datetime:
    return now_utc() - JOB_DEAD_AFTER


def fail_dead_jobs() -> int:
    """Beat (``credentials.tasks.fail_dead_partner_jobs``): fail every job still RUNNING
    ``JOB_DEAD_AFTER`` after its start; its worker died. Idempotent; returns how many."""
    partner_ids = (
        PartnerJob.objects.filter(state=JobState.RUNNING, started_at__lt=_dead_cutoff())
        .values_list("partner_id", flat=True)
        .distinct()
    )
    return sum(_fail_dead_jobs_of_partner(pk) for pk in list(partner_ids))


def _fail_dead_jobs_of_partner(partner_id: int) -> int:
    with transaction.atomic():
        partner = Partner.objects.select_for_update().filter(pk=partner_id).first()
        return 0 if partner is None else fail_dead_jobs_of(partner)


def fail_dead_jobs_of(partner: Partner) -> int:
    """Inside the caller's transaction, with the partner row locked (so no operation on it
    stores its outcome meanwhile): fail its dead jobs, re-read under lock (a job that finished
    meanwhile is left alone, one whose start is recent too). A dead connect that had stored the
    registration succeeded; one that had not leaves the partner FAILED with the tokens issued
    for it revoked, as a failed connect does."""
    cutoff = _dead_cutoff()
    dead = list(
        PartnerJob.objects.select_for_update()
        .filter(partner=partner, state=JobState.RUNNING, started_at__lt=cutoff)
        .order_by("pk")
    )
    lost = (
        "The worker running this job was lost: the job was still running "
        f"{JOB_DEAD_AFTER.total_seconds():g} s after its start, past its task's hard time "
        f"limit ({JOB_TIME_LIMIT} s)."
    )
    for job in dead:
        latest_connect = (
            job.kind == JobKind.CONNECT
            and not PartnerJob.objects.filter(
                partner=partner, kind=JobKind.CONNECT, pk__gt=job.pk
            ).exists()
        )
        state, message = JobState.FAILED, lost
        if latest_connect and partner.state == PartnerState.REGISTERED:
            state = JobState.SUCCEEDED
            message = f"Registered with {partner.name}. {lost} It had stored the registration."
            record(partner, "job_lost", message)
        elif latest_connect and partner.state == PartnerState.REGISTERING:
            # connect_partner revoked every earlier inbound token: these are this connect's.
            tokens.revoke(partner.inbound_tokens.all())
            message = (
                f"{lost} Our token for the partner is revoked; connect again. If the partner "
                "registered us meanwhile, ask its operator to remove that registration."
            )
            partner.state = PartnerState.FAILED
            partner.failure_reason = message
            partner.save(update_fields=["state", "failure_reason", "updated_at"])
            record(partner, "registration_failed", message)
        else:
            record(partner, f"{job.kind.lower()}_failed", lost)
        job.state, job.message, job.finished_at = state, message, now_utc()
        job.save(update_fields=["state", "message", "finished_at"])
    if dead and partner.busy_since is not None and partner.busy_since < cutoff:
        release(partner.pk)  # the dead job's claim; a recent one belongs to a live operation
        partner.busy_since = None
    return len(dead)
