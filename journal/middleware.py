"""Journal every request under /ocpi/ after its answer (place right after OcpiHeadersMiddleware:
the ids are set, and the inbound middleware's own refusals are journaled too)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.http.request import RawPostDataException

from ocpi_platform.ocpi.envelope import is_ocpi_path

from . import recorder


def _declared_within_limit(request: HttpRequest) -> bool:
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw:  # no body, unless chunked
        return "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    return raw.isdigit() and int(raw) <= settings.OCPI_MAX_BODY_BYTES


class JournalMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_ocpi_path(request.path_info) or not recorder.enabled():
            return self.get_response(request)
        started = time.monotonic()
        body = None
        if recorder.any_bodies_wanted() and _declared_within_limit(request):
            # Read now (it stays readable for the view): who is calling is known only later.
            # A chunked body is left to the inbound middleware (it reads it itself).
            try:
                body = request.body
            except (RawPostDataException, RequestDataTooBig):
                body = None
        response = self.get_response(request)
        recorder.record_inbound(request, response, started, body)
        return response
