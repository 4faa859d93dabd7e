"""Write deliveries with the change, send them after commit, in order, folding bursts.

Rules (see the README, "Push and the outbox"):
- ``enqueue`` runs inside the transaction of the change. A change of an object whose own row, or
  whose ancestor's PUT, is still pending folds into that row: the row's body becomes the newest
  state, so a burst of status changes sends one message with the last status.
- ``drain`` sends one partner's rows oldest first, one at a time, under a lease so that two
  workers never send a partner's messages out of order. The lease is short
  (OCPI_OUTBOX_LEASE_SECONDS), renewed after each row and by a heartbeat thread while a request
  is in flight, and owned (the drain's task id): a drain killed with its worker holds it for at
  most one lease, then the beat sweep (every OCPI_OUTBOX_SWEEP_SECONDS) or the task redelivered
  by the broker takes over, and its in-flight row is sent again (the only possible duplicate).
  Only a drain that took the lease puts a dead drain's in-flight rows back (the sweep merely
  starts drains), and a send's outcome is stored only if its row still carries the ``claim``
  written when it was taken: a row put back, folded into or taken again meanwhile is not
  marked SENT by a reply that carried an older body. Lease times are the database's clock.
- A transient failure (timeout, 5xx, 3xxx, 429, 401 while a partner is rotating) stops the
  drain and schedules the row again with backoff, or after the partner's ``Retry-After`` when
  that is later; the rows behind it wait, and nothing goes to the partner before its
  ``Retry-After``. A permanent failure (the partner refused the message) is kept as FAILED for
  the operator, who can retry it from the admin; the drain goes on. A PUT delivered later (the
  current state of the object and all below it) resolves the FAILED rows of that object and
  below: they become CANCELLED, saying so.
- Unknown objects: a PATCH answered "unknown" (OCPI 2003 or HTTP 404) becomes a PUT of the
  object's current state (the whole client owned object, e.g. the location of an EVSE), sent
  next; a PUT answered so is a permanent failure like any other. A PATCH of an object whose PUT
  (its own or its location's) was refused and not sent since is not sent blind either: it goes
  as a PUT of the current state, so the partner gets the object once the cause is fixed.
- Nothing goes to a partner that is not registered, OFFLINE or SUSPENDED: its open rows are
  cancelled, with the reason. When it is back, the modules resend the current state in full
  (``partner_status_changed``), rather than every change it missed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat, Now

from credentials import liveness
from credentials.models import ConnectionStatus, Partner, PartnerState
from ocpi_platform.ocpi.client import OcpiClient, PartnerError, PartnerRejected
from ocpi_platform.ocpi.headers import RoutingHeaders, correlation, current_correlation_id
from ocpi_platform.ocpi.parties import Party
from ocpi_platform.ocpi.types import InterfaceRole, join_url, now_utc

from .models import Delivery, DeliveryState, OutboxLease

logger = logging.getLogger(__name__)

# Client Owned Objects live at {country_code}/{party_id}/{object_id}[/...] (spec transport ›
# Client Owned Object Push): the first three segments of a key or path name the whole object.
OBJECT_DEPTH = 3

# Per module: the current full body of an object by its key (None: no longer to be sent). A
# retried row sends that, as a PUT, rather than the body it was written with: later changes of
# the object may have reached the partner since, and must not be undone.
CurrentState = Callable[[str], dict[str, Any] | None]
current_state: dict[str, CurrentState] = {}


@dataclass(frozen=True)
class Message:
    """One change of one object, for every partner in ``targets``.

    ``tree`` holds the current full body of the object and of each ancestor, by key, so that a
    pending PUT of any of them can be brought up to date instead of sending one more message.
    Keys are upper case (CiString ids), ordered from the root: LOCATION, LOCATION/EVSE, ...
    """

    module: str
    key: str
    path: str
    method: str
    body: dict[str, Any]
    tree: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    sender: Party | None = None


@dataclass(frozen=True)
class Target:
    partner_id: int
    receiver: Party | None = None


def enqueue(message: Message, targets: Sequence[Target]) -> int:
    """Record ``message`` for each target; call inside the change's transaction. Returns rows."""
    if not targets:
        return 0
    keys = [k for k in message.tree if k == message.key or message.key.startswith(k + "/")]
    keys = keys or [message.key]
    now = now_utc()
    pending: dict[int, list[Delivery]] = {}
    rows = (
        Delivery.objects.select_for_update()
        .filter(
            partner_id__in=[t.partner_id for t in targets],
            state=DeliveryState.PENDING,
            module=message.module,
        )
        # The rows that carry this object: its own, its ancestors' and its descendants'.
        .filter(Q(key__in=keys) | Q(key__startswith=message.key + "/"))
        .order_by("id")
    )
    for pending_row in rows:
        pending.setdefault(pending_row.partner_id, []).append(pending_row)
    correlation_id = current_correlation_id.get() or ""
    created: list[Delivery] = []
    for target in targets:
        folded = _fold(pending.get(target.partner_id, []), message)
        for row in folded:
            row.changes += 1
            row.updated_at = now
            row.correlation_id = correlation_id or row.correlation_id
            row.save(update_fields=["method", "body", "changes", "updated_at", "correlation_id"])
        if folded:
            continue
        created.append(
            Delivery(
                partner_id=target.partner_id,
                module=message.module,
                key=message.key,
                path=message.path,
                method=message.method,
                body=message.body,
                correlation_id=correlation_id,
                from_country_code=message.sender.country_code if message.sender else "",
                from_party_id=message.sender.party_id if message.sender else "",
                to_country_code=target.receiver.country_code if target.receiver else "",
                to_party_id=target.receiver.party_id if target.receiver else "",
                created_at=now,
                updated_at=now,
            )
        )
    Delivery.objects.bulk_create(created)
    schedule({t.partner_id for t in targets})
    return len(created)


