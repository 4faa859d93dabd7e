"""Pull a partner's locations from its sender interface (spec transport › Pagination).

The first sync fetches everything; later ones ask for ``date_from`` = the start of the last
successful sync. Pages are followed through ``Link`` headers (a partner whose paging loops is
stopped). Each object is stored through the same service as a pushed PUT; an invalid object or
one of a party the partner does not own is counted and skipped, the rest is kept.

A full list is the partner's whole truth (spec transport › Pagination): after a full sync that
went through every page, the copies the partner no longer lists are deleted. Not when the pages
held fewer objects than the partner's ``X-Total-Count`` announced: a partner whose paging is
broken must not wipe our copies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from credentials import liveness
from credentials.models import ConnectionStatus, Partner, PartnerState
from ocpi_platform.ocpi.client import PartnerError
from ocpi_platform.ocpi.errors import InvalidParameters, OcpiError
from ocpi_platform.ocpi.headers import RoutingHeaders
from ocpi_platform.ocpi.parties import our_parties
from ocpi_platform.ocpi.types import InterfaceRole, Role, format_datetime, now_utc

from . import services
from .apps import RECEIVING_ROLES
from .models import Location, LocationSync, SyncState
from .paths import ObjectPath

logger = logging.getLogger(__name__)

MODULE = "locations"
# A sync that has not reported progress for this long is taken to have died.
STALE = timedelta(minutes=30)
# How many rejected objects are described in the sync's message.
REJECTIONS_SHOWN = 5

Progress = Callable[[LocationSync], None]


class SyncUnavailable(Exception):
    """The partner cannot be pulled (not registered, no locations sender endpoint)."""


def sender_url(partner: Partner) -> str | None:
    return partner.endpoint_url(MODULE, InterfaceRole.SENDER)


def can_pull(partner_id: int) -> bool:
    partner = (
        Partner.objects.registered()
        .exclude(status=ConnectionStatus.SUSPENDED)
        .filter(pk=partner_id)
        .first()
    )
    receiving = any(p.role in RECEIVING_ROLES for p in our_parties())
    return bool(partner and receiving and sender_url(partner))


def cannot_pull(partner: Partner) -> str | None:
    """Why the partner's locations cannot be pulled now (for the operator), or None."""
    if can_pull(partner.pk):
        running = LocationSync.objects.filter(
            partner=partner, state=SyncState.RUNNING, started_at__gte=now_utc() - STALE
        ).exists()
        return "a pull is running already" if running else None
    if partner.state != PartnerState.REGISTERED:
        return f"it is not registered ({partner.get_state_display().lower()})"
    if partner.status == ConnectionStatus.SUSPENDED:
        return "it is suspended"
    if not any(p.role in RECEIVING_ROLES for p in our_parties()):
        return "none of our parties (OCPI_PARTIES) receives locations"
    return "it offers no locations SENDER endpoint"


def request_pull(partner_id: int, *, full: bool = False, countdown: float = 0) -> None:
    """Queue a pull (admin action, registration): marked QUEUED, sent after commit."""
    from .tasks import pull_locations

    LocationSync.objects.get_or_create(partner_id=partner_id)
    LocationSync.objects.filter(partner_id=partner_id).exclude(state=SyncState.RUNNING).update(
        state=SyncState.QUEUED
    )
    transaction.on_commit(
        lambda: pull_locations.apply_async(
            kwargs={"partner_id": partner_id, "full": full}, countdown=countdown
        )
    )


