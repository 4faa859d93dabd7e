"""The OCPI response envelope, the JSON parser and the DRF exception handler.

Every response, errors included, is ``{data, status_code, status_message, timestamp}``.
"""

from __future__ import annotations

import json
import logging
import operator
import re
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from .errors import BadRequest, BodyTooLarge, InvalidParameters, MalformedJson, OcpiError
from .status import OcpiStatus
from .types import format_datetime, now_utc

logger = logging.getLogger(__name__)


def envelope(
    data: Any = None, *, status: OcpiStatus = OcpiStatus.SUCCESS, message: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = int(status)
    if message:
        # A message never makes the response unencodable (e.g. a lone surrogate it quotes).
        body["status_message"] = message.encode("utf-8", "replace").decode("utf-8")
    body["timestamp"] = format_datetime(now_utc())
    return body


def ocpi_response(
    data: Any = None,
    *,
    status: OcpiStatus = OcpiStatus.SUCCESS,
    message: str | None = None,
    http_status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        envelope(data, status=status, message=message),
        status=http_status,
        headers=dict(headers or {}),
    )


def raw_data_response(data_json: str, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """A success envelope around ``data_json``, JSON that is already rendered (list pages)."""
    tail = json.dumps(
        {"status_code": int(OcpiStatus.SUCCESS), "timestamp": format_datetime(now_utc())}
    )
    body = '{"data":' + data_json + "," + tail[1:]
    return HttpResponse(
        body.encode("utf-8"), content_type="application/json", headers=dict(headers or {})
    )


def error_json_response(error: OcpiError) -> JsonResponse:
    """The envelope outside DRF (unknown URLs, crashes in middleware)."""
    return JsonResponse(
        envelope(status=error.ocpi_status, message=error.message), status=error.http_status
    )


def one_object(data: Any, what: str = "one JSON object") -> dict[str, Any]:
    """The pushed object of a PUT/PATCH body; a single object wrapped in a one-element list is
    accepted too (some peers send it so). Anything else is answered with 2001."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if data is None or (isinstance(data, dict) and not data):
        # DRF gives an empty dict for an empty body; an empty object is as useless.
        raise InvalidParameters(f"Expected {what}, got no body (or an empty object).")
    if not isinstance(data, dict):
        raise InvalidParameters(f"Expected {what}, got a JSON {type(data).__name__}.")
    return data


# JSON integers longer than this (sign not counted) are refused: no OCPI field needs more than
# an int64, and Python would otherwise build (or refuse with ValueError) a huge int.
MAX_INT_DIGITS = 20

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # +1 / -1, shifted by one
_DIGIT_RUN = re.compile(rb"\d{%d,}" % (MAX_INT_DIGITS + 1))
_LONG_INT = re.compile(rb"(?<![\d.eE+-])-?\d{%d,}(?![\d.eE])" % (MAX_INT_DIGITS + 1))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _Refused(Exception):
    """A JSON text the parser will not turn into Python values (raised by its hooks)."""


def _skeleton(raw: bytes) -> bytes:
    """The JSON text without the contents of its strings (escapes first, then quoted runs)."""
    text = _ESCAPE.sub(b"", raw) if b"\\" in raw else raw
    return b"".join(text.split(b'"')[::2])


def json_depth(raw: bytes, skeleton: bytes | None = None) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings not counted)."""
    steps = (_skeleton(raw) if skeleton is None else skeleton).translate(None, _NOT_A_BRACKET)
    steps = steps.translate(_BRACKET_STEP)
    depths = map(operator.sub, accumulate(steps), range(1, len(steps) + 1))
    return max(depths, default=0)


def _has_long_int(skeleton: bytes) -> bool:
    return bool(_DIGIT_RUN.search(skeleton)) and bool(_LONG_INT.search(skeleton))


def _parse_constant(text: str) -> Any:
    raise _Refused(f"{text} is not a JSON value")


def _has_lone_surrogate(raw: bytes, data: Any) -> bool:
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json_body(raw: bytes, *, what: str = "The request body") -> Any:
    """A request body as JSON, within the limits; ``None`` for an empty body.

    Refused with HTTP 400 / 2001: not UTF-8, not JSON, nested deeper than OCPI_MAX_JSON_DEPTH,
    an integer of more than MAX_INT_DIGITS digits, NaN/Infinity, a lone UTF-16 surrogate escape
    (``"\\ud800"``: not Unicode text). The messages never quote the body; they start with
    ``what`` (the outbound client parses partners' answers with the same limits).
    """
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedJson(f"{what} is not UTF-8 encoded JSON.") from None
    limit = settings.OCPI_MAX_JSON_DEPTH
    skeleton = _skeleton(raw)
    if json_depth(raw, skeleton) > limit:
        raise MalformedJson(f"{what} nests arrays or objects deeper than {limit} levels.")
    if _has_long_int(skeleton):
        raise MalformedJson(
            f"{what} is not acceptable JSON: an integer has more than {MAX_INT_DIGITS} digits."
        )
    try:
        data = json.loads(text, parse_constant=_parse_constant)
    except _Refused as exc:
        raise MalformedJson(f"{what} is not acceptable JSON: {exc}.") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except (RecursionError, ValueError):  # last guards: too deep, a number Python refuses
        raise MalformedJson(f"{what} is not acceptable JSON.") from None
    if _has_lone_surrogate(raw, data):
        raise MalformedJson(
            f"{what} contains a lone UTF-16 surrogate escape (\\uD800-\\uDFFF "
            "without its pair): a JSON string must be Unicode text."
        )
    return data


class OcpiJsonParser(BaseParser):
    """Parse every request body as JSON, whatever Content-Type a partner sent.

    A body that is not JSON is answered with HTTP 400 (spec: status_codes); a body over
    OCPI_MAX_BODY_BYTES with HTTP 413 (the inbound middleware refuses most before reading).
    """

    media_type = "*/*"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        return read_json(stream)


def pushed_object(request: Any, what: str = "one JSON object") -> dict[str, Any]:
    """The object a PUT/PATCH carries (``one_object`` of its body, read by ``read_json``):
    ``request`` is DRF's or Django's."""
    return one_object(read_json(getattr(request, "_request", request)), what)


def read_json(stream: Any) -> Any:
    """A request body read from ``stream`` (a Django request is one) as JSON, None when empty:
    HTTP 413 beyond OCPI_MAX_BODY_BYTES, 400/2001 when it is not acceptable JSON. What
    OcpiJsonParser does, without DRF's parser selection: the hot paths call it directly."""
    limit = settings.OCPI_MAX_BODY_BYTES
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise BodyTooLarge()
    return parse_json_body(raw)


class OcpiJsonOnly(BaseContentNegotiation):
    """OCPI speaks JSON only: every request is parsed and answered as JSON, whatever its
    Accept header says (no 406, and no Accept parsing on each request)."""

    def select_parser(self, request: Any, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Any, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def describe_validation_errors(detail: Any, path: str = "") -> list[str]:
    """Flatten DRF's nested error structure into 'field.sub[0]: message' lines."""
    if isinstance(detail, Mapping):
        lines: list[str] = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = path
            elif isinstance(key, int) or str(key).isdigit():
                name = f"{path}[{key}]"
            else:
                name = f"{path}.{key}" if path else str(key)
            lines.extend(describe_validation_errors(value, name))
        return lines
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            prefix = f"{path}: " if path else ""
            return [prefix + " ".join(str(item) for item in detail)]
        lines = []
        for index, item in enumerate(detail):
            if item:
                lines.extend(describe_validation_errors(item, f"{path}[{index}]"))
        return lines
    prefix = f"{path}: " if path else ""
    return [prefix + str(detail)]


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """Map every exception raised in a view to the envelope (DRF's EXCEPTION_HANDLER)."""
    if isinstance(exc, OcpiError):
        return ocpi_response(
            status=exc.ocpi_status, message=exc.message, http_status=exc.http_status
        )
    if isinstance(exc, drf.ParseError):
        return ocpi_response(
            status=OcpiStatus.INVALID_PARAMETERS, message=str(exc.detail), http_status=400
        )
    if isinstance(exc, drf.ValidationError):
        message = "; ".join(describe_validation_errors(exc.detail)) or "Invalid parameters."
        return ocpi_response(status=OcpiStatus.INVALID_PARAMETERS, message=message)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return ocpi_response(
            status=OcpiStatus.CLIENT_ERROR,
            message=str(exc.detail),
            http_status=401,
            headers={"WWW-Authenticate": "Token"},
        )
    if isinstance(exc, drf.MethodNotAllowed):
        return ocpi_response(
            status=OcpiStatus.CLIENT_ERROR, message=str(exc.detail), http_status=405
        )
    if isinstance(exc, Http404 | drf.NotFound):
        return ocpi_response(status=OcpiStatus.CLIENT_ERROR, message="Not found.", http_status=404)
    if isinstance(exc, drf.APIException):
        return ocpi_response(
            status=OcpiStatus.CLIENT_ERROR, message=str(exc.detail), http_status=exc.status_code
        )
    view = context.get("view")
    logger.exception("Unexpected error in %s", type(view).__name__ if view else "view")
    return ocpi_response(status=OcpiStatus.SERVER_ERROR, message="Internal server error.")


def is_ocpi_path(path: str) -> bool:
    return path.startswith("/ocpi/") or path == "/ocpi"


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Unknown URLs under /ocpi/ get the envelope; the admin keeps Django's page."""
    from django.views.defaults import page_not_found

    from .errors import NotFound

    if is_ocpi_path(request.path_info):
        return error_json_response(NotFound(f"No OCPI endpoint at {request.path}."))
    return page_not_found(request, exception or Http404())


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400s (a SuspiciousOperation in a middleware) under /ocpi/ get the envelope."""
    from django.views.defaults import bad_request

    if is_ocpi_path(request.path_info):
        if isinstance(exception, RequestDataTooBig):
            return error_json_response(BodyTooLarge())
        return error_json_response(BadRequest())
    return bad_request(request, exception or SuspiciousOperation())


def handler500(request: HttpRequest) -> JsonResponse:
    from .errors import ServerError

    return error_json_response(ServerError())