def _fold(rows: list[Delivery], message: Message) -> list[Delivery]:
    """The pending rows this change folds into (updated in memory); empty: a new row is due.

    ``rows`` are the partner's pending rows of the object, its ancestors and its descendants,
    oldest first. Those that carry data of the object are its own rows, the PUTs of an ancestor
    and, when the change is a PUT (which carries the whole subtree), its descendants' rows. The
    change may only fold into the newest of these: what is sent after it must not carry older
    data. When that row is a PUT of the object or of an ancestor, every such pending PUT is
    brought up to the current state; when it is the object's own PATCH, it takes the new fields
    (a PUT turns it into a PUT).
    """
    subtree = message.key + "/"
    carrying = [
        row
        for row in rows
        if row.key == message.key
        or (row.method == "PUT" and row.key in message.tree)
        or (message.method == "PUT" and row.key.startswith(subtree))
    ]
    if not carrying:
        return []
    newest = carrying[-1]
    puts = [row for row in carrying if row.method == "PUT" and row.key in message.tree]
    if newest in puts:
        for row in puts:
            row.body = message.tree[row.key]
        return puts
    if newest.key != message.key:
        return []  # a descendant's row goes after the object's: add a row behind it
    if message.method == "PUT":
        newest.method = "PUT"
        newest.body = message.tree.get(message.key) or message.body
    elif message.method == "DELETE" or newest.method == "DELETE":
        # A removal replaces what was pending; a PATCH after a pending DELETE is sent after it.
        if message.method != "DELETE":
            return []
        newest.method, newest.body = "DELETE", {}
    else:
        newest.body = {**newest.body, **message.body}
    return [newest]


def schedule(partner_ids: Iterable[int], *, countdown: float = 0) -> None:
    """Start a drain for each partner once the current transaction commits."""
    from .tasks import deliver

    for partner_id in sorted(set(partner_ids)):
        transaction.on_commit(
            partial(deliver.apply_async, kwargs={"partner_id": partner_id}, countdown=countdown)
        )


def lease_seconds() -> float:
    """How long a drain holds its partner's lease without renewing it."""
    return max(float(settings.OCPI_OUTBOX_LEASE_SECONDS), 1.0)


