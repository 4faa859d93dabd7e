"""Liveness of partners: the HubClientInfo ``status`` and ``last_connection`` of each Partner.

The status machine (every change goes through ``change_status``, recorded with its reason):

* PLANNED while a partner is invited or registering; CONNECTED once registered.
* CONNECTED -> OFFLINE after OCPI_PING_FAILURES consecutive failed pings.
* OFFLINE -> CONNECTED on the first sign of life: a ping answered, a successful call to the
  partner, or an authenticated request from it (that one through a task: a request only
  looks its token up and writes "seen", see ``mark_seen``).
* any -> SUSPENDED by an operator; SUSPENDED -> CONNECTED only when an operator resumes it.
  Nothing is sent to a SUSPENDED partner and it is not pinged; its own requests are still
  served (nothing a partner sends is lost).
* unregistering -> OFFLINE.

"Seen" (``mark_seen``) is throttled per process: one database write per partner and
OCPI_SEEN_THROTTLE_SECONDS, whatever the request rate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from ocpi_platform.locks import single_run
from ocpi_platform.ocpi.client import (
    ClientPool,
    OcpiClient,
    OcpiReply,
    PartnerError,
    PartnerProtocolError,
    client_settings,
)
from ocpi_platform.ocpi.principal import TokenEncoding
from ocpi_platform.ocpi.types import format_datetime, now_utc

from . import signals, tokens, urlrefusals
from .models import ConnectionStatus, Partner, PartnerState, StatusChange

logger = logging.getLogger(__name__)

PING_LOCK = "partner-ping"
CALLED_US = "the partner called us"
ANSWERED = "a call to the partner succeeded"
PING_ANSWERED = "the partner answered the ping"
# Statuses that a sign of life turns into CONNECTED (SUSPENDED waits for an operator).
RECOVERABLE = (ConnectionStatus.OFFLINE, ConnectionStatus.PLANNED)


# --- the status machine -------------------------------------------------------------------------


def change_status(
    partner: Partner, new: ConnectionStatus, reason: str, *, at: datetime | None = None
) -> bool:
    """Set the status of ``partner``, which the caller locked (select_for_update, in a
    transaction); record the change and tell the other modules. False when it is unchanged."""
    old = ConnectionStatus(partner.status)
    if old == new:
        return False
    moment = at or now_utc()
    partner.status = new
    partner.status_since = moment
    partner.save(update_fields=["status", "status_since", "updated_at"])
    StatusChange.objects.create(
        partner=partner, created_at=moment, old_status=old, new_status=new, reason=reason[:2000]
    )
    logger.info("Partner %s: %s -> %s (%s)", partner, old, new, reason)
    signals.partner_status_changed.send(sender=Partner, partner=partner, old=old, new=new)
    return True


def came_back(old: str, new: str) -> bool:
    """A change that ends an absence: what the partner missed is resent in full."""
    return new == ConnectionStatus.CONNECTED and old in (
        ConnectionStatus.OFFLINE,
        ConnectionStatus.SUSPENDED,
    )


def set_status(partner_id: int, new: ConnectionStatus, reason: str) -> bool:
    """Lock the partner and change its status (operators' suspend and resume)."""
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner_id)
        return change_status(partner, new, reason)


def suspend(partner: Partner, reason: str) -> bool:
    return set_status(partner.pk, ConnectionStatus.SUSPENDED, reason)


def resume(partner: Partner, reason: str) -> bool:
    """Back to CONNECTED (its data is resent in full); a partner that is not registered goes back
    to OFFLINE or PLANNED, as its state says."""
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner.pk)
        if partner.status != ConnectionStatus.SUSPENDED:
            return False
        if partner.state == PartnerState.REGISTERED:
            new = ConnectionStatus.CONNECTED
        elif partner.state == PartnerState.UNREGISTERED:
            new = ConnectionStatus.OFFLINE
        else:
            new = ConnectionStatus.PLANNED
        return change_status(partner, new, reason)


# --- seen ----------------------------------------------------------------------------------------

_written: dict[int, float] = {}  # partner id -> monotonic time this process last wrote "seen"
_written_lock = threading.Lock()
_WRITTEN_MAX = 10_000


def forget_seen() -> None:
    """Forget what this process wrote (tests; the next ``mark_seen`` writes again)."""
    with _written_lock:
        _written.clear()


def _due(partner_id: int) -> bool:
    """Whether this process should write "seen" for the partner now (and note that it does)."""
    throttle = float(settings.OCPI_SEEN_THROTTLE_SECONDS)
    now = time.monotonic()
    with _written_lock:
        last = _written.get(partner_id)
        if last is not None and now - last < throttle:
            return False
        if len(_written) >= _WRITTEN_MAX:
            _written.clear()
        _written[partner_id] = now
    return True


