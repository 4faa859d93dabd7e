"""X-Request-ID / X-Correlation-ID on every request and response, and OCPI routing headers.

The ids of the request being handled are kept in context variables so that the outbound client
reuses the correlation id for calls made because of it (e.g. the registration callbacks), and so
that log lines can name it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

REQUEST_ID = "X-Request-ID"
CORRELATION_ID = "X-Correlation-ID"

_ID = re.compile(r"^[\x21-\x7e]{1,255}$")

current_request_id: ContextVar[str | None] = ContextVar("ocpi_request_id", default=None)
current_correlation_id: ContextVar[str | None] = ContextVar("ocpi_correlation_id", default=None)


def new_id() -> str:
    """A random UUID (version 4) as text, like ``str(uuid.uuid4())`` at half its cost (two per
    request on the hot paths)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _clean(value: str | None) -> str | None:
    """Accept a partner's id if it is a sane header value; otherwise we make our own."""
    if value and _ID.match(value):
        return value
    return None


@contextmanager
def correlation(correlation_id: str | None) -> Iterator[str]:
    """Run outbound work (a task) under one correlation id."""
    value = correlation_id or new_id()
    token = current_correlation_id.set(value)
    try:
        yield value
    finally:
        current_correlation_id.reset(token)


class OcpiHeadersMiddleware:
    """Echo or create the request and correlation ids on every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META  # the WSGI names: no header mapping built for two headers
        request_id = _clean(meta.get("HTTP_X_REQUEST_ID")) or new_id()
        correlation_id = _clean(meta.get("HTTP_X_CORRELATION_ID")) or new_id()
        request.ocpi_request_id = request_id  # type: ignore[attr-defined]
        request.ocpi_correlation_id = correlation_id  # type: ignore[attr-defined]
        rid = current_request_id.set(request_id)
        cid = current_correlation_id.set(correlation_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(rid)
            current_correlation_id.reset(cid)
        response[REQUEST_ID] = request_id
        response[CORRELATION_ID] = correlation_id
        return response


@dataclass(frozen=True)
class RoutingHeaders:
    """OCPI-from/to-* of a functional module request (never on configuration modules)."""

    from_country_code: str | None
    from_party_id: str | None
    to_country_code: str | None
    to_party_id: str | None

    @classmethod
    def from_request(cls, request: HttpRequest) -> RoutingHeaders:
        meta = request.META  # the WSGI names of the headers: no header mapping built

        def get(name: str) -> str | None:
            value = meta.get(name)
            return value.strip().upper() if value else None

        return cls(
            get("HTTP_OCPI_FROM_COUNTRY_CODE"),
            get("HTTP_OCPI_FROM_PARTY_ID"),
            get("HTTP_OCPI_TO_COUNTRY_CODE"),
            get("HTTP_OCPI_TO_PARTY_ID"),
        )

    def as_headers(self) -> dict[str, str]:
        pairs = {
            "OCPI-from-country-code": self.from_country_code,
            "OCPI-from-party-id": self.from_party_id,
            "OCPI-to-country-code": self.to_country_code,
            "OCPI-to-party-id": self.to_party_id,
        }
        return {k: v for k, v in pairs.items() if v}

    def swapped(self) -> RoutingHeaders:
        """The headers of the response to a request that carried these."""
        return RoutingHeaders(
            self.to_country_code, self.to_party_id, self.from_country_code, self.from_party_id
        )
