"""The locations sender list: our shared locations, served from the kit's per-process copy
(``kit.listing`` says how it is kept up to date)."""

from __future__ import annotations

from kit.listing import LOOK_BACK, Listing, Party, Source
from ocpi_platform.ocpi.pagination import PageRequest

from . import services
from .models import Location

__all__ = ["LOOK_BACK", "forget", "page"]

_listing = Listing(Source(Location.objects.shared, Location.objects.ours))


def page(request: PageRequest, party: Party | None = None) -> tuple[int, list[str]]:
    """The total and the page's rendered JSON (of ``party``'s locations only, when given, as
    (country_code, party_id) upper case): from this process's copy, or the database."""
    return _listing.page(request, party, services.list_page)


def forget() -> None:
    """Drop this process's copy (tests; the next page loads it again)."""
    _listing.forget()
