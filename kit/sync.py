"""Pull a partner's objects of a module from its sender interface (spec transport › Pagination).

One ``ModuleSync`` row per (partner, module) holds the state; a ``Puller`` says what is module
specific (its model of copies, how an object is stored, its task). Locations and every module
declared to the kit use it.

The first sync fetches everything; later ones ask for ``date_from`` = the start of the last
successful sync. Pages are followed through ``Link`` headers (a partner whose paging loops is
stopped). Each object is stored with the same rules as a pushed PUT (a page at once where the
module can); an invalid object or one of a party the partner does not own is counted and
skipped, the rest is kept.

A full list is the partner's whole truth (spec transport › Pagination): after a full sync that
went through every page, the copies the partner no longer lists are deleted. Not when the pages
held fewer objects than the partner's ``X-Total-Count`` announced: a partner whose paging is
broken must not wipe our copies. Nor a copy written since the pull started (the partner pushed
it after serving its page: ``modified_at``). And offset paging cannot see every change of the
list (a drop and an add between two pages leave the count as it was, and one object is never
read): each copy not listed is asked for first (the sender's ``GET {module}/{id}``, for the modules
whose ``Puller.check_unlisted``; the others keep such copies)
and deleted only when the partner answers that it does not exist (HTTP 404, OCPI 2003); an
object it still serves is stored; any other answer keeps the copy (a transient failure ends the
checks of this pull). At most ``MAX_CHECKS`` copies are checked per pull; the rest are kept.

A running pull records its progress after every page (``progress_at``, and ``next_url``, the
page it reads next); it is taken to have died only when that is older than ``STALE``, so a long
pull is never started a second time. A page answered 429/5xx with ``Retry-After`` makes the pull
WAITING: the task is sent again to run no earlier than the partner asked, and it continues at
``next_url`` (a full pull that waited deletes nothing: the keys it saw before are gone).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.db import transaction
from django.db.models import Q

from credentials import liveness
from credentials.models import ConnectionStatus, Partner, PartnerState
from ocpi_platform.ocpi.client import OcpiClient, PartnerError, PartnerRejected, UrlRefused
from ocpi_platform.ocpi.errors import InvalidParameters, OcpiError
from ocpi_platform.ocpi.headers import RoutingHeaders
from ocpi_platform.ocpi.parties import our_parties
from ocpi_platform.ocpi.types import InterfaceRole, Role, format_datetime, now_utc
from outbox import services as outbox

from .models import ModuleSync, SyncState
from .spec import ObjectKey

logger = logging.getLogger(__name__)

# A running sync that has not reported progress (a page) for this long is taken to have died.
# One page takes at most a few HTTP timeouts (OCPI_HTTP_READ_TIMEOUT) and storing it.
STALE = timedelta(minutes=10)
# A partner that asks us to wait (Retry-After) more often than this without a page between
# fails the pull.
MAX_WAITS = 5
# How many rejected objects are described in the sync's message.
REJECTIONS_SHOWN = 5
# At most this many copies a complete full list left out are checked (a GET of each from the
# partner's sender) per pull; the others are kept, and a later full pull checks them.
MAX_CHECKS = 500

Progress = Callable[[ModuleSync], None]


@dataclass(frozen=True)
class Puller:
    """What the pull of one module needs to know.

    ``model``: the copies (``partner``, ``cc_upper``, ``pid_upper``, ``id_upper``,
    ``modified_at`` and the id column ``id_column``); ``store(partner_id, key, item)`` stores
    one object as a pushed PUT would (raises OcpiError to reject it); ``store_page``, when
    given, stores a page's objects at once with the same rules; ``send(partner_id, full,
    countdown)`` queues the module's pull task after commit.
    """

    module: str
    noun: str  # plural, for messages: "locations"
    owner: Role  # the partner's role that owns the data (addressed by OCPI-to-*)
    receiving_roles: tuple[str, ...]
    model: Any
    id_column: str
    store: Callable[[int, ObjectKey, Any], None]
    send: Callable[[int, bool, float], None]
    # A page at once (faster): (partner_id, [(key, item)]) -> per item None or the rejection.
    store_page: Callable[[int, list[tuple[ObjectKey, Any]]], list[OcpiError | None]] | None = None
    id_field: str = "id"
    type_field: str | None = None
    type_default: str = ""
    check_unlisted: bool = True


_pullers: dict[str, Puller] = {}


def register(puller: Puller) -> None:
    _pullers[puller.module] = puller


def puller_of(module: str) -> Puller:
    return _pullers[str(module)]


def pullers() -> list[Puller]:
    return list(_pullers.values())


def rows(puller: Puller) -> Any:
    return ModuleSync.objects.filter(module=puller.module)


class SyncUnavailable(Exception):
    """The partner cannot be pulled (not registered, no sender endpoint of the module)."""


def sender_url(puller: Puller, partner: Partner) -> str | None:
    return partner.endpoint_url(puller.module, InterfaceRole.SENDER)


def _receiving(puller: Puller) -> bool:
    return any(p.role in puller.receiving_roles for p in our_parties())


def can_pull(puller: Puller, partner_id: int) -> bool:
    partner = (
        Partner.objects.registered()
        .exclude(status=ConnectionStatus.SUSPENDED)
        .filter(pk=partner_id)
        .first()
    )
    return bool(partner and _receiving(puller) and sender_url(puller, partner))


def _live() -> Q:
    """A run that reported progress within ``STALE`` (rows from before progress_at: started)."""
    since = now_utc() - STALE
    return Q(state=SyncState.RUNNING) & (
        Q(progress_at__gte=since) | Q(progress_at__isnull=True, started_at__gte=since)
    )


def _waiting() -> Q:
    """A run waiting for the time the partner asked for (Retry-After)."""
    return Q(state=SyncState.WAITING, retry_at__gt=now_utc())


def cannot_pull(puller: Puller, partner: Partner) -> str | None:
    """Why the partner's objects cannot be pulled now (for the operator), or None."""
    if can_pull(puller, partner.pk):
        mine = rows(puller).filter(partner=partner)
        if mine.filter(_live()).exists():
            return "a pull is running already"
        waiting = mine.filter(_waiting()).first()
        if waiting is not None:
            return (
                f"the partner asked us to wait until {format_datetime(waiting.retry_at)} "
                "(Retry-After); the pull continues then"
            )
        return None
    if partner.state != PartnerState.REGISTERED:
        return f"it is not registered ({partner.get_state_display().lower()})"
    if partner.status == ConnectionStatus.SUSPENDED:
        return "it is suspended"
    if not _receiving(puller):
        return f"none of our parties (OCPI_PARTIES) receives {puller.noun}"
    return f"it offers no {puller.module} SENDER endpoint"