def _lease_end() -> Any:
    """The end of a lease taken or renewed now, by the database's clock (as is every comparison
    of a lease's end): a worker whose clock is ahead must not see a live lease as expired."""
    return Now() + timedelta(seconds=lease_seconds())


def _claim(partner_id: int, owner: str) -> bool:
    """Take the partner's lease: free, expired, or already ``owner``'s (the broker redelivered
    the task of a worker that was killed). Rows left SENDING are a dead drain's (a live drain
    holds the lease): back to PENDING, under the lease just taken, before anything is sent.
    """
    OutboxLease.objects.get_or_create(partner_id=partner_id)
    with transaction.atomic():
        claimed = (
            OutboxLease.objects.filter(partner_id=partner_id)
            .filter(Q(until__isnull=True) | Q(until__lt=Now()) | Q(owner=owner))
            .update(until=_lease_end(), owner=owner)
        )
        if not claimed:
            return False
        Delivery.objects.filter(partner_id=partner_id, state=DeliveryState.SENDING).update(
            state=DeliveryState.PENDING, claim=None, updated_at=now_utc()
        )
    return True


def _renew(partner_id: int, owner: str) -> bool:
    """Extend the lease; False when another drain took it over (this one must stop)."""
    leases = OutboxLease.objects.filter(partner_id=partner_id, owner=owner)
    return bool(leases.update(until=_lease_end()))


def _release(partner_id: int, owner: str) -> None:
    OutboxLease.objects.filter(partner_id=partner_id, owner=owner).update(until=None, owner="")


class _Heartbeat:
    """Renews a drain's lease from a thread while the drain runs: one request may take longer
    than the lease (connect and read timeouts, a partner that trickles its answer)."""

    def __init__(self, partner_id: int, owner: str) -> None:
        self.partner_id, self.owner = partner_id, owner
        self.every = lease_seconds() / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"outbox-lease-{partner_id}", daemon=True
        )

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    _renew(self.partner_id, self.owner)
                except Exception:  # the database blinked: the next beat tries again
                    logger.warning("Outbox lease of %s not renewed", self.partner_id, exc_info=True)
                    # Django never reopens a broken connection by itself: drop this thread's,
                    # so that the next beat connects again.
                    with contextlib.suppress(Exception):
                        connection.close()
        finally:
            connections.close_all()  # this thread's own connection, if it opened one

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _endpoint(partner: Partner, module: str) -> str | None:
    return partner.endpoint_url(module, InterfaceRole.RECEIVER)


def drain(partner_id: int, *, owner: str | None = None) -> int:
    """Send the partner's open rows in order. Returns how many it handled. Safe to run twice.

    ``owner`` names this drain in the lease (the task id: a redelivered task takes over the
    lease its killed first run left behind).
    """
    owner = owner or uuid.uuid4().hex
    if not _claim(partner_id, owner):
        return 0
    sent = 0
    retry_in: float | None = None
    lost = False
    try:
        partner = Partner.objects.filter(pk=partner_id).first()
        if partner is None:
            return 0
        if partner.state != PartnerState.REGISTERED:
            cancel_open(partner, f"not sent: the partner is {partner.get_state_display().lower()}")
            return 0
        if partner.status != ConnectionStatus.CONNECTED:
            cancel_open(partner, not_connected(partner.status))
            return 0
        # The partner asked us to wait (Retry-After): nothing goes before that.
        retry_in = asked_to_wait(partner_id)
        if retry_in is None:
            sent, retry_in, lost = _send_due(partner, owner)
    finally:
        if not lost:
            _release(partner_id, owner)
    if lost:
        return sent
    if retry_in is not None:
        schedule([partner_id], countdown=retry_in)
    elif Delivery.objects.open().filter(partner_id=partner_id).exists():
        # A row committed while we released the lease: its own task may have given up.
        schedule([partner_id])
    return sent


