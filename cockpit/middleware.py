"""Counts every inbound OCPI request for /metrics: module, method, HTTP status, duration.

Kept to a dictionary lookup and two increments per request (the locations list and the status
PATCH are the hot paths; ``make bench`` measures them with this middleware in place).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import metrics

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"})


def module_of(request: HttpRequest) -> str:
    """The OCPI module of the URL name (``locations-sender-object`` → ``locations``)."""
    match = request.resolver_match
    if match is None or not match.url_name:
        return "unresolved"
    return match.url_name.split("-", 1)[0]


class InboundMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/ocpi/"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "OTHER"
        module = module_of(request)
        metrics.count_inbound(module, method, response.status_code, time.perf_counter() - started)
        return response
