"""What every inbound request under /ocpi/ goes through before a view sees it.

* Doubled slashes in the path are served as single ones (no redirect): a peer joining our
  endpoint URL (which ends in '/') and ``/NL/ABC/LOC1`` reaches the same view.
* A ``Host`` header that is not one of ALLOWED_HOSTS: HTTP 400, status 2000 (not Django's page).
* A body larger than OCPI_MAX_BODY_BYTES: HTTP 413, status 2000, before the body is read
  (``Content-Length``), or as soon as a chunked body (no ``Content-Length``) reaches the limit.
  A chunked body within the limit is read here so that the view sees it (Django reads a body
  only up to ``Content-Length``, i.e. not at all without one).
* A URL whose interface we do not offer (its module endpoint is not in our version details, or
  no registered endpoint claims it): HTTP 404, status 2000 (see ``registry``).
* OPTIONS: HTTP 200 with the envelope and an ``Allow`` header (no DRF metadata).

Everything else under /ocpi/ and every path outside it pass unchanged.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse

from . import registry
from .envelope import envelope, error_json_response, is_ocpi_path
from .errors import BadRequest, BodyTooLarge, NotFound

logger = logging.getLogger(__name__)

_SLASHES = re.compile(r"/{2,}")
_CHUNK = 64 * 1024


def _collapse_slashes(request: HttpRequest) -> None:
    path_info = request.path_info
    if "//" not in path_info:
        return
    collapsed = _SLASHES.sub("/", path_info)
    if is_ocpi_path(collapsed):
        script_name = request.path[: len(request.path) - len(path_info)]
        request.path_info = collapsed
        request.path = script_name + collapsed


def _declared_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        length = int(raw)
    except ValueError:
        length = -1
    if length < 0:
        raise BadRequest("The Content-Length header is not a whole number of bytes.")
    return length


def _is_chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _read_chunked(request: HttpRequest, limit: int) -> None:
    """Read a body sent without Content-Length, counting bytes; make it the request's body."""
    stream = request.META["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
    body = b"".join(parts)
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._stream = io.BytesIO(body)


def _check_body(request: HttpRequest) -> None:
    limit = settings.OCPI_MAX_BODY_BYTES
    length = _declared_length(request)
    if length is not None:
        if length > limit:
            raise BodyTooLarge()
    elif _is_chunked(request):
        _read_chunked(request, limit)


def _allowed_methods(view_func: Callable[..., Any]) -> list[str]:
    view_class = getattr(view_func, "view_class", None)
    names = getattr(view_class, "http_method_names", ())
    return [name.upper() for name in names if hasattr(view_class, name)]


class OcpiInboundMiddleware:
    """Place right after OcpiHeadersMiddleware (the ids are echoed on what this answers)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        _collapse_slashes(request)
        if not is_ocpi_path(request.path_info):
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            logger.warning(
                "Refused a request to %r: its Host header is not an allowed host.", request.path
            )
            return error_json_response(
                BadRequest("The Host header does not name this platform (not an allowed host).")
            )
        try:
            _check_body(request)
        except (BadRequest, BodyTooLarge) as exc:
            return error_json_response(exc)
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: Any,
        view_kwargs: Any,
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or not is_ocpi_path(request.path_info):
            return None
        if "ocpi" in match.namespaces and match.view_name not in registry.ENTRY_POINTS:
            endpoint = registry.endpoint_serving(match.view_name)
            if endpoint is None or not endpoint.enabled():
                what = f"the {endpoint.identifier} {endpoint.role} interface" if endpoint else "it"
                return error_json_response(
                    NotFound(
                        f"No OCPI endpoint at {request.path}: this platform does not offer "
                        f"{what} (see our version details)."
                    )
                )
            request.ocpi_endpoint = endpoint  # type: ignore[attr-defined]
        if request.method == "OPTIONS":
            methods = _allowed_methods(view_func)
            response = JsonResponse(
                envelope(message="Methods of this endpoint: " + ", ".join(methods) + ".")
            )
            response["Allow"] = ", ".join(methods)
            return response
        return None
