"""Paginated GET lists: offset, limit, date_from, date_to; Link, X-Total-Count, X-Limit.

Spec transport_and_format › Pagination. Links are built from OCPI_PUBLIC_URL, so they work
behind a proxy, and keep every filter of the original request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest

from .errors import InvalidParameters
from .types import parse_datetime


@dataclass(frozen=True)
class PageRequest:
    offset: int
    limit: int
    max_limit: int
    date_from: datetime | None
    date_to: datetime | None


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameters(f"{name} must be a whole number, got {raw[:40]!r}.") from None
    if value < 0:
        raise InvalidParameters(f"{name} must not be negative.")
    return value


def date_param(request: HttpRequest, name: str) -> datetime | None:
    raw = request.GET.get(name)
    if not raw:
        return None
    try:
        return parse_datetime(raw)
    except ValueError as exc:
        raise InvalidParameters(f"{name}: {exc}") from None


def page_request(request: HttpRequest, *, max_limit: int | None = None) -> PageRequest:
    cap = max_limit or settings.OCPI_PAGE_LIMIT
    limit = min(_int_param(request, "limit", cap), cap)
    if limit == 0:
        limit = cap
    date_from = date_param(request, "date_from")
    date_to = date_param(request, "date_to")
    if date_from and date_to and date_from > date_to:
        # Equal bounds are a valid, empty window (date_from inclusive, date_to exclusive).
        raise InvalidParameters("date_from must not be after date_to.")
    return PageRequest(_int_param(request, "offset", 0), limit, cap, date_from, date_to)


def page_headers(request: HttpRequest, page: PageRequest, *, total: int) -> dict[str, str]:
    headers = {"X-Total-Count": str(total), "X-Limit": str(page.limit)}
    next_offset = page.offset + page.limit
    if next_offset < total:
        # The last value of each parameter, as QueryDict.items() gives (no deep copy of it).
        query = {key: request.GET[key] for key in request.GET}
        query["offset"] = str(next_offset)
        query["limit"] = str(page.limit)
        url = f"{settings.OCPI_PUBLIC_URL}{request.path}?{urlencode(sorted(query.items()))}"
        headers["Link"] = f'<{url}>; rel="next"'
    return headers
