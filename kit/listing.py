"""The sender list served from a copy of our listable objects held by each web process.

Partners pull full lists often, and a list page must not cost more than the bytes it returns.
Each process keeps, in list order (primary key), the id, ``last_updated``, party and rendered
JSON of the objects a ``Source`` lists, and serves pages by slicing them: no query per request.

The copy is brought up to date at most every ``OCPI_LIST_CACHE_SECONDS`` (default 1 s; 0 turns
it off and every page is read from the database). A refresh asks only for the rows whose
``modified_at`` is recent (an index serves it): their ids and ``modified_at`` first, then the
JSON of those that really changed. ``modified_at`` is stamped by the writing process before its
transaction commits, so a refresh looks back ``LOOK_BACK`` further than the previous one
started; a transaction or a clock skew between servers longer than that is caught by the full
reload every ``FULL_RELOAD`` seconds. A row deleted leaves no trace to find: a refresh also
counts the listable rows, and a count other than the copy's makes it a full reload. A partner
therefore sees a change in a list at most about a second after it was made (pushes carry it at
once).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model, QuerySet

from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.types import now_utc

from .spec import ModuleSpec

LOOK_BACK = timedelta(seconds=10)
FULL_RELOAD = 300.0  # seconds
FILTERS_KEPT = 32  # date windows whose row numbers are kept per snapshot

Party = tuple[str, str]  # (country_code, party_id), upper case
Window = tuple[int | None, int | None, Party | None]


def _micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


@dataclass
class Snapshot:
    """The listed objects in list order; never changed once published (a refresh makes a new
    one), except for the cache of date windows."""

    ids: list[int]
    stamps: list[int]  # last_updated, microseconds since the epoch
    texts: list[str]
    parties: list[tuple[str, str]]  # (country_code, party_id), upper case
    modified: dict[int, datetime]  # id -> the modified_at of what we hold
    horizon: datetime  # rows modified before this (minus LOOK_BACK) are in
    loaded_at: float
    windows: dict[Window, list[int]] = field(default_factory=dict)

    def rows(self, page: PageRequest, party: Party | None = None) -> tuple[int, list[str]]:
        if page.date_from is None and page.date_to is None and party is None:
            total = len(self.ids)
            return total, self.texts[page.offset : page.offset + page.limit]
        selected = self._window(page.date_from, page.date_to, party)
        chosen = selected[page.offset : page.offset + page.limit]
        return len(selected), [self.texts[i] for i in chosen]

    def _window(
        self, date_from: datetime | None, date_to: datetime | None, party: Party | None
    ) -> list[int]:
        low = _micros(date_from) if date_from is not None else None
        high = _micros(date_to) if date_to is not None else None
        key = (low, high, party)
        found = self.windows.get(key)
        if found is None:
            found = [
                i
                for i, stamp in enumerate(self.stamps)
                if (low is None or stamp >= low)
                and (high is None or stamp < high)
                and (party is None or self.parties[i] == party)
            ]
            if len(self.windows) >= FILTERS_KEPT:
                self.windows.clear()
            self.windows[key] = found
        return found


COLUMNS = ("id", "last_updated", "ocpi_json", "cc_upper", "pid_upper", "modified_at")


@dataclass(frozen=True)
class Source:
    """What a list holds: ``listable()`` the rows listed, ``recent()`` the rows whose changes
    may concern it (ours, listed or not, with a ``modified_at``)."""

    listable: Callable[[], QuerySet[Model]]
    recent: Callable[[], QuerySet[Model]]


def load(source: Source) -> Snapshot:
    horizon = now_utc()
    rows = source.listable().order_by("id").values_list(*COLUMNS)
    ids: list[int] = []
    stamps: list[int] = []
    texts: list[str] = []
    parties: list[tuple[str, str]] = []
    modified: dict[int, datetime] = {}
    for pk, last_updated, text, cc, pid, modified_at in rows.iterator(chunk_size=2000):
        if not text:
            continue  # never rendered (written outside the services): not listable yet
        ids.append(pk)
        stamps.append(_micros(last_updated))
        texts.append(text)
        parties.append((cc, pid))
        modified[pk] = modified_at
    return Snapshot(ids, stamps, texts, parties, modified, horizon, time.monotonic())


def refresh(old: Snapshot, source: Source) -> Snapshot:
    """A snapshot with the rows changed since ``old`` was taken (``old`` itself if none)."""
    horizon = now_utc()
    recent = (
        source.recent()
        .filter(modified_at__gte=old.horizon - LOOK_BACK)
        .values_list("id", "modified_at")
    )
    changed = [pk for pk, modified_at in recent if old.modified.get(pk) != modified_at]
    count = source.listable().exclude(ocpi_json="").count()
    if not changed:
        if count != len(old.ids):
            return load(source)  # a row was deleted (or left the list unseen)
        old.horizon = horizon  # nothing to tell: look back from now on next time
        return old
    fresh = {
        pk: (_micros(last_updated), text, (cc, pid), modified_at)
        for pk, last_updated, text, cc, pid, modified_at in source.listable()
        .filter(pk__in=changed)
        .values_list(*COLUMNS)
        if text
    }
    # Not listed (any more): unshared, unrendered, or not listable at all.
    dropped = {pk for pk in changed if pk not in fresh and pk in old.modified}
    listed = len(old.ids) - len(dropped) + sum(1 for pk in fresh if pk not in old.modified)
    if listed != count:
        return load(source)
    ids, stamps, texts = list(old.ids), list(old.stamps), list(old.texts)
    parties, modified = list(old.parties), dict(old.modified)
    new = sorted(pk for pk in fresh if pk not in modified)
    for pk, (stamp, text, party, modified_at) in fresh.items():
        if pk in modified:
            index = bisect.bisect_left(ids, pk)
            stamps[index], texts[index], parties[index] = stamp, text, party
        modified[pk] = modified_at
    if dropped or new:
        rows = [r for r in zip(ids, stamps, texts, parties, strict=True) if r[0] not in dropped]
        rows += [(pk, fresh[pk][0], fresh[pk][1], fresh[pk][2]) for pk in new]
        rows.sort(key=lambda r: r[0])
        ids = [r[0] for r in rows]
        stamps = [r[1] for r in rows]
        texts = [r[2] for r in rows]
        parties = [r[3] for r in rows]
        for pk in dropped:
            modified.pop(pk, None)
    return Snapshot(ids, stamps, texts, parties, modified, horizon, old.loaded_at)


class Listing:
    """The process's snapshot, refreshed by the first request that finds it too old."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def current(self, interval: float) -> Snapshot:
        snapshot = self._snapshot
        now = time.monotonic()
        if snapshot is not None and now - self._checked < interval:
            return snapshot
        # One thread refreshes; the others go on with the snapshot they have.
        if not self._lock.acquire(blocking=snapshot is None):
            return snapshot  # type: ignore[return-value]  # not None: we did not block
        try:
            snapshot = self._snapshot
            if snapshot is None or now - snapshot.loaded_at >= FULL_RELOAD:
                snapshot = load(self.source)
            elif time.monotonic() - self._checked >= interval:
                snapshot = refresh(snapshot, self.source)
            self._snapshot = snapshot
            self._checked = time.monotonic()
            return snapshot
        finally:
            self._lock.release()

    def forget(self) -> None:
        with self._lock:
            self._snapshot = None
            self._checked = 0.0

    def page(
        self,
        request: PageRequest,
        party: Party | None,
        from_db: Callable[[PageRequest, Party | None], tuple[int, list[str]]],
    ) -> tuple[int, list[str]]:
        """The total and the page's rendered JSON (of ``party``'s objects only, when given, as
        (country_code, party_id) upper case): from this process's copy, or ``from_db``."""
        interval = float(settings.OCPI_LIST_CACHE_SECONDS)
        if interval <= 0:
            return from_db(request, party)
        return self.current(interval).rows(request, party)


# --- the lists of the declared modules ------------------------------------------------------

_listings: dict[str, Listing] = {}


def listing_of(spec: ModuleSpec) -> Listing:
    found = _listings.get(spec.identifier.value)
    if found is None:
        objects = spec.model.objects
        found = _listings.setdefault(
            spec.identifier.value, Listing(Source(objects.ours, objects.ours))
        )
    return found


def page(
    spec: ModuleSpec, request: PageRequest, party: Party | None = None
) -> tuple[int, list[str]]:
    """A page of our objects of ``spec``'s module (see ``Listing.page``)."""
    from . import services

    return listing_of(spec).page(request, party, lambda r, p: services.list_page(spec, r, p))


def forget() -> None:
    """Drop this process's copies (tests)."""
    for found in _listings.values():
        found.forget()
