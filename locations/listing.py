"""The sender list served from a copy of our shared locations held by each web process.

Partners pull full location lists often, and a list page must not cost more than the bytes it
returns. Each process keeps, in list order, the id, ``last_updated`` and rendered JSON of our
shared locations, and serves pages by slicing them: no query per request.

The copy is brought up to date at most every ``OCPI_LIST_CACHE_SECONDS`` (default 1 s; 0 turns
it off and every page is read from the database). A refresh asks only for the rows whose
``modified_at`` is recent (an index serves it): their ids and ``modified_at`` first, then the
JSON of those that really changed. ``modified_at`` is stamped by the writing process before its
transaction commits, so a refresh looks back ``LOOK_BACK`` further than the previous one
started; a transaction or a clock skew between servers longer than that is caught by the full
reload every ``FULL_RELOAD`` seconds. A partner therefore sees a change in a list at most about
a second after it was made (pushes carry it at once).
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.types import now_utc

from . import services
from .models import Location

LOOK_BACK = timedelta(seconds=10)
FULL_RELOAD = 300.0  # seconds
FILTERS_KEPT = 32  # date windows whose row numbers are kept per snapshot

Party = tuple[str, str]  # (country_code, party_id), upper case
Window = tuple[int | None, int | None, Party | None]


def _micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


@dataclass
class Snapshot:
    """Our shared locations in list order; never changed once published (a refresh makes a new
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


def load() -> Snapshot:
    horizon = now_utc()
    rows = Location.objects.shared().order_by("id").values_list(*COLUMNS)
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


def refresh(old: Snapshot) -> Snapshot:
    """A snapshot with the rows changed since ``old`` was taken (``old`` itself if none)."""
    horizon = now_utc()
    recent = (
        Location.objects.ours()
        .filter(modified_at__gte=old.horizon - LOOK_BACK)
        .values_list("id", "shared", "modified_at")
    )
    changed: list[int] = []
    dropped: set[int] = set()
    for pk, shared, modified_at in recent:
        if not shared:
            if pk in old.modified:
                dropped.add(pk)
        elif old.modified.get(pk) != modified_at:
            changed.append(pk)
    if not changed and not dropped:
        old.horizon = horizon  # nothing to tell: look back from now on next time
        return old
    fresh = {
        pk: (_micros(last_updated), text, (cc, pid), modified_at)
        for pk, last_updated, text, cc, pid, modified_at in Location.objects.shared()
        .filter(pk__in=changed)
        .values_list(*COLUMNS)
        if text
    }
    dropped |= {pk for pk in changed if pk not in fresh}  # unshared or unrendered meanwhile
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

    def __init__(self) -> None:
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
                snapshot = load()
            elif time.monotonic() - self._checked >= interval:
                snapshot = refresh(snapshot)
            self._snapshot = snapshot
            self._checked = time.monotonic()
            return snapshot
        finally:
            self._lock.release()

    def forget(self) -> None:
        with self._lock:
            self._snapshot = None
            self._checked = 0.0


_listing = Listing()


def page(request: PageRequest, party: Party | None = None) -> tuple[int, list[str]]:
    """The total and the page's rendered JSON (of ``party``'s locations only, when given, as
    (country_code, party_id) upper case): from this process's copy, or the database."""
    interval = float(settings.OCPI_LIST_CACHE_SECONDS)
    if interval <= 0:
        return services.list_page(request, party)
    return _listing.current(interval).rows(request, party)


def forget() -> None:
    """Drop this process's copy (tests; the next page loads it again)."""
    _listing.forget()