def _row(puller: Puller, partner_id: int) -> Any:
    ModuleSync.objects.get_or_create(partner_id=partner_id, module=puller.module)
    return rows(puller).filter(partner_id=partner_id)


def request_pull(
    puller: Puller, partner_id: int, *, full: bool = False, countdown: float = 0
) -> None:
    """Queue a pull (admin action, registration): marked QUEUED, sent after commit.

    A pull that waits for the partner (Retry-After) stays WAITING and the task is not sent
    before the time the partner asked for.
    """
    mine = _row(puller, partner_id)
    mine.exclude(state=SyncState.RUNNING).exclude(_waiting()).update(state=SyncState.QUEUED)
    waiting = mine.filter(_waiting()).values_list("retry_at", flat=True).first()
    if waiting is not None:
        countdown = max(countdown, _seconds_until(waiting))
    puller.send(partner_id, full, countdown)


def _seconds_until(when: datetime) -> int:
    return max(0, math.ceil((when - now_utc()).total_seconds()))


def _claim(puller: Puller, partner_id: int, full: bool) -> tuple[ModuleSync, bool] | None:
    """Start a run, or continue the one whose wait is over: (the row, whether it continues)."""
    now = now_utc()
    mine = _row(puller, partner_id)
    if mine.filter(state=SyncState.WAITING, retry_at__lte=now).update(
        state=SyncState.RUNNING, progress_at=now, retry_at=None, message=""
    ):
        return mine.get(), True
    claimed = (
        mine.exclude(_live())
        .exclude(_waiting())
        .update(
            state=SyncState.RUNNING,
            started_at=now,
            progress_at=now,
            finished_at=None,
            retry_at=None,
            waits=0,
            next_url="",
            pages=0,
            total=None,
            received=0,
            stored=0,
            rejected=0,
            message="",
        )
    )
    if not claimed:
        return None
    sync: ModuleSync = mine.get()
    sync.full = full or sync.synced_until is None
    return sync, False


