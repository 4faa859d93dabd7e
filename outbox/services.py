"""Write deliveries with the change, send them after commit, in order, folding bursts.

Rules (see the README, "Push and the outbox"):
- ``enqueue`` runs inside the transaction of the change. A change of an object whose own row, or
  whose ancestor's PUT, is still pending folds into that row: the row's body becomes the newest
  state, so a burst of status changes sends one message with the last status.
- ``schedule``/``wake`` queue at most one drain task per partner (``OutboxLease.scheduled_at``,
  see ``wake``); a drain with nothing to send costs one statement and no HTTP client.
- ``drain`` sends one partner's rows oldest first, taken in batches (one statement) and sent
  one at a time over the partner's pooled client, under a lease so that two workers never send
  a partner's messages out of order. The lease is short (OCPI_OUTBOX_LEASE_SECONDS), renewed
  with each batch, before a row once a third of it has passed, and by a heartbeat thread while
  a request is in flight, and owned (the drain's task id): a drain killed with its worker
  holds it for at most one lease, then the beat sweep (every OCPI_OUTBOX_SWEEP_SECONDS) or the
  task redelivered by the broker takes over, and its in-flight row is sent again (the only
  possible duplicate).
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
import contextvars
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from django.conf import settings
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat, Now

from credentials import liveness
from credentials.models import ConnectionStatus, Partner, PartnerEndpoint, PartnerState
from ocpi_platform.ocpi.client import OcpiClient, PartnerError, PartnerRejected
from ocpi_platform.ocpi.headers import RoutingHeaders, correlation, current_correlation_id
from ocpi_platform.ocpi.parties import Party
from ocpi_platform.ocpi.types import join_url, now_utc

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
    created: list[Target] = []
    for target in targets:
        folded = _fold(pending.get(target.partner_id, []), message)
        for row in folded:
            row.changes += 1
            row.updated_at = now
            row.correlation_id = correlation_id or row.correlation_id
            row.save(update_fields=["method", "body", "changes", "updated_at", "correlation_id"])
        if folded:
            continue
        created.append(target)
    _insert(message, created, correlation_id, now)
    schedule({t.partner_id for t in targets})
    return len(created)


_INSERT_SQL = """
INSERT INTO {delivery} (
    partner_id, module, key, path, method, body, state, attempts, next_attempt_at, last_error,
    correlation_id, from_country_code, from_party_id, to_country_code, to_party_id, changes,
    created_at, updated_at
)
SELECT t.partner_id, %(module)s, %(key)s, %(path)s, %(method)s, %(body)s::jsonb, 'PENDING', 0,
    %(now)s, '', %(correlation_id)s, %(from_country_code)s, %(from_party_id)s,
    t.to_country_code, t.to_party_id, 1, %(now)s, %(now)s
FROM unnest(%(partner_ids)s::bigint[], %(to_country_codes)s::text[], %(to_party_ids)s::text[])
    WITH ORDINALITY AS t(partner_id, to_country_code, to_party_id, n)