def _claim(partner_id: int, full: bool) -> LocationSync | None:
    now = now_utc()
    LocationSync.objects.get_or_create(partner_id=partner_id)
    free = ~Q(state=SyncState.RUNNING) | Q(started_at__lt=now - STALE)
    claimed = (
        LocationSync.objects.filter(partner_id=partner_id)
        .filter(free)
        .update(
            state=SyncState.RUNNING,
            started_at=now,
            finished_at=None,
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
    sync = LocationSync.objects.get(partner_id=partner_id)
    sync.full = full or sync.synced_until is None
    return sync


def _routing(partner: Partner) -> RoutingHeaders:
    ours = next((p for p in our_parties() if p.role in RECEIVING_ROLES), None)
    theirs = partner.roles.filter(role=Role.CPO).order_by("pk").first()
    return RoutingHeaders(
        ours.country_code if ours else None,
        ours.party_id if ours else None,
        theirs.country_code if theirs else None,
        theirs.party_id if theirs else None,
    )


def _unavailable(partner_id: int, reason: str) -> SyncUnavailable:
    """A queued pull that cannot run ends FAILED with the reason (it does not stay QUEUED)."""
    LocationSync.objects.filter(partner_id=partner_id, state=SyncState.QUEUED).update(
        state=SyncState.FAILED, finished_at=now_utc(), message=reason
    )
    return SyncUnavailable(reason)


def pull(partner_id: int, *, full: bool = False, progress: Progress | None = None) -> LocationSync:
    """Fetch all pages and store them. Returns the sync row (state DONE or FAILED)."""
    partner = Partner.objects.prefetch_related("roles").filter(pk=partner_id).first()
    if partner is None or partner.state != PartnerState.REGISTERED:
        raise _unavailable(partner_id, "The partner is not registered.")
    if partner.status == ConnectionStatus.SUSPENDED:
        raise _unavailable(partner_id, "The partner is suspended: no traffic until it is resumed.")
    if not any(p.role in RECEIVING_ROLES for p in our_parties()):
        raise _unavailable(partner_id, "None of our parties (OCPI_PARTIES) receives locations.")
    url = sender_url(partner)
    if url is None:
        raise _unavailable(partner_id, f"{partner.name} has no locations SENDER endpoint.")
    sync = _claim(partner_id, full)
    if sync is None:
        current = LocationSync.objects.get(partner_id=partner_id)
        current.message = current.message or "A sync of this partner is already running."
        return current
    started = now_utc()
    params = None if sync.full else {"date_from": format_datetime(sync.synced_until)}  # type: ignore[arg-type]
    problems: list[str] = []
    listed: set[tuple[str, str, str]] = set()  # the keys the partner sent (full sync)
    try:
        with liveness.client_for(partner, routing=_routing(partner)) as client:
            for reply in client.iter_pages(url, params=params):
                _store_page(partner, sync, reply.data, problems, listed)
                sync.pages += 1
                total = reply.headers.get("X-Total-Count", "")
                sync.total = int(total) if total.isdigit() else sync.total
                _save(sync, started_at=started)
                if progress:
                    progress(sync)
    except (PartnerError, SyncPageError) as exc:
        sync.state = SyncState.FAILED
        sync.message = _summary(sync, problems, failure=str(exc))
    else:
        sync.state = SyncState.DONE
        sync.synced_until = started
        sync.message = _summary(sync, problems)
        if sync.full:
            sync.message += _drop_unlisted(partner, sync, listed)
    sync.finished_at = now_utc()
    _save(sync, started_at=started)
    logger.info("Location sync of %s: %s", partner.name, sync.message)
    if progress:
        progress(sync)
    return sync


class SyncPageError(Exception):
    """The partner's page is not a list of objects."""


def _store_page(
    partner: Partner,
    sync: LocationSync,
    data: Any,
    problems: list[str],
    listed: set[tuple[str, str, str]],
) -> None:
    if data is None:
        data = []
    if not isinstance(data, list):
        raise SyncPageError(
            f"Page {sync.pages + 1} holds a JSON {type(data).__name__}, not a list."
        )
    for item in data:
        sync.received += 1
        if isinstance(item, dict):
            key = (item.get("country_code"), item.get("party_id"), item.get("id"))
            listed.add(tuple(str(v).upper() for v in key))  # type: ignore[arg-type]
        try:
            path = _path_of(partner, item)
            services.put(path, item, owner=partner.pk)
        except OcpiError as exc:
            sync.rejected += 1
            ident = item.get("id") if isinstance(item, dict) else None
            problems.append(f"{ident or f'object {sync.received}'}: {exc.message}")
        else:
            sync.stored += 1


def _drop_unlisted(partner: Partner, sync: LocationSync, listed: set[tuple[str, str, str]]) -> str:
    """Delete the copies a complete full list no longer holds; a sentence for the message."""
    if sync.total is not None and sync.received < sync.total:
        return (
            f" The pages held fewer locations than the {sync.total} announced (X-Total-Count): "
            "copies that were not listed are kept."
        )
    copies = Location.objects.filter(partner=partner).values_list(
        "pk", "cc_upper", "pid_upper", "id_upper"
    )
    unlisted = [pk for pk, *key in copies.iterator() if tuple(key) not in listed]
    for start in range(0, len(unlisted), 1000):
        Location.objects.filter(pk__in=unlisted[start : start + 1000]).delete()
    if not unlisted:
        return ""
    return f" {len(unlisted)} copies no longer listed by the partner were deleted."


def _path_of(partner: Partner, item: Any) -> ObjectPath:
    if not isinstance(item, dict):
        raise InvalidParameters("not a JSON object")
    cc, pid, ident = item.get("country_code"), item.get("party_id"), item.get("id")
    if not all(isinstance(v, str) and v for v in (cc, pid, ident)):
        raise InvalidParameters("country_code, party_id and id are required")
    # The roles are prefetched once per pull (no query per object).
    owned = {(r.country_code.upper(), r.party_id.upper()) for r in partner.roles.all()}
    if (str(cc).upper(), str(pid).upper()) not in owned:
        raise InvalidParameters(f"{cc}/{pid} is not one of the partner's parties")
    return ObjectPath(str(cc), str(pid), str(ident))


def _summary(sync: LocationSync, problems: list[str], failure: str | None = None) -> str:
    kind = "Full sync" if sync.full else "Incremental sync"
    text = (
        f"{kind}: {sync.pages} pages, {sync.received} locations received, "
        f"{sync.stored} stored, {sync.rejected} rejected."
    )
    if failure:
        text = f"{kind} failed after {sync.pages} pages: {failure} " + text.split(": ", 1)[1]
    if problems:
        shown = "; ".join(problems[:REJECTIONS_SHOWN])
        more = len(problems) - REJECTIONS_SHOWN
        text += f" Rejected: {shown}" + (f" (and {more} more)." if more > 0 else ".")
    return text


def _save(sync: LocationSync, *, started_at: Any) -> None:
    sync.started_at = started_at
    sync.save()