def _routing(puller: Puller, partner: Partner, to: tuple[str, str] | None = None) -> RoutingHeaders:
    """From our receiving party to ``to`` (country_code, party_id), else the partner's party
    of the owner role."""
    ours = next((p for p in our_parties() if p.role in puller.receiving_roles), None)
    if to is None:
        theirs = partner.roles.filter(role=puller.owner).order_by("pk").first()
        to = (theirs.country_code, theirs.party_id) if theirs else None
    return RoutingHeaders(
        ours.country_code if ours else None,
        ours.party_id if ours else None,
        to[0] if to else None,
        to[1] if to else None,
    )


def _unavailable(puller: Puller, partner_id: int, reason: str) -> SyncUnavailable:
    """A queued pull that cannot run ends FAILED with the reason (it does not stay QUEUED)."""
    rows(puller).filter(partner_id=partner_id, state=SyncState.QUEUED).update(
        state=SyncState.FAILED, finished_at=now_utc(), message=reason
    )
    return SyncUnavailable(reason)


@dataclass
class _Crawl:
    """What one run of the pull saw: rejections, and the keys listed (None: continued run)."""

    problems: list[str] = field(default_factory=list)
    listed: set[tuple[str, ...]] | None = field(default_factory=set)
    duplicates: int = 0  # objects read twice (the partner's list shrank: pages read again)


def pull(
    puller: Puller, partner_id: int, *, full: bool = False, progress: Progress | None = None
) -> ModuleSync:
    """Fetch all pages and store them. Returns the sync row (state DONE, FAILED or WAITING)."""
    partner = Partner.objects.prefetch_related("roles").filter(pk=partner_id).first()
    if partner is None or partner.state != PartnerState.REGISTERED:
        raise _unavailable(puller, partner_id, "The partner is not registered.")
    if partner.status == ConnectionStatus.SUSPENDED:
        raise _unavailable(
            puller, partner_id, "The partner is suspended: no traffic until it is resumed."
        )
    if not _receiving(puller):
        raise _unavailable(
            puller, partner_id, f"None of our parties (OCPI_PARTIES) receives {puller.noun}."
        )
    url = sender_url(puller, partner)
    if url is None:
        raise _unavailable(
            puller, partner_id, f"{partner.name} has no {puller.module} SENDER endpoint."
        )
    claim = _claim(puller, partner_id, full)
    if claim is None:
        current: ModuleSync = rows(puller).get(partner_id=partner_id)
        current.message = current.message or "A sync of this partner is already running."
        return current
    sync, continued = claim
    held = outbox.asked_to_wait(partner_id)
    if held is not None and sync.waits < MAX_WAITS:
        # The partner asked us (Retry-After, on a push or a pull) to wait: so does this pull
        # (counted with the pull's own waits: it does not wait for ever).
        sync.waits += 1
        return _wait(
            puller, partner, sync, _Crawl(listed=None), "The partner asked us to wait.", held
        )
    if held is not None:
        sync.state = SyncState.FAILED
        sync.finished_at = now_utc()
        sync.message = _summary(
            puller,
            sync,
            _Crawl(listed=None),
            failure=f"The partner asked us to wait {sync.waits + 1} times in a row.",
        )
        _save(sync)
        return sync
    # A wait before the first page lost nothing: that run starts from the beginning.
    continued = continued and bool(sync.next_url)
    params = None if sync.full else {"date_from": format_datetime(sync.synced_until)}  # type: ignore[arg-type]
    crawl = _Crawl(listed=None if continued else set())
    start: tuple[str, dict[str, str] | None] = (sync.next_url, None) if continued else (url, params)
    try:
        with liveness.client_for(partner, routing=_routing(puller, partner)) as client:
            pages = client.iter_pages(
                start[0], params=start[1], total=sync.total if continued else None
            )
            for reply in pages:
                _store_page(puller, partner, sync, reply.data, crawl)
                sync.pages += 1
                total = reply.headers.get("X-Total-Count", "")
                sync.total = int(total) if total.isdigit() else sync.total
                sync.next_url = reply.next_link() or ""
                sync.waits = 0
                _save(sync)
                if progress:
                    progress(sync)
    except PartnerError as exc:
        if exc.retry_after is not None and not exc.permanent:
            outbox.hold(partner.pk, exc.retry_after)  # pushes to the partner wait too
        if exc.retry_after is not None and not exc.permanent and sync.waits < MAX_WAITS:
            sync.waits += 1
            return _wait(puller, partner, sync, crawl, str(exc), exc.retry_after, progress)
        failure = str(exc)
        if exc.retry_after is not None and not exc.permanent:
            failure += f" The partner asked us to wait {sync.waits + 1} times in a row."
        sync.state = SyncState.FAILED
        sync.message = _summary(puller, sync, crawl, failure=failure)
    except SyncPageError as exc:
        sync.state = SyncState.FAILED
        sync.message = _summary(puller, sync, crawl, failure=str(exc))
    else:
        dropped = _drop_unlisted(puller, partner, sync, crawl, url) if sync.full else ""
        sync.state = SyncState.DONE
        sync.synced_until = sync.started_at
        sync.next_url = ""
        sync.message = _summary(puller, sync, crawl) + dropped
    sync.finished_at = now_utc()
    _save(sync)
    logger.info("%s sync of %s: %s", puller.module, partner.name, sync.message)
    if progress:
        progress(sync)
    return sync