ORDER BY t.n
"""


def _insert(message: Message, targets: list[Target], correlation_id: str, now: datetime) -> None:
    """One new row per target, in one statement (a change to 100 partners: one INSERT of 100
    rows; the ORM's bulk_create spends most of a change's time compiling them)."""
    if not targets:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _sql(_INSERT_SQL),
            {
                "module": message.module,
                "key": message.key,
                "path": message.path,
                "method": message.method,
                "body": json.dumps(message.body),
                "now": now,
                "correlation_id": correlation_id,
                "from_country_code": message.sender.country_code if message.sender else "",
                "from_party_id": message.sender.party_id if message.sender else "",
                "partner_ids": [t.partner_id for t in targets],
                "to_country_codes": [
                    t.receiver.country_code if t.receiver else "" for t in targets
                ],
                "to_party_ids": [t.receiver.party_id if t.receiver else "" for t in targets],
            },
        )


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


# --- waking drains: at most one queued per partner ----------------------------------------------


@dataclass(frozen=True)
class Wake:
    """An on-commit callback: queue a drain for each partner that needs one (see ``wake``)."""

    partner_ids: tuple[int, ...]
    countdown: float = 0.0
    force: bool = False
    stale_after: float | None = None

    def __call__(self) -> None:
        wake(
            self.partner_ids,
            countdown=self.countdown,
            force=self.force,
            stale_after=self.stale_after,
        )


def schedule(
    partner_ids: Iterable[int],
    *,
    countdown: float = 0,
    force: bool = False,
    stale_after: float | None = None,
) -> None:
    """Queue a drain for each partner once the current transaction commits (``wake``)."""
    ids = tuple(sorted(set(partner_ids)))
    if ids:
        transaction.on_commit(Wake(ids, float(countdown), force, stale_after))


_WAKE_SQL = """
INSERT INTO {lease} (partner_id, owner, scheduled_at)
SELECT p.id, '', statement_timestamp() + make_interval(secs => %(countdown)s)
FROM {partner} p WHERE p.id = ANY(%(ids)s) ORDER BY p.id
ON CONFLICT (partner_id) DO UPDATE SET scheduled_at = EXCLUDED.scheduled_at
WHERE {condition}
RETURNING partner_id
"""


def wake(
    partner_ids: Iterable[int],
    *,
    countdown: float = 0.0,
    force: bool = False,
    stale_after: float | None = None,
) -> list[int]:
    """Publish a drain task for each partner that has none queued; the partners it published for.

    ``OutboxLease.scheduled_at`` says that a drain is queued for the partner (and when it is
    due): one statement sets it where it was not set, and only those partners get a task, so a
    burst of changes queues one task per partner, not one per change and partner. A queued
    drain clears it when it starts. One that finds the lease held marks the lease
    ``recheck`` instead: the drain holding the lease looks for rows again when it releases
    it, and changes meanwhile queue nothing (they would find the lease held too). A flag in the
    future is a drain queued for later (a backoff, a Retry-After): the partner's rows wait for
    it, so changes queue nothing meanwhile, and a drain that starts earlier leaves it.
    ``force``: publish whatever the flag says (the drain's own next run, operators' actions).
    ``stale_after`` (the sweep, for partners with due rows): also when the flag was due more
    than that many seconds ago (its task was lost) or is in the future (too late for them).
    """
    ids = sorted(set(partner_ids))
    if not ids:
        return []
    lease = OutboxLease._meta.db_table
    # Not while a drain holds the lease and knows to look again when it releases it (a free
    # lease's until is NULL: the test must be false there, not unknown).
    condition = (
        f"{lease}.scheduled_at IS NULL AND NOT ({lease}.recheck"
        f" AND coalesce({lease}.until >= statement_timestamp(), FALSE))"
    )
    if force:
        condition = "TRUE"
    elif stale_after is not None:
        flag = f"{lease}.scheduled_at"
        condition = f"({condition})" + (
            f" OR {flag} < statement_timestamp() - make_interval(secs => %(stale)s)"
            f" OR {flag} > statement_timestamp()"
        )
    sql = _WAKE_SQL.format(lease=lease, partner=Partner._meta.db_table, condition=condition)
    with connection.cursor() as cursor:
        cursor.execute(
            sql, {"ids": ids, "countdown": float(countdown), "stale": float(stale_after or 0)}
        )
        woken = sorted(row[0] for row in cursor.fetchall())
    _publish(woken, countdown)
    return woken


def _publish(partner_ids: Sequence[int], countdown: float) -> None:
    """One ``deliver`` task per partner; beyond OCPI_OUTBOX_WAKE_GROUP partners, one
    ``deliver_many`` per group of that many (a change to 100 partners: 10 tasks, not 100)."""
    from .tasks import deliver, deliver_many

    group = max(int(settings.OCPI_OUTBOX_WAKE_GROUP), 1)
    if len(partner_ids) <= group:
        for partner_id in partner_ids:
            deliver.apply_async(kwargs={"partner_id": partner_id}, countdown=countdown)
        return
    # Interleaved, so that every group gets partners of every part of the list.
    count = -(-len(partner_ids) // group)
    for start in range(count):
        ids = list(partner_ids[start::count])
        deliver_many.apply_async(kwargs={"partner_ids": ids}, countdown=countdown)


# --- the lease ------------------------------------------------------------------------------------


def lease_seconds() -> float:
    """How long a drain holds its partner's lease without renewing it."""
    return max(float(settings.OCPI_OUTBOX_LEASE_SECONDS), 1.0)


