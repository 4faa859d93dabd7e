"""The project's URLs plus ``/bench/ceiling``: the upper bound of what the list could reach.

The ceiling answers with the bytes of a real sender list page (the first 50 locations, with the
envelope and the paging headers of the real view), computed once per worker process. It runs
through the same gunicorn and Django middleware as the OCPI views, but without DRF, token
authentication or database queries: what is left is the cost of the server and of the response
size.
"""

from __future__ import annotations

import threading

from django.http import HttpRequest, HttpResponse
from django.urls import path

from ocpi_platform.urls import handler404, handler500
from ocpi_platform.urls import urlpatterns as project_urlpatterns

CEILING_LIMIT = 50

_lock = threading.Lock()
_page: tuple[bytes, dict[str, str]] | None = None


def _compute_page() -> tuple[bytes, dict[str, str]]:
    from locations import services
    from ocpi_platform.ocpi.envelope import raw_data_response
    from ocpi_platform.ocpi.pagination import PageRequest

    page = PageRequest(0, CEILING_LIMIT, CEILING_LIMIT, None, None)
    total, rows = services.list_page(page)
    response = raw_data_response("[" + ",".join(rows) + "]")
    headers = {
        "X-Total-Count": str(total),
        "X-Limit": str(CEILING_LIMIT),
        "Link": '<http://127.0.0.1/ocpi/2.2.1/sender/locations?limit=50&offset=50>; rel="next"',
    }
    return response.content, headers


def ceiling_page() -> tuple[bytes, dict[str, str]]:
    """The precomputed page (computed on the first call in this process)."""
    global _page
    if _page is None:
        with _lock:
            if _page is None:
                _page = _compute_page()
    return _page


def ceiling(request: HttpRequest) -> HttpResponse:
    body, headers = ceiling_page()
    return HttpResponse(body, content_type="application/json", headers=headers)


urlpatterns = [path("bench/ceiling", ceiling, name="bench-ceiling"), *project_urlpatterns]

__all__ = ["handler404", "handler500", "urlpatterns"]