def hold(partner_id: int, seconds: float) -> None:
    """The partner asked us (``Retry-After``) to call it again no earlier than in ``seconds``:
    every push and pull to it waits until then (a later hold never shortens an earlier one)."""
    until = now_utc() + timedelta(seconds=seconds)
    OutboxLease.objects.get_or_create(partner_id=partner_id)
    OutboxLease.objects.filter(partner_id=partner_id).filter(
        Q(not_before__isnull=True) | Q(not_before__lt=until)
    ).update(not_before=until)


def asked_to_wait(partner_id: int) -> float | None:
    """Seconds until the partner's ``Retry-After`` is over, or None when it is (pushes and
    pulls)."""
    not_before = (
        OutboxLease.objects.filter(partner_id=partner_id)
        .values_list("not_before", flat=True)
        .first()
    )
    wait = (not_before - now_utc()).total_seconds() if not_before is not None else 0.0
    return wait if wait > 0 else None


def _send_due(partner: Partner, owner: str) -> tuple[int, float | None, bool]:
    """Send the partner's due rows in order: (how many, seconds to wait, lease lost)."""
    sent = 0
    with _Heartbeat(partner.pk, owner), liveness.client_for(partner) as client:
        while True:
            if not _renew(partner.pk, owner):
                # Taken over (we were presumed dead): the new owner goes on.
                logger.warning("Outbox drain of %s lost its lease; stopping", partner.pk)
                return sent, None, True
            row = Delivery.objects.open().filter(partner_id=partner.pk).order_by("id").first()
            if row is None:
                return sent, None, False
            wait = (row.next_attempt_at - now_utc()).total_seconds()
            if wait > 0:
                return sent, wait, False
            try:
                retry_in = _send(partner, client, row)
            except BaseException:
                # Cut short (time limit, a bug): the row goes back to the queue, unsent.
                Delivery.objects.filter(
                    pk=row.pk, state=DeliveryState.SENDING, claim=row.claim
                ).update(state=DeliveryState.PENDING, claim=None, updated_at=now_utc())
                raise
            if retry_in is not None:
                return sent, retry_in, False
            sent += 1


def _send(partner: Partner, client: OcpiClient, row: Delivery) -> float | None:
    """Send one row; the seconds to wait when it failed transiently, else None."""
    claim = uuid.uuid4()
    claimed = Delivery.objects.filter(pk=row.pk, state=row.state, updated_at=row.updated_at)
    if not claimed.update(state=DeliveryState.SENDING, claim=claim):
        return None  # folded or retried meanwhile: read it again
    row.state, row.claim = DeliveryState.SENDING, claim
    base = _endpoint(partner, row.module)
    if base is None:
        _finish(row, DeliveryState.CANCELLED, f"the partner has no {row.module} RECEIVER endpoint")
        return None
    if row.method == "PATCH" and row.module in current_state:
        refused = _refused_put(row)
        if refused is not None and not _as_put(row, f"a PUT of {refused} was refused"):
            return None  # no longer ours to send, or cancelled meanwhile
    client.routing = RoutingHeaders(
        row.from_country_code or None,
        row.from_party_id or None,
        row.to_country_code or None,
        row.to_party_id or None,
    )
    with correlation(row.correlation_id or None):
        try:
            body = None if row.method == "DELETE" else row.body
            reply = client.request(row.method, join_url(base, row.path), json=body)
        except PartnerError as exc:
            row.attempts += 1
            row.http_status, row.ocpi_status = exc.http_status, exc.ocpi_status
            if exc.permanent and exc.http_status != 401:
                if row.method == "PATCH" and row.module in current_state and unknown_object(exc):
                    # The partner lacks the object: send its current state in full, next.
                    if _as_put(row, "the partner does not know the object"):
                        _finish(row, DeliveryState.PENDING, f"{exc.message} Sent as a PUT.")
                    return None
                if _finish(row, DeliveryState.FAILED, exc.message):
                    logger.warning("Delivery %s to %s failed for good: %s", row.pk, partner, exc)
                return None
            answered = now_utc()
            delay = backoff(row.attempts)
            if exc.retry_after is not None:
                # The partner said when to come back: no earlier, for any of its rows.
                delay = max(delay, exc.retry_after)
                hold(partner.pk, exc.retry_after)
            row.next_attempt_at = answered + timedelta(seconds=delay)
            if not _finish(row, DeliveryState.PENDING, exc.message):
                return None  # cancelled while in flight (the partner went OFFLINE): stays so
            logger.info("Delivery %s to %s waits %ss: %s", row.pk, partner, delay, exc)
            return delay
    row.attempts += 1
    row.http_status, row.ocpi_status = reply.http_status, reply.status_code
    row.sent_at = now_utc()
    with transaction.atomic():
        if _finish(row, DeliveryState.SENT, "", delivered=True) and row.method == "PUT":
            _resolve_failed(row)
    return None