def batch_size() -> int:
    return max(int(settings.OCPI_OUTBOX_BATCH), 1)


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
        _put_back_dead(partner_id)
    return True


def _put_back_dead(partner_id: int) -> int:
    return Delivery.objects.filter(partner_id=partner_id, state=DeliveryState.SENDING).update(
        state=DeliveryState.PENDING, claim=None, updated_at=now_utc()
    )


def _renew(partner_id: int, owner: str) -> bool:
    """Extend the lease; False when another drain took it over (this one must stop)."""
    leases = OutboxLease.objects.filter(partner_id=partner_id, owner=owner)
    return bool(leases.update(until=_lease_end()))


def _release(partner_id: int, owner: str) -> None:
    """Let the lease go without looking for more (an error, a Retry-After): the sweep and the
    next change queue what is left."""
    leases = OutboxLease.objects.filter(partner_id=partner_id, owner=owner)
    leases.update(until=None, owner="", recheck=False)


class _Lease:
    """The lease a drain holds, as the drain knows it: when it was last renewed (by the drain's
    batch claims or the heartbeat) and whether a renewal found it taken over."""

    def __init__(self, partner_id: int, owner: str) -> None:
        self.partner_id, self.owner = partner_id, owner
        self.renewed = time.monotonic()
        self.lost = False

    def renew(self) -> bool:
        started = time.monotonic()
        if _renew(self.partner_id, self.owner):
            self.renewed = started
        else:
            self.lost = True
        return not self.lost

    def held(self) -> bool:
        """Before each send: renewed less than a third of a lease ago, or renewed now. A
        drain presumed dead (it did not renew for a lease) finds its lease taken and stops."""
        if self.lost:
            return False
        if time.monotonic() - self.renewed < lease_seconds() / 3:
            return True
        return self.renew()


class _Heartbeat:
    """Renews a drain's lease from a thread while the drain runs: one request may take longer
    than the lease (connect and read timeouts, a partner that trickles its answer). It touches
    the database only when the drain has not renewed for a third of a lease."""

    def __init__(self, partner_id: int, owner: str, lease: _Lease | None = None) -> None:
        self.lease = lease or _Lease(partner_id, owner)
        self.partner_id, self.owner = partner_id, owner
        self.every = lease_seconds() / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"outbox-lease-{partner_id}", daemon=True
        )

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every / 2):
                if time.monotonic() - self.lease.renewed < self.every:
                    continue
                try:
                    self.lease.renew()
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


# --- the drain ------------------------------------------------------------------------------------

_OPEN_SQL = """
WITH old AS (
    SELECT partner_id, until, owner, not_before,
        (until IS NULL OR until < statement_timestamp() OR owner = %(owner)s) AS free
    FROM {lease} WHERE partner_id = %(p)s FOR UPDATE
), p AS (
    SELECT id, state, status, name, outbound_token_encrypted, token_encoding
    FROM {partner} WHERE id = %(p)s
), open AS (
    SELECT old.partner_id, old.free AND (
        p.state = 'REGISTERED' AND p.status = 'CONNECTED' AND EXISTS (
            SELECT 1 FROM {delivery} d
            WHERE d.partner_id = %(p)s AND d.state IN ('PENDING', 'SENDING')
        )
    ) AS take
    FROM old JOIN p ON p.id = old.partner_id
)
UPDATE {lease} l SET
    scheduled_at = CASE WHEN NOT %(fresh)s OR l.scheduled_at > statement_timestamp()
        THEN l.scheduled_at END,
    recheck = NOT old.free AND (%(fresh)s OR l.recheck),
    until = CASE WHEN open.take
        THEN statement_timestamp() + make_interval(secs => %(seconds)s) ELSE l.until END,
    owner = CASE WHEN open.take THEN %(owner)s ELSE l.owner END
FROM open, old, p
WHERE l.partner_id = open.partner_id AND old.partner_id = l.partner_id AND p.id = l.partner_id
RETURNING old.free, p.state, p.status, old.not_before, p.name, p.outbound_token_encrypted,
    p.token_encoding, (
    SELECT coalesce(json_agg(json_build_array(e.identifier, e.url) ORDER BY e.id), '[]')::text
    FROM {endpoint} e WHERE e.partner_id = l.partner_id AND e.role = 'RECEIVER'
), open.take, old.until IS NOT NULL, open.take AND EXISTS (
    SELECT 1 FROM {delivery} f
    WHERE f.partner_id = %(p)s AND f.state = 'FAILED' AND f.method = 'PUT'
)
"""

