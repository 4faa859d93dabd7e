"""The project's URLs plus ``/bench/ceiling``: the upper bound of what the list could reach.

The ceiling answers with the bytes of a real sender list page (the first 50 locations, or of
another module's list at ``/bench/ceiling/{module}``, with the
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
_pages: dict[str, tuple[bytes, dict[str, str]]] = {}


def _compute_page(module: str) -> tuple[bytes, dict[str, str]]:
    from ocpi_platform.ocpi.envelope import raw_data_response
    from ocpi_platform.ocpi.pagination import PageRequest

    page = PageRequest(0, CEILING_LIMIT, CEILING_LIMIT, None, None)
    if module == "locations":
        from locations import services

        total, rows = services.list_page(page)
    else:
        from kit import services as kit_services
        from kit import spec_of

        total, rows = kit_services.list_page(spec_of(module), page)
    response = raw_data_response("[" + ",".join(rows) + "]")
    headers = {
        "X-Total-Count": str(total),
        "X-Limit": str(CEILING_LIMIT),
        "Link": f'<http://127.0.0.1/ocpi/2.2.1/sender/{module}?limit=50&offset=50>; rel="next"',
    }
    return response.content, headers


def ceiling_page(module: str = "locations") -> tuple[bytes, dict[str, str]]:
    """The precomputed page of ``module``'s list (computed on the first call in this process)."""
    if module not in _pages:
        with _lock:
            if module not in _pages:
                _pages[module] = _compute_page(module)
    return _pages[module]


def ceiling(request: HttpRequest, module: str = "locations") -> HttpResponse:
    body, headers = ceiling_page(module)
    return HttpResponse(body, content_type="application/json", headers=headers)


urlpatterns = [
    path("bench/ceiling", ceiling, name="bench-ceiling"),
    path("bench/ceiling/<str:module>", ceiling, name="bench-ceiling-module"),
    *project_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