def unknown_object(exc: PartnerError) -> bool:
    """The partner answered that it does not know the object (OCPI 2003, or HTTP 404 that is
    not a hub's error)."""
    return isinstance(exc, PartnerRejected) and exc.unknown_object


def _object(key_or_path: str) -> str:
    """The client owned object a key or path is in (a location for an EVSE, say)."""
    return "/".join(key_or_path.split("/")[:OBJECT_DEPTH])


def _refused_put(row: Delivery) -> str | None:
    """The key of a refused PUT of the row's object or of an object above it that no PUT sent
    since has made up for (the partner may not have the object), else None."""
    parts = row.key.split("/")
    lineage = ["/".join(parts[:n]) for n in range(min(OBJECT_DEPTH, len(parts)), len(parts) + 1)]
    refused = (
        Delivery.objects.filter(
            partner_id=row.partner_id,
            module=row.module,
            state=DeliveryState.FAILED,
            method="PUT",
            key__in=lineage,
        )
        .order_by("-updated_at")
        .values_list("key", "updated_at")
        .first()
    )
    if refused is None:
        return None
    key, at = refused
    made_up = Delivery.objects.filter(
        partner_id=row.partner_id,
        module=row.module,
        state=DeliveryState.SENT,
        method="PUT",
        key__in=lineage[: lineage.index(key) + 1],
        sent_at__gt=at,
    )
    return None if made_up.exists() else key


def _as_put(row: Delivery, why: str) -> bool:
    """Turn the row (SENDING) into a PUT of its whole object's current state, in memory and in
    the database. False when that cannot be sent: the object is no longer ours (the row is
    cancelled), or the row was cancelled meanwhile. The module must have a ``current_state``."""
    key, path = _object(row.key), _object(row.path)
    body = current_state[row.module](key)
    if body is None:
        _finish(row, DeliveryState.CANCELLED, f"not sent ({why}): the object is no longer ours")
        return False
    row.method, row.key, row.path, row.body = "PUT", key, path, body
    logger.info("Delivery %s to %s: %s; sent as a PUT of %s", row.pk, row.partner_id, why, key)
    return bool(
        Delivery.objects.filter(pk=row.pk, state=DeliveryState.SENDING, claim=row.claim).update(
            method="PUT", key=key, path=path, body=body, updated_at=now_utc()
        )
    )