_BATCH_SQL = """
WITH lease AS (
    UPDATE {lease} SET until = statement_timestamp() + make_interval(secs => %(seconds)s)
    WHERE partner_id = %(p)s AND owner = %(owner)s
    RETURNING partner_id
), head AS (
    SELECT d.id, d.next_attempt_at FROM {delivery} d
    WHERE d.partner_id = %(p)s AND d.state IN ('PENDING', 'SENDING')
      AND EXISTS (SELECT 1 FROM lease)
    ORDER BY d.id LIMIT %(limit)s
), due AS (
    SELECT id FROM head WHERE id < coalesce(
        (SELECT min(id) FROM head WHERE next_attempt_at > %(now)s), 9223372036854775807
    )
)
UPDATE {delivery} d SET state = 'SENDING', claim = %(claim)s
FROM due WHERE d.id = due.id AND d.state IN ('PENDING', 'SENDING')
RETURNING d.*
"""

_RELEASE_SQL = """
WITH old AS (
    SELECT partner_id, recheck FROM {lease}
    WHERE partner_id = %(p)s AND owner = %(owner)s FOR UPDATE
)
UPDATE {lease} l SET until = NULL, owner = '', recheck = FALSE
FROM old WHERE l.partner_id = old.partner_id AND l.owner = %(owner)s
RETURNING old.recheck, l.scheduled_at <= statement_timestamp(),
    l.scheduled_at > statement_timestamp(), l.not_before, (
    SELECT d.next_attempt_at FROM {delivery} d
    WHERE d.partner_id = %(p)s AND d.state IN ('PENDING', 'SENDING') ORDER BY d.id LIMIT 1
)
"""


def _sql(template: str) -> str:
    return template.format(
        lease=OutboxLease._meta.db_table,
        partner=Partner._meta.db_table,
        endpoint=PartnerEndpoint._meta.db_table,
        delivery=Delivery._meta.db_table,
    )


