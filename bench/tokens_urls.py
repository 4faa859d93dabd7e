"""``bench.urls`` plus ``/bench/ceiling/tokens``: the bytes of the real first page of our tokens
list (envelope and paging headers), computed once per process and returned without DRF,
authentication or a query: the ceiling the tokens sender list is compared with."""

from __future__ import annotations

import threading

from django.http import HttpRequest, HttpResponse
from django.urls import path

from bench.urls import CEILING_LIMIT, handler404, handler500
from bench.urls import urlpatterns as bench_urlpatterns

_lock = threading.Lock()
_page: tuple[bytes, dict[str, str]] | None = None


def _compute_page() -> tuple[bytes, dict[str, str]]:
    import kit
    from kit import services
    from ocpi_platform.ocpi.envelope import raw_data_response
    from ocpi_platform.ocpi.pagination import PageRequest

    page = PageRequest(0, CEILING_LIMIT, CEILING_LIMIT, None, None)
    total, rows = services.list_page(kit.spec_of("tokens"), page)
    response = raw_data_response("[" + ",".join(rows) + "]")
    headers = {
        "X-Total-Count": str(total),
        "X-Limit": str(CEILING_LIMIT),
        "Link": '<http://127.0.0.1/ocpi/2.2.1/sender/tokens?limit=50&offset=50>; rel="next"',
    }
    return response.content, headers


def ceiling(request: HttpRequest) -> HttpResponse:
    global _page
    if _page is None:
        with _lock:
            if _page is None:
                _page = _compute_page()
    body, headers = _page
    return HttpResponse(body, content_type="application/json", headers=headers)


urlpatterns = [
    path("bench/ceiling/tokens", ceiling, name="bench-ceiling-tokens"),
    *bench_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