def mark_seen(partner_id: int, how: str = CALLED_US, *, defer_status: bool = False) -> None:
    """The partner is alive. At most one write per partner per throttle period and process.

    With ``defer_status`` (the request path: resolving a partner's token) this is one UPDATE
    and nothing more: an OFFLINE (or PLANNED) partner that shows a sign of life gets its
    status change, with what follows from it (the full resends of the other modules), from a
    Celery task enqueued on commit (``recover``). Without it (workers: a call to the partner
    answered), the status changes at once.
    """
    if not _due(partner_id):
        return
    now = now_utc()
    connected = Partner.objects.filter(pk=partner_id, status=ConnectionStatus.CONNECTED)
    if connected.update(last_connection=now, ping_failures=0, last_ping_error=""):
        return
    if defer_status:
        registered = Partner.objects.filter(pk=partner_id, state=PartnerState.REGISTERED)
        if registered.filter(status__in=RECOVERABLE).update(
            last_connection=now, ping_failures=0, last_ping_error=""
        ):
            _recover_later(partner_id, how)
        else:  # SUSPENDED: seen, and it stays so until an operator resumes it
            registered.update(last_connection=now, ping_failures=0, last_ping_error="")
        return
    with transaction.atomic():
        partner = (
            Partner.objects.select_for_update()
            .filter(pk=partner_id, state=PartnerState.REGISTERED)
            .first()
        )
        if partner is None:
            return
        partner.last_connection = now
        partner.ping_failures = 0
        partner.last_ping_error = ""
        partner.save(
            update_fields=["last_connection", "ping_failures", "last_ping_error", "updated_at"]
        )
        if partner.status in RECOVERABLE:
            change_status(partner, ConnectionStatus.CONNECTED, how, at=now)


def _recover_later(partner_id: int, how: str) -> None:
    from .tasks import recover_partner  # the tasks module imports this one

    # robust: a broker that is down must not fail the partner's request; the next "seen"
    # after the throttle period enqueues again while the partner is still not CONNECTED.
    def enqueue_recover_partner() -> None:  # named: Django logs a robust callback's name
        recover_partner.delay(partner_id=partner_id, how=how)

    transaction.on_commit(enqueue_recover_partner, robust=True)


def recover(partner_id: int, how: str = CALLED_US) -> bool:
    """A registered OFFLINE or PLANNED partner showed a sign of life: CONNECTED (idempotent:
    False when it is CONNECTED already, SUSPENDED, or no longer registered)."""
    with transaction.atomic():
        partner = (
            Partner.objects.select_for_update()
            .filter(pk=partner_id, state=PartnerState.REGISTERED)
            .first()
        )
        if partner is None or partner.status not in RECOVERABLE:
            return False
        return change_status(partner, ConnectionStatus.CONNECTED, how)


def client_for(partner: Partner, *, mark_seen_on_reply: bool = True, **kwargs: Any) -> OcpiClient:
    """The outbound client for a registered partner: our token, its encoding, and (unless the
    caller records the outcome itself) every successful reply marks the partner seen."""

    def seen(reply: OcpiReply) -> None:
        mark_seen(partner.pk, ANSWERED)

    return OcpiClient(
        tokens.outbound_token(partner),
        encoding=TokenEncoding(partner.token_encoding),
        on_reply=seen if mark_seen_on_reply else None,
        on_refused=urlrefusals.recorder(partner.pk),  # a URL policy refusal goes on the trail
        partner_id=partner.pk,  # the request journal files the calls under it
        **kwargs,
    )


# One client per partner and process, kept between drains (keep-alive connections, no new TLS
# context per call): see ``pooled_client``.
clients = ClientPool()


@contextmanager
def pooled_client(partner: Partner, *, urls: Iterable[str] = ()) -> Iterator[OcpiClient]:
    """``client_for(partner)``, lent from this process's pool: the partner's client is reused
    while its token, its token encoding, the ``urls`` it is called at (its endpoints) and the
    client settings stay the same; when one changes, the old client is closed and a new one
    built. Every request still goes through the outbound URL policy (the URL checks at each
    request, the address checks at each new connection)."""
    fingerprint = (
        partner.outbound_token_encrypted,
        partner.token_encoding,
        tuple(urls),
        client_settings(),
    )
    with clients.checkout(partner.pk, fingerprint, lambda: client_for(partner)) as client:
        yield client