def stop(puller: Puller, partner_id: int, reason: str) -> str:
    """End the running pull as FAILED with ``reason`` (the task ran out of time); its message."""
    sync = rows(puller).filter(partner_id=partner_id, state=SyncState.RUNNING).first()
    if sync is None:
        return reason
    sync.state = SyncState.FAILED
    sync.finished_at = now_utc()
    sync.message = _summary(puller, sync, _Crawl(), failure=reason)
    _save(sync)
    return str(sync.message)


def _wait(
    puller: Puller,
    partner: Partner,
    sync: ModuleSync,
    crawl: _Crawl,
    why: str,
    seconds: float,
    progress: Progress | None = None,
) -> ModuleSync:
    """The partner asked us to retry later: WAITING, and the task sent for no earlier than that."""
    sync.state = SyncState.WAITING
    sync.retry_at = now_utc() + timedelta(seconds=seconds)
    sync.message = _summary(puller, sync, crawl, failure=why, waiting=sync.retry_at)
    _save(sync)
    logger.info("%s sync of %s: %s", puller.module, partner.name, sync.message)
    # The eta is taken after retry_at: the continued run never finds it still in the future.
    puller.send(partner.pk, sync.full, math.ceil(seconds))
    if progress:
        progress(sync)
    return sync


class SyncPageError(Exception):
    """The partner's page is not a list of objects."""


def _store_page(
    puller: Puller, partner: Partner, sync: ModuleSync, data: Any, crawl: _Crawl
) -> None:
    if data is None:
        data = []
    if not isinstance(data, list):
        raise SyncPageError(
            f"Page {sync.pages + 1} holds a JSON {type(data).__name__}, not a list."
        )
    accepted: list[tuple[int, ObjectKey, Any]] = []
    errors: dict[int, OcpiError] = {}
    for position, item in enumerate(data):
        if isinstance(item, dict) and crawl.listed is not None:
            listed = (item.get("country_code"), item.get("party_id"), item.get(puller.id_field))
            upper = (*(str(v).upper() for v in listed), _type_of(puller, item))
            if upper in crawl.listed:
                crawl.duplicates += 1
            crawl.listed.add(upper)
        try:
            accepted.append((position, _key_of(puller, partner, item), item))
        except OcpiError as exc:
            errors[position] = exc
    stored = _store_all(puller, partner.pk, [(key, item) for _, key, item in accepted])
    errors.update(
        (position, error)
        for (position, _, _), error in zip(accepted, stored, strict=True)
        if error is not None
    )
    for position, item in enumerate(data):
        sync.received += 1
        error = errors.get(position)
        if error is None:
            sync.stored += 1
            continue
        sync.rejected += 1
        ident = item.get(puller.id_field) if isinstance(item, dict) else None
        crawl.problems.append(f"{ident or f'object {sync.received}'}: {error.message}")


def _store_all(
    puller: Puller, partner_id: int, items: list[tuple[ObjectKey, Any]]
) -> list[OcpiError | None]:
    """The page through the module's page store, or object by object."""
    if puller.store_page is not None:
        return puller.store_page(partner_id, items)
    results: list[OcpiError | None] = []
    for key, item in items:
        try:
            puller.store(partner_id, key, item)
        except OcpiError as exc:
            results.append(exc)
        else:
            results.append(None)
    return results