def backoff(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` consecutive transient failures."""
    steps = settings.OCPI_OUTBOX_BACKOFF or (60.0,)
    return float(steps[min(max(attempts, 1), len(steps)) - 1])


def _finish(row: Delivery, state: str, error: str, *, delivered: bool = False) -> bool:
    """Store the outcome of the send that took the row (``row.claim``), if the row is as it left.

    A row put back to PENDING meanwhile (its drain was presumed dead), perhaps folded into
    since, or taken again by another drain, no longer carries the claim: it is left alone, to
    be sent (again) with what it carries now. A row cancelled while it was in flight stays
    cancelled unless it was ``delivered`` (then it is SENT: the partner has it). Returns
    whether the outcome was stored.
    """
    rows = Delivery.objects.filter(pk=row.pk, claim=row.claim)
    if delivered:
        rows = rows.filter(state__in=[DeliveryState.SENDING, DeliveryState.CANCELLED])
    else:
        rows = rows.filter(state=DeliveryState.SENDING)
    return bool(
        rows.update(
            state=state,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=error[:2000],
            http_status=row.http_status,
            ocpi_status=row.ocpi_status,
            sent_at=row.sent_at,
            updated_at=now_utc(),
        )
    )


def _resolve_failed(put: Delivery) -> int:
    """A delivered PUT carried the current state of its object and of all below it: the
    partner's refusals of that object and below it (FAILED rows) are made up for. They become
    CANCELLED, saying so, so that failure counts drop and later PATCHes go as PATCHes again."""
    resolved = (
        Delivery.objects.filter(
            partner_id=put.partner_id, module=put.module, state=DeliveryState.FAILED
        )
        .filter(Q(key=put.key) | Q(key__startswith=put.key + "/"))
        .exclude(pk=put.pk)
        .update(
            state=DeliveryState.CANCELLED,
            last_error=Concat(
                F("last_error"), Value(f" (resolved: delivery {put.pk} sent the current state)")
            ),
            updated_at=now_utc(),
        )
    )
    if resolved:
        logger.info("Delivery %s to %s resolved %s failed rows", put.pk, put.partner_id, resolved)
    return resolved


def not_connected(status: str) -> str:
    return f"not sent: the partner is {status}; its current state is sent in full when it is back"


def on_status_changed(sender: Any, *, partner: Partner, old: str, new: str, **kwargs: Any) -> None:
    """A partner that goes OFFLINE or SUSPENDED gets nothing more until it is back."""
    if new in (ConnectionStatus.OFFLINE, ConnectionStatus.SUSPENDED):
        cancel_open(partner, not_connected(new))


def cancel_open(partner: Partner, reason: str) -> int:
    return (
        Delivery.objects.open()
        .filter(partner=partner)
        .update(state=DeliveryState.CANCELLED, last_error=reason, updated_at=now_utc())
    )


def retry(rows: Iterable[Delivery]) -> int:
    """Operator action: send failed or cancelled rows again, now, with the object's current
    state. Returns how many were queued again."""
    ids = [row.pk for row in rows if row.state in (DeliveryState.FAILED, DeliveryState.CANCELLED)]
    now = now_utc()
    queued: list[Delivery] = []
    with transaction.atomic():
        for row in Delivery.objects.select_for_update().filter(pk__in=ids).order_by("id"):
            state_of = current_state.get(row.module)
            if state_of is not None and row.method != "DELETE":
                body = state_of(row.key)
                if body is None:
                    row.state = DeliveryState.CANCELLED
                    row.last_error = "not sent again: the object is no longer ours to send"
                    row.save(update_fields=["state", "last_error", "updated_at"])
                    continue
                row.method, row.body = "PUT", body
            row.state, row.next_attempt_at, row.updated_at = DeliveryState.PENDING, now, now
            row.claim = None
            row.save(
                update_fields=["method", "body", "state", "next_attempt_at", "updated_at", "claim"]
            )
            queued.append(row)
        schedule(row.partner_id for row in queued)
    return len(queued)


def sweep() -> int:
    """Beat: restart drains that died (worker lost) and wake partners whose rows are due.

    It changes no row: a dead drain's SENDING rows are put back by the drain it starts, under
    the lease that drain takes (here, outside any lease, a drain that took the lease between
    two statements would have its row in flight put back). Returns how many drains it started.
    """
    now = now_utc()
    busy = set(OutboxLease.objects.filter(until__gte=Now()).values_list("partner_id", flat=True))
    # A row is SENDING only while its partner's lease is held: without one, its drain died.
    dead = set(
        Delivery.objects.filter(state=DeliveryState.SENDING)
        .values_list("partner_id", flat=True)
        .distinct()
    )
    due = set(
        Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .values_list("partner_id", flat=True)
        .distinct()
    )
    # Partners that asked us to wait (Retry-After) are woken by the drain scheduled for then.
    busy |= set(OutboxLease.objects.filter(not_before__gt=now).values_list("partner_id", flat=True))
    wake = (dead | due) - busy
    with transaction.atomic():
        schedule(wake)
    return len(wake)