# --- ping ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PingResult:
    partner: str
    ok: bool
    status: str  # the status after the ping
    changed: bool  # the ping changed the status
    failures: int  # consecutive failures after the ping
    reason: str  # why it failed ("" when it succeeded)
    millis: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ping(partner: Partner) -> PingResult:
    """GET the partner's versions endpoint with our token and record the outcome."""
    started = time.monotonic()
    reason = ""
    try:
        if not partner.versions_url:
            raise PartnerProtocolError("The partner has no versions URL.")
        with client_for(
            partner,
            mark_seen_on_reply=False,  # _record_ping writes the outcome
            read_timeout=settings.OCPI_PING_TIMEOUT_SECONDS,
            encoding_fallback=False,
        ) as client:
            reply = client.get(partner.versions_url)
        if not isinstance(reply.data, list):
            raise PartnerProtocolError(
                f"GET {partner.versions_url} answered without a list of versions "
                f"(data is {type(reply.data).__name__})."
            )
    except PartnerError as exc:
        reason = exc.message
    millis = round((time.monotonic() - started) * 1000)
    return _record_ping(partner.pk, reason, millis)


def _record_ping(partner_id: int, reason: str, millis: int) -> PingResult:
    now = now_utc()
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner_id)
        partner.last_ping_at = now
        changed = False
        if reason:
            partner.ping_failures += 1
            partner.last_ping_error = reason[:2000]
            limit = max(int(settings.OCPI_PING_FAILURES), 1)
            if partner.status == ConnectionStatus.CONNECTED and partner.ping_failures >= limit:
                since = (
                    f"; last seen {format_datetime(partner.last_connection)}"
                    if partner.last_connection
                    else ""
                )
                changed = change_status(
                    partner,
                    ConnectionStatus.OFFLINE,
                    f"{partner.ping_failures} consecutive pings failed{since}. Last: {reason}",
                    at=now,
                )
        else:
            partner.ping_failures = 0
            partner.last_ping_error = ""
            partner.last_connection = now
            if partner.status in RECOVERABLE and partner.state == PartnerState.REGISTERED:
                changed = change_status(partner, ConnectionStatus.CONNECTED, PING_ANSWERED, at=now)
        partner.save(
            update_fields=[
                "last_ping_at",
                "ping_failures",
                "last_ping_error",
                "last_connection",
                "updated_at",
            ]
        )
    if not reason:
        _due(partner_id)  # this process just wrote "seen"
    signals.partner_pinged.send_robust(
        sender=Partner, partner_id=partner_id, millis=millis, ok=not reason
    )
    return PingResult(
        partner=partner.name,
        ok=not reason,
        status=partner.status,
        changed=changed,
        failures=partner.ping_failures,
        reason=reason,
        millis=millis,
    )


def pingable() -> Any:
    """Partners a ping may reach: registered and not SUSPENDED."""
    return Partner.objects.registered().exclude(status=ConnectionStatus.SUSPENDED)


def idle(at: datetime | None = None) -> Any:
    """Pingable partners not seen for OCPI_PING_IDLE_SECONDS, longest unseen first."""
    cutoff = (at or now_utc()) - timedelta(seconds=float(settings.OCPI_PING_IDLE_SECONDS))
    return (
        pingable()
        .filter(Q(last_connection__isnull=True) | Q(last_connection__lt=cutoff))
        .order_by(F("last_connection").asc(nulls_first=True), "pk")
    )


def lock_seconds() -> float:
    """How long a ping run holds its lock without extending it: one ping at most, with margin."""
    one_ping = 2 * (settings.OCPI_HTTP_CONNECT_TIMEOUT + settings.OCPI_PING_TIMEOUT_SECONDS)
    return float(max(one_ping + 30, settings.OCPI_PING_INTERVAL_SECONDS))


def ping_idle() -> list[PingResult] | None:
    """Beat: ping every idle partner, one run at a time. None: another run holds the lock."""
    with single_run(PING_LOCK, ttl=lock_seconds()) as held:
        if held is None:
            logger.info("Partner ping skipped: another ping run is in progress.")
            return None
        results = []
        for partner in idle():
            started = time.monotonic()
            try:
                result = ping(partner)
            except Exception as exc:  # one partner's surprise must not stop the run for the rest
                logger.exception("Ping of partner %s failed unexpectedly", partner)
                millis = round((time.monotonic() - started) * 1000)
                reason = f"The ping failed unexpectedly ({type(exc).__name__})."
                result = _record_ping(partner.pk, reason, millis)
            results.append(result)
            held.extend()
        return results