def _drop_unlisted(
    puller: Puller, partner: Partner, sync: ModuleSync, crawl: _Crawl, url: str
) -> str:
    """Delete the copies a complete full list no longer holds and the partner says it does not
    have; a sentence for the message. Runs while the sync is still RUNNING."""
    listed = crawl.listed
    if listed is None:
        return (
            " The pull waited for the partner (Retry-After) and continued: "
            "copies that were not listed are kept."
        )
    if sync.total is not None and sync.received - crawl.duplicates < sync.total:
        return (
            f" The pages held fewer {puller.noun} than the {sync.total} announced "
            "(X-Total-Count): "
            "copies that were not listed are kept."
        )
    started = sync.started_at or now_utc()  # set when the run was claimed
    kind = "object_type" if puller.type_field else "cc_upper"  # a constant column otherwise
    copies = (
        puller.model.objects.filter(partner=partner)
        .order_by("pk")
        .values_list("pk", "cc_upper", "pid_upper", "id_upper", kind, "modified_at")
    )
    check = _Check(puller, partner, sync.pk, started, url)
    for pk, cc, pid, ident, type_, modified_at in copies.iterator():
        if (cc, pid, ident, type_ if puller.type_field else "") in listed:
            continue
        if not puller.check_unlisted:
            check.unchecked += 1
            continue
        if modified_at >= started:
            check.recent += 1  # written during the pull: a push the list did not show yet
        else:
            check.candidates.append(pk)
    with check:
        check.run()
    return check.sentence()


@dataclass
class _Check:
    """Asking the partner for the copies its complete list left out, and deleting the gone."""

    puller: Puller
    partner: Partner
    sync_pk: int
    started: datetime  # the pull's start: a copy written since then is not deleted
    url: str
    candidates: list[int] = field(default_factory=list)
    recent: int = 0  # not listed, but written since the pull started: kept unchecked
    deleted: int = 0
    stored: int = 0  # still served by the partner: stored from its answer
    refused: list[str] = field(default_factory=list)  # answers that were not "unknown"
    stopped: str | None = None  # the transient failure that ended the checks
    unchecked: int = 0  # kept without a check (after a failure, or over MAX_CHECKS)
    clients: dict[tuple[str, str], OcpiClient] = field(default_factory=dict)

    def __enter__(self) -> _Check:
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self.clients.values():
            client.close()

    def client(self, copy: Any) -> OcpiClient:
        """The partner's client (our token, the URL policy), addressed to the copy's party."""
        to = (copy.country_code, copy.party_id)
        if to not in self.clients:
            routing = _routing(self.puller, self.partner, to)
            self.clients[to] = liveness.client_for(self.partner, routing=routing)
        return self.clients[to]

    def run(self) -> None:
        if not self.puller.check_unlisted:
            return
        self.unchecked = max(0, len(self.candidates) - MAX_CHECKS)
        model = self.puller.model
        kind = ("object_type",) if self.puller.type_field else ()
        key = (*_KEY, self.puller.id_column, *kind)
        for index, pk in enumerate(self.candidates[:MAX_CHECKS]):
            copy = model.objects.filter(pk=pk).only(*key).first()
            if copy is None:
                continue  # gone meanwhile
            try:
                self._check(copy)
            except _Stop as stop:
                self.stopped = stop.reason
                self.unchecked += len(self.candidates[:MAX_CHECKS]) - index
                return
            # A sign of life per check (the state stays RUNNING until the message is written).
            ModuleSync.objects.filter(pk=self.sync_pk).update(progress_at=now_utc())

    def _check(self, copy: Any) -> None:
        ident = getattr(copy, self.puller.id_column)
        what = f"{copy.country_code}/{copy.party_id}/{ident}"
        object_url = f"{self.url.rstrip('/')}/{quote(ident, safe='')}"
        params = {"type": copy.object_type} if self.puller.type_field else None
        try:
            reply = self.client(copy).get(object_url, params=params)
        except PartnerError as exc:
            if _unknown(exc):
                self._delete(copy)
            elif not exc.permanent or isinstance(exc, UrlRefused):
                raise _Stop(f"{what}: {exc.message}") from None
            else:
                self.refused.append(f"{what}: {exc.message.rstrip('.')}")
            return
        try:
            key = _key_of(self.puller, self.partner, reply.data)
            if key.upper()[:3] != (copy.cc_upper, copy.pid_upper, copy.id_upper):
                raise InvalidParameters(f"the partner answered with {key}")
            self.puller.store(self.partner.pk, key, reply.data)
        except OcpiError as exc:
            self.refused.append(f"{what}: {exc.message.rstrip('.')}")
        else:
            self.stored += 1

    def _delete(self, copy: Any) -> None:
        """Delete the copy unless it was written since the pull started (under its lock: a
        push that arrived meanwhile wins)."""
        model = self.puller.model
        with transaction.atomic():
            locked = list(
                model.objects.select_for_update()
                .filter(pk=copy.pk, modified_at__lt=self.started)
                .values_list("pk", flat=True)
            )
            if locked:
                model.objects.filter(pk__in=locked).delete()
                self.deleted += 1
            elif model.objects.filter(pk=copy.pk).exists():
                self.recent += 1

    def sentence(self) -> str:
        text = ""
        if self.recent:
            text += (
                f" {self.recent} copies not listed were written during the pull (a push) and kept."
            )
        if self.stored:
            text += (
                f" {self.stored} copies not listed were still served by the partner "
                "(GET of the object) and stored."
            )
        if self.refused:
            shown = "; ".join(self.refused[:REJECTIONS_SHOWN])
            more = len(self.refused) - REJECTIONS_SHOWN
            text += (
                f" {len(self.refused)} copies not listed were kept: the partner did not answer "
                f"that they do not exist ({shown}" + (f"; and {more} more)." if more > 0 else ").")
            )
        if self.stopped is not None:
            text += (
                f" Checking the copies not listed stopped at {self.stopped} "
                f"{self.unchecked} copies not listed were kept until a later full pull."
            )
        elif self.unchecked and not self.puller.check_unlisted:
            text += f" {self.unchecked} copies not listed were kept (the module is not checked)."
        elif self.unchecked:
            text += (
                f" {self.unchecked} more copies not listed were kept unchecked (at most "
                f"{MAX_CHECKS} are checked per pull); a later full pull checks them."
            )
        if self.deleted:
            text += f" {self.deleted} copies no longer listed by the partner were deleted."
        return text