def _fetch(template: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(_sql(template), params)
        return list(cursor.fetchall())


@dataclass(frozen=True)
class _Opened:
    partner: Partner  # what the client needs (id, name, token, its encoding); not saved
    not_before: datetime | None
    endpoints: dict[str, str]
    taken: bool  # the lease was taken: the partner is registered, CONNECTED, and has open rows
    dirty: bool  # the lease was not released by the drain before (it died): put back its rows
    refused: bool  # the partner has refused PUTs (FAILED)


def _open(partner_id: int, owner: str, *, fresh: bool = True) -> _Opened | None:
    """A pass's first statement: if the partner's lease is free (or ours), read what decides
    whether to send and, when the partner is registered, CONNECTED and has open rows, take the
    lease. ``fresh``: the first pass of a queued drain, which clears the partner's "drain
    queued" flag (its own); a drain's further passes leave it, as the drain it tells of is
    still queued. None: no lease row yet, or the lease is held by another drain; the first
    pass then marks it ``recheck``, so the holder looks again when it releases the lease and
    changes meanwhile queue no drain."""
    params = {"p": partner_id, "owner": owner, "seconds": lease_seconds(), "fresh": fresh}
    found = _fetch(_OPEN_SQL, params)
    if not found or not found[0][0]:
        return None
    _, state, status, not_before, name, token, encoding, endpoints, taken, dirty, refused = found[0]
    urls: dict[str, str] = {}
    for identifier, url in json.loads(endpoints):
        urls.setdefault(identifier, url)
    partner = Partner(
        pk=partner_id,
        name=name,
        state=state,
        status=status,
        outbound_token_encrypted=token,
        token_encoding=encoding,
    )
    return _Opened(partner, not_before, urls, bool(taken), bool(dirty), bool(refused))


def drain(partner_id: int, *, owner: str | None = None) -> int:
    """Send the partner's open rows in order. Returns how many it handled. Safe to run twice.

    ``owner`` names this drain in the lease (the task id: a redelivered task takes over the
    lease its killed first run left behind). With nothing to send it costs one statement and
    builds no HTTP client. Rows that came in while it held the lease it sends too, for a few
    passes; after that, or after OCPI_OUTBOX_DRAIN_SECONDS, they go with its next run, queued
    behind the other partners' drains: meanwhile more rows come in, and go in bigger batches
    (a drain does not chase one partner's changes one by one). That next run is the drain a
    change queued meanwhile if there is one, else one it queues: never a second.
    """
    owner = owner or uuid.uuid4().hex
    result = _drain_once(partner_id, owner)
    if result is None:
        # No lease row yet (a drain started by hand), or another drain holds the lease.
        if OutboxLease.objects.filter(partner_id=partner_id).exists():
            return 0
        if not Partner.objects.filter(pk=partner_id).exists():
            return 0
        OutboxLease.objects.get_or_create(partner_id=partner_id)
        result = _drain_once(partner_id, owner)
        if result is None:
            return 0
    handled, passes = result.handled, 1
    while result.again and not result.spent and passes < IN_PLACE_PASSES:
        following = _drain_once(partner_id, owner, fresh=False)
        if following is None:
            return handled
        handled += following.handled
        result, passes = following, passes + 1
    if result.again and not result.queued:
        schedule([partner_id])  # its next run, unless a change has queued one meanwhile
    return handled


def drain_many(partner_ids: Sequence[int], *, owner: str) -> int:
    """``drain`` of each partner, up to OCPI_OUTBOX_DRAIN_THREADS of them at a time (threads of
    this process, each with its own database connection, kept between tasks). Returns how many
    rows they handled.

    A drain spends most of its time waiting: for the partner's answer, for the database. One
    partner's rows still go one at a time, in order, under its lease; what runs concurrently is
    different partners. One partner's failure does not keep the others from their drain (it is
    logged; the sweep wakes that partner again). Called inside a transaction (tests), the drains
    run one after the other in it: another connection would not see what it has not committed.
    """
    ids = list(dict.fromkeys(partner_ids))
    threads = min(max(int(settings.OCPI_OUTBOX_DRAIN_THREADS), 1), len(ids))
    if threads <= 1 or connection.in_atomic_block:
        return sum(_drain_logged(pid, f"{owner}/{pid}") for pid in ids)
    pool = _drain_threads()
    futures = [
        # The caller's context goes with each drain (the correlation id, the tests' transport).
        pool.submit(
            partial(contextvars.copy_context().run, _drain_in_thread, pid, f"{owner}/{pid}")
        )
        for pid in ids
    ]
    return sum(future.result() for future in futures)


def _drain_logged(partner_id: int, owner: str) -> int:
    try:
        return drain(partner_id, owner=owner)
    except Exception:
        logger.exception("Outbox drain of partner %s failed", partner_id)
        return 0


def _drain_in_thread(partner_id: int, owner: str) -> int:
    # As before each task (ocpi_platform/celery.py): a broken connection, or one older than
    # CONN_MAX_AGE, is dropped; this thread's connection is kept between drains otherwise.
    close_old_connections()
    return _drain_logged(partner_id, owner)


class _DrainThreads:
    """A process's drain threads: each keeps its database connection between drains (a new
    PostgreSQL connection per drain would cost more than the drain) and closes it when it
    stops."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pid = os.getpid()
        self._jobs: queue.SimpleQueue[tuple[Future[int], Callable[[], int]] | None]
        self._jobs = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"outbox-drain-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[], int]) -> Future[int]:
        future: Future[int] = Future()
        self._jobs.put((future, call))
        return future

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                future, call = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(call())
                except BaseException as exc:
                    future.set_exception(exc)
        finally:
            connections.close_all()

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(30)


_threads_lock = threading.Lock()
_threads: _DrainThreads | None = None


def _drain_threads() -> _DrainThreads:
    """This process's drain threads (a forked child starts its own; a new size, new threads)."""
    global _threads
    size = max(int(settings.OCPI_OUTBOX_DRAIN_THREADS), 1)
    with _threads_lock:
        if _threads is not None and _threads.pid == os.getpid() and _threads.size == size:
            return _threads
        old, _threads = _threads, _DrainThreads(size)
    if old is not None and old.pid == os.getpid():
        old.stop()
    return _threads


def stop_drain_threads() -> None:
    """Stop this process's drain threads, closing their database connections (tests)."""
    global _threads
    with _threads_lock:
        old, _threads = _threads, None
    if old is not None and old.pid == os.getpid():
        old.stop()


# Passes of one drain over rows that came in while it held the lease; then its next run is
# queued (behind the other partners' drains, by when more rows have come in).
IN_PLACE_PASSES = 3


class _Pass(NamedTuple):
    handled: int
    again: bool  # rows are due, or came in while it held the lease
    queued: bool  # a drain is queued for the partner (due now): it sends them
    spent: bool = False  # OCPI_OUTBOX_DRAIN_SECONDS are over: the rest goes with the next run


def _drain_once(partner_id: int, owner: str, *, fresh: bool = True) -> _Pass | None:
    """One pass: (rows handled, drain again, a drain is queued). None: the lease is not ours
    to take."""
    opened = _open(partner_id, owner, fresh=fresh)
    if opened is None:
        return None
    if (
        opened.partner.state != PartnerState.REGISTERED
        or opened.partner.status != ConnectionStatus.CONNECTED
    ):
        partner = Partner.objects.get(pk=partner_id)
        if partner.state != PartnerState.REGISTERED:
            cancel_open(partner, f"not sent: the partner is {partner.get_state_display().lower()}")
        else:
            cancel_open(partner, not_connected(partner.status))
        return _Pass(0, False, False)
    # The partner asked us to wait (Retry-After): nothing goes before that.
    wait = _seconds_until(opened.not_before)
    if wait is not None:
        if opened.taken:
            if opened.dirty:  # a dead drain's rows go back under the lease (before it is freed)
                _put_back_dead(partner_id)
            _release(partner_id, owner)
        schedule([partner_id], countdown=wait, force=True)
        return _Pass(0, False, False)
    if not opened.taken:
        return _Pass(0, False, False)  # nothing to send
    lease = _Lease(partner_id, owner)
    sent, lost, retry_in = 0, False, None
    try:
        if opened.dirty:  # the last drain did not release the lease: it died, its rows go back
            _put_back_dead(partner_id)
        sent, lost, retry_in = _send_due(opened.partner, lease, opened.endpoints, opened.refused)
    except BaseException:
        if not lease.lost:
            _release(partner_id, owner)
        raise
    if lost or lease.lost:
        logger.warning("Outbox drain of %s lost its lease; stopping", partner_id)
        return _Pass(sent, False, False)
    released = _fetch(_RELEASE_SQL, {"p": partner_id, "owner": owner})
    if not released:
        logger.warning("Outbox drain of %s lost its lease; stopping", partner_id)
        return _Pass(sent, False, False)  # taken over: the new owner goes on
    recheck, queued, queued_later, not_before, head_at = released[0]
    queued = bool(queued)
    if retry_in is not None and retry_in < 0:
        return _Pass(sent, True, queued, spent=True)  # its time is up, not its rows
    if retry_in is not None:
        schedule([partner_id], countdown=retry_in, force=True)
        return _Pass(sent, False, False)
    if head_at is not None:
        wait = max(_seconds_until(head_at) or 0.0, _seconds_until(not_before) or 0.0)
        if wait > 0:
            if not queued_later:  # else the drain queued for then (a backoff) is there
                schedule([partner_id], countdown=wait, force=True)
            return _Pass(sent, False, False)
        return _Pass(sent, True, queued)  # due rows came in meanwhile
    # A drain that found the lease held: rows may have come in after this statement's start.
    return _Pass(sent, bool(recheck), queued)


def _seconds_until(moment: datetime | None) -> float | None:
    wait = (moment - now_utc()).total_seconds() if moment is not None else 0.0
    return wait if wait > 0 else None


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
    return _seconds_until(not_before)


class _Batch:
    """Rows claimed together and sent one by one; their successes are stored together."""

    def __init__(self, rows: list[Delivery]) -> None:
        self.rows = rows
        self.claim = rows[0].claim if rows else None
        self.delivered: list[Delivery] = []
        self.done: set[int] = set()

    def flush(self, *, resolve: bool) -> None:
        """Store the delivered rows as SENT (one statement per answer status); with
        ``resolve`` (the partner has refused PUTs) each delivered PUT resolves them."""
        delivered, self.delivered = self.delivered, []
        if not delivered:
            return
        now = now_utc()
        if resolve:
            for row in delivered:
                row.sent_at = now
                with transaction.atomic():
                    if _finish(row, DeliveryState.SENT, "", delivered=True) and row.method == "PUT":
                        _resolve_failed(row)
            return
        groups: dict[tuple[int | None, int | None], list[int]] = {}
        for row in delivered:
            groups.setdefault((row.http_status, row.ocpi_status), []).append(row.pk)
        for (http_status, ocpi_status), ids in groups.items():
            Delivery.objects.filter(
                pk__in=ids,
                claim=self.claim,
                state__in=[DeliveryState.SENDING, DeliveryState.CANCELLED],
            ).update(
                state=DeliveryState.SENT,
                attempts=F("attempts") + 1,
                last_error="",
                http_status=http_status,
                ocpi_status=ocpi_status,
                sent_at=now,
                updated_at=now,
            )

    def put_back(self) -> None:
        """Rows claimed but not sent go back to the queue, unsent (if still ours)."""
        left = [row.pk for row in self.rows if row.pk not in self.done]
        if left:
            Delivery.objects.filter(
                pk__in=left, state=DeliveryState.SENDING, claim=self.claim
            ).update(state=DeliveryState.PENDING, claim=None, updated_at=now_utc())


def _claim_batch(lease: _Lease) -> list[Delivery]:
    """The next due rows, oldest first, up to the first that waits out a backoff (the rows
    behind it wait too), taken (SENDING, a new ``claim``) in one statement that also renews
    the lease. Empty: nothing due, or the lease was taken over."""
    started = time.monotonic()
    rows = list(
        Delivery.objects.raw(
            _sql(_BATCH_SQL),
            {
                "p": lease.partner_id,
                "owner": lease.owner,
                "seconds": lease_seconds(),
                "limit": batch_size(),
                "now": now_utc(),
                "claim": uuid.uuid4(),
            },
        )
    )
    if rows:
        lease.renewed = started
    rows.sort(key=lambda row: row.pk)
    return rows


def _send_due(
    partner: Partner, lease: _Lease, endpoints: dict[str, str], refused: bool
) -> tuple[int, bool, float | None]:
    """Send the partner's due rows in order, in batches: (how many, lease lost, seconds to
    wait after a transient failure; -1: OCPI_OUTBOX_DRAIN_SECONDS are over, rows are left)."""
    sent = 0
    budget_end = time.monotonic() + float(settings.OCPI_OUTBOX_DRAIN_SECONDS)
    urls = tuple(sorted(endpoints.items()))
    with (
        _Heartbeat(partner.pk, lease.owner, lease),
        liveness.pooled_client(partner, urls=[u for _, u in urls]) as client,
    ):
        while True:
            batch = _Batch(_claim_batch(lease))
            if not batch.rows:
                return sent, False, None
            again = False
            try:
                for row in batch.rows:
                    if not lease.held():
                        # Taken over (we were presumed dead): the new owner goes on.
                        batch.flush(resolve=refused)
                        batch.put_back()
                        return sent, True, None
                    outcome = _send(partner, client, row, endpoints, batch, refused)
                    batch.done.add(row.pk)
                    if isinstance(outcome, float):
                        # A transient failure: the rows behind wait (out of order otherwise).
                        batch.flush(resolve=refused)
                        batch.put_back()
                        return sent, False, outcome
                    sent += 1
                    if outcome is _FAILED_PUT:
                        refused = True
                    elif outcome is _AGAIN:
                        batch.flush(resolve=refused)
                        batch.put_back()
                        again = True
                        break
                batch.flush(resolve=refused)
            except BaseException:
                # Cut short (time limit, a bug): what was delivered is stored; the row in flight
                # and those behind it go back to the queue, unsent.
                with contextlib.suppress(Exception):
                    batch.flush(resolve=refused)
                batch.put_back()
                raise
            if not again and len(batch.rows) < batch_size():
                return sent, False, None
            if time.monotonic() > budget_end:
                return sent, False, -1.0  # more to send: the next run, behind the others


_FAILED_PUT = object()  # a PUT was refused: from now on PATCHes check for refused PUTs
_AGAIN = object()  # the row became a PUT to send next: claim again from it


def _send(
    partner: Partner,
    client: OcpiClient,
    row: Delivery,
    endpoints: dict[str, str],
    batch: _Batch,
    refused: bool,
) -> object | float | None:
    """Send one claimed row; its outcome: None, ``_FAILED_PUT``, ``_AGAIN``, or the seconds to
    wait after a transient failure (the partner's rows wait).
    A delivered row is stored with its batch (``flush``); any other outcome is stored at once,
    after the deliveries before it."""
    base = endpoints.get(row.module)
    if base is None:
        batch.flush(resolve=refused)
        _finish(row, DeliveryState.CANCELLED, f"the partner has no {row.module} RECEIVER endpoint")
        return None
    if refused and row.method == "PATCH" and row.module in current_state:
        put = _refused_put(row)
        if put is not None and not _as_put(row, f"a PUT of {put} was refused"):
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
            batch.flush(resolve=refused)
            row.attempts += 1
            row.http_status, row.ocpi_status = exc.http_status, exc.ocpi_status
            if exc.permanent and exc.http_status != 401:
                if row.method == "PATCH" and row.module in current_state and unknown_object(exc):
                    # The partner lacks the object: send its current state in full, next.
                    if _as_put(row, "the partner does not know the object"):
                        _finish(row, DeliveryState.PENDING, f"{exc.message} Sent as a PUT.")
                    return _AGAIN
                if _finish(row, DeliveryState.FAILED, exc.message):
                    logger.warning("Delivery %s to %s failed for good: %s", row.pk, partner, exc)
                    if row.method == "PUT":
                        return _FAILED_PUT
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
    batch.delivered.append(row)
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
        schedule((row.partner_id for row in queued), force=True)
    return len(queued)


def sweep() -> int:
    """Beat: restart drains that died (worker lost) and wake partners whose rows are due.

    It changes no row: a dead drain's SENDING rows are put back by the drain it starts, under
    the lease that drain takes (here, outside any lease, a drain that took the lease between
    two statements would have its row in flight put back). A partner whose drain died (its
    lease ran out unreleased, or rows are left SENDING) gets a new drain whatever its flag
    says; one with due rows gets one when no drain is queued, or when the one queued is
    overdue by OCPI_OUTBOX_WAKE_STALE_SECONDS (its task was lost). Returns how many partners
    it woke.
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
    expired = set(OutboxLease.objects.filter(until__lt=Now()).values_list("partner_id", flat=True))
    # Partners that asked us to wait (Retry-After) are woken by the drain scheduled for then.
    busy |= set(OutboxLease.objects.filter(not_before__gt=now).values_list("partner_id", flat=True))
    wake_ids = (dead | due) - busy
    restart = wake_ids & (dead | expired)
    with transaction.atomic():
        schedule(restart, force=True)
        schedule(wake_ids - restart, stale_after=float(settings.OCPI_OUTBOX_WAKE_STALE_SECONDS))
    return len(wake_ids)