_KEY = ("pk", "country_code", "party_id", "cc_upper", "pid_upper", "id_upper")


class _Stop(Exception):
    """A check failed in a way that would fail the next ones too: stop checking."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _unknown(exc: PartnerError) -> bool:
    """The partner answered that the object does not exist: HTTP 404 (not a hub's 4xxx), or
    OCPI 2003."""
    return isinstance(exc, PartnerRejected) and exc.unknown_object


def _type_of(puller: Puller, item: dict[str, Any]) -> str:
    if not puller.type_field:
        return ""
    return str(item.get(puller.type_field) or puller.type_default)


def _key_of(puller: Puller, partner: Partner, item: Any) -> ObjectKey:
    if not isinstance(item, dict):
        raise InvalidParameters("not a JSON object")
    cc, pid, ident = item.get("country_code"), item.get("party_id"), item.get(puller.id_field)
    if not all(isinstance(v, str) and v for v in (cc, pid, ident)):
        raise InvalidParameters(f"country_code, party_id and {puller.id_field} are required")
    # The roles are prefetched once per pull (no query per object).
    owned = {(r.country_code.upper(), r.party_id.upper()) for r in partner.roles.all()}
    if (str(cc).upper(), str(pid).upper()) not in owned:
        raise InvalidParameters(f"{cc}/{pid} is not one of the partner's parties")
    return ObjectKey(str(cc), str(pid), str(ident), _type_of(puller, item))


def _summary(
    puller: Puller,
    sync: ModuleSync,
    crawl: _Crawl,
    failure: str | None = None,
    waiting: datetime | None = None,
) -> str:
    kind = "Full sync" if sync.full else "Incremental sync"
    text = (
        f"{kind}: {sync.pages} pages, {sync.received} {puller.noun} received, "
        f"{sync.stored} stored, {sync.rejected} rejected."
    )
    counts = text.split(": ", 1)[1]
    if waiting is not None:
        text = (
            f"{kind} waiting until {format_datetime(waiting)} (the partner's Retry-After) "
            f"after {sync.pages} pages: {failure} {counts}"
        )
    elif failure:
        text = f"{kind} failed after {sync.pages} pages: {failure} {counts}"
    if crawl.duplicates:
        text += f" {crawl.duplicates} were read twice: the partner's list shrank during the pull."
    problems = crawl.problems
    if problems:
        shown = "; ".join(problems[:REJECTIONS_SHOWN])
        more = len(problems) - REJECTIONS_SHOWN
        text += f" Rejected: {shown}" + (f" (and {more} more)." if more > 0 else ".")
    return text


def _save(sync: ModuleSync) -> None:
    """Write the row; every write is also the run's sign of life."""
    sync.progress_at = now_utc()
    sync.save()
