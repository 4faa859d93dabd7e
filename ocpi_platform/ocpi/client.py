"""The one outbound client: every call to a partner goes through ``OcpiClient``.

It sets timeouts, the ``Token`` header (Base64, or plain for partners that want it), the request
and correlation ids; it unwraps the envelope and classifies every failure once:

* ``PartnerRejected`` (permanent): HTTP 4xx, OCPI 2xxx, or a hub's 4001;
* ``PartnerUnavailable`` (transient): no connection, timeout, HTTP 5xx/429, OCPI 3xxx,
  hub 4002/4003;
* ``PartnerProtocolError`` (permanent): not JSON (or JSON beyond the inbound limits: nesting,
  long integers), not an envelope, a redirect, an answer over OCPI_HTTP_MAX_RESPONSE_BYTES;
* ``UrlRefused`` (permanent, a ``PartnerRejected``): the outbound URL policy (``urlpolicy``)
  forbids the URL or an address it resolves to; nothing was sent.

Each error has a ``message`` for the operator (it may quote a few words of the partner's answer)
and a ``public`` text that may be relayed to the partner: short, and never quoting anything of an
answer that is not an OCPI envelope, nor an address we resolved its host name to. A URL in any
message is shown without its ``user:password@`` (``urlpolicy.redact_url``).

Answers are streamed and read up to OCPI_HTTP_MAX_RESPONSE_BYTES (decoded), then parsed with the
inbound parser's limits (``envelope.parse_json_body``).

Tests inject an ``httpx`` transport through ``use_transport`` (the only seam); the URL policy
still applies to it (without resolving or connecting).

Observers (``observe``: the request journal) see every request that was sent, as an
``Exchange``: its answer's statuses, or why there was none. A call refused by the URL policy sent
nothing and is not an exchange.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings

from .envelope import parse_json_body
from .errors import MalformedJson
from .headers import CORRELATION_ID, REQUEST_ID, RoutingHeaders, current_correlation_id, new_id
from .principal import TokenEncoding
from .status import OcpiStatus
from .urlpolicy import PolicyViolation, current, redact_url, transports

logger = logging.getLogger(__name__)

USER_AGENT = "ocpi-platform/2.2.1"

_transport: ContextVar[httpx.BaseTransport | None] = ContextVar("ocpi_transport", default=None)


@dataclass(frozen=True)
class Exchange:
    """One request sent to a partner and its answer (``http_status`` None: no answer, see
    ``error``). The bodies are raw; ``secrets`` are the token values of the call, so that an
    observer can redact them (never shown in a repr)."""

    partner_id: int | None
    method: str
    url: str
    request_id: str
    correlation_id: str
    http_status: int | None
    ocpi_status: int | None
    started_at: datetime
    duration_ms: float
    error: str
    request_body: bytes = field(repr=False)
    response_body: bytes = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)


_observers: list[Callable[[Exchange], None]] = []


def observe(callback: Callable[[Exchange], None]) -> None:
    """Call ``callback`` with every exchange of every client (once per callback)."""
    if callback not in _observers:
        _observers.append(callback)


@dataclass
class _Sent:
    request: httpx.Request
    response: httpx.Response
    body: bytes
    started: float  # monotonic
    started_at: datetime


@contextmanager
def use_transport(transport: httpx.BaseTransport) -> Iterator[None]:
    """Send every outbound call made inside the block through ``transport`` (tests)."""
    token = _transport.set(transport)
    try:
        yield
    finally:
        _transport.reset(token)


class PartnerError(Exception):
    permanent = True

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        ocpi_status: int | None = None,
        retry_after: float | None = None,
        public: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # What may be told to the partner (in a 3001): by default the message itself.
        self.public = public or message
        self.http_status = http_status
        self.ocpi_status = ocpi_status
        # Seconds the partner asked us to wait (``Retry-After`` of a 429/503), else None.
        self.retry_after = retry_after


class PartnerRejected(PartnerError):
    permanent = True

    @property
    def unknown_object(self) -> bool:
        """The partner said the object does not exist: OCPI 2003, or HTTP 404 that is not a
        hub's error (4xxx: e.g. 4001 unknown receiver says nothing of the object)."""
        if self.http_status in (401, 403):
            return False  # about the caller, whatever the body says
        if self.ocpi_status == OcpiStatus.UNKNOWN_LOCATION:
            return True
        hub_error = self.ocpi_status is not None and 4000 <= self.ocpi_status < 5000
        return self.http_status == 404 and not hub_error


class PartnerUnavailable(PartnerError):
    permanent = False


class PartnerProtocolError(PartnerError):
    permanent = True


class UrlRefused(PartnerRejected):
    """The outbound URL policy forbids the call; ``rule`` says which rule. Nothing was sent."""

    permanent = True

    def __init__(self, message: str, *, rule: str, public: str | None = None) -> None:
        super().__init__(message, public=public)
        self.rule = rule


@dataclass(frozen=True)
class OcpiReply:
    http_status: int
    status_code: int
    message: str | None
    data: Any
    headers: httpx.Headers
    url: str

    def next_link(self) -> str | None:
        """The absolute URL of the next page (a relative ``Link`` is resolved against ours)."""
        return parse_next_link(self.headers.get("Link"), base=self.url)


# One link-value of a ``Link`` header (RFC 8288): ``<URI>`` and its ``; name=value`` parameters.
_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL = re.compile(r"""(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


def parse_next_link(header: str | None, *, base: str | None = None) -> str | None:
    """The target of ``rel="next"`` in a ``Link`` header, or None.

    RFC 8288 allows a relative reference (``</path?offset=5>``, ``<?offset=5>``): with ``base``
    (the URL of the request that was answered) it is resolved to an absolute URL.
    """
    if not header:
        return None
    for match in _LINK_VALUE.finditer(header):
        rel = _REL.search(match.group(2))
        if rel is None:
            continue
        relations = (rel.group(1) if rel.group(1) is not None else rel.group(2)).lower().split()
        if "next" not in relations:
            continue
        target = match.group(1).strip()
        if base is None:
            return target
        try:
            return str(httpx.URL(base).join(target))
        except httpx.InvalidURL:
            return target  # the request refuses it with the reason
    return None


# A partner cannot make us wait longer than this (a typo, or a hostile value). It is a countdown:
# below the broker's visibility timeout (system check ocpi.E021, ocpi_platform/task_checks.py).
RETRY_AFTER_MAX_SECONDS = 1800.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), capped at
    ``RETRY_AFTER_MAX_SECONDS``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value[:12]))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_SECONDS)


def _status_code(envelope: dict[str, Any] | None) -> int | None:
    """The status_code of an error answer's envelope, when it is a plausible one (four digits:
    it is stored with the delivery)."""
    code = envelope.get("status_code") if envelope else None
    if isinstance(code, bool) or not isinstance(code, int | str):
        return None
    try:
        number = int(code)
    except ValueError:
        return None
    return number if 1000 <= number <= 9999 else None


def authorization_header(token: str, encoding: TokenEncoding) -> str:
    if encoding == TokenEncoding.PLAIN:
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


# At most this much of a partner's status_message is relayed back to it (in our 3001 text).
PUBLIC_MESSAGE_LIMIT = 120


def _is_ocpi_envelope(body: Any) -> bool:
    """An answer that is an OCPI envelope: a numeric status_code and a timestamp."""
    if not isinstance(body, dict):
        return False
    code, timestamp = body.get("status_code"), body.get("timestamp")
    return isinstance(code, int) and not isinstance(code, bool) and isinstance(timestamp, str)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing (``Set-Cookie`` of an answer is ignored)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class OcpiClient:
    """Calls one partner with one token. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        token: str | None,
        *,
        encoding: TokenEncoding = TokenEncoding.BASE64,
        read_timeout: float | None = None,
        routing: RoutingHeaders | None = None,
        encoding_fallback: bool = True,
        on_reply: Callable[[OcpiReply], None] | None = None,
        on_refused: Callable[[UrlRefused], None] | None = None,
        partner_id: int | None = None,
    ) -> None:
        self._token = token
        self._authorization: tuple[TokenEncoding | None, str] = (None, "")
        # Whom the exchanges are with (the journal files them under it), and this client's own
        # observers besides the global ones.
        self.partner_id = partner_id
        self.observers: list[Callable[[Exchange], None]] = []
        # Called with every successful reply (the partner is alive: callers mark it seen).
        self.on_reply = on_reply
        # Called when the URL policy refuses a call (callers record it on the partner).
        self.on_refused = on_refused
        self.encoding = encoding
        self.encoding_fallback = encoding_fallback
        self.routing = routing
        timeout = httpx.Timeout(
            read_timeout or settings.OCPI_HTTP_READ_TIMEOUT,
            connect=settings.OCPI_HTTP_CONNECT_TIMEOUT,
        )
        # Every request goes through the URL policy; environment proxies are mounted by it.
        transport, mounts = transports(current(), _transport.get())
        self._http = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            mounts=mounts,
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        # OCPI is stateless (the Token header): a partner's cookies are never sent back. Not
        # parsing them into a jar also saves a large part of the client's CPU per request.
        self._http._cookies = _NoCookies()

    def __enter__(self) -> OcpiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _headers(self, encoding: TokenEncoding, has_body: bool) -> dict[str, str]:
        headers = {
            REQUEST_ID: new_id(),
            CORRELATION_ID: current_correlation_id.get() or new_id(),
        }
        if self._token:
            if self._authorization[0] != encoding:
                self._authorization = (encoding, authorization_header(self._token, encoding))
            headers["Authorization"] = self._authorization[1]
        if has_body:
            headers["Content-Type"] = "application/json"
        if self.routing:
            headers.update(self.routing.as_headers())
        return headers

    def _send(
        self,
        method: str,
        url: str,
        encoding: TokenEncoding,
        json: Any,
        params: Mapping[str, str] | None,
    ) -> _Sent:
        """Send the request; the answer (closed) and its body, read up to the size limit."""
        started, started_at = time.monotonic(), datetime.now(UTC)
        request: httpx.Request | None = None
        try:
            request = self._http.build_request(
                method,
                url,
                json=json,
                params=params,
                headers=self._headers(encoding, json is not None),
            )
            response = self._http.send(request, stream=True)
            try:
                body = _read_body(method, url, response)
                return _Sent(request, response, body, started, started_at)
            except PartnerError as exc:
                self._notify(_Sent(request, response, b"", started, started_at), None, exc.message)
                raise
            finally:
                response.close()
        except PolicyViolation as exc:
            what = _what(method, url)
            refused = UrlRefused(
                f"{what} was not called: {exc.rule} (outbound URL policy).",
                rule=exc.rule,
                public=f"{what} was not called: {exc.public} (outbound URL policy).",
            )
            logger.warning("%s", refused.message)
            if self.on_refused is not None:
                self.on_refused(refused)
            raise refused from None
        except httpx.TimeoutException:
            error: PartnerError = PartnerUnavailable(f"{_what(method, url)} timed out.")
        except httpx.InvalidURL:
            raise PartnerRejected(f"{redact_url(url)!r} is not a URL we can call.") from None
        except httpx.DecodingError:
            error = PartnerProtocolError(
                f"{_what(method, url)} answered with a body that does not decode as its "
                "Content-Encoding says."
            )
        except httpx.TransportError as exc:
            # What the connection said stays with the operator (it may quote the peer's bytes).
            what = _what(method, url)
            error = PartnerUnavailable(
                f"{what} failed: {type(exc).__name__}: {_short(str(exc))}",
                public=f"{what} failed: {type(exc).__name__}.",
            )
        if request is not None:
            self._emit(request, started, started_at, None, None, error.message, b"")
        raise error from None

    def _notify(self, sent: _Sent, ocpi_status: int | None, error: str) -> None:
        status = sent.response.status_code
        self._emit(
            sent.request, sent.started, sent.started_at, status, ocpi_status, error, sent.body
        )

    def _emit(
        self,
        request: httpx.Request,
        started: float,
        started_at: datetime,
        http_status: int | None,
        ocpi_status: int | None,
        error: str,
        body: bytes,
    ) -> None:
        """Tell the observers (the journal); an observer's failure never fails the call."""
        if not _observers and not self.observers:
            return
        exchange = Exchange(
            partner_id=self.partner_id,
            method=request.method,
            url=str(request.url),
            request_id=request.headers.get(REQUEST_ID, ""),
            correlation_id=request.headers.get(CORRELATION_ID, ""),
            http_status=http_status,
            ocpi_status=ocpi_status,
            started_at=started_at,
            duration_ms=(time.monotonic() - started) * 1000,
            error=error,
            request_body=request.content,
            response_body=body,
            secrets=self._secrets(),
        )
        for callback in (*_observers, *self.observers):
            try:
                callback(exchange)
            except Exception:
                logger.exception("An observer of outbound calls failed (the call is unaffected)")

    def _secrets(self) -> tuple[str, ...]:
        if not self._token:
            return ()
        return (self._token, authorization_header(self._token, TokenEncoding.BASE64)[6:])

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> OcpiReply:
        sent = self._send(method, url, self.encoding, json, params)
        if (
            sent.response.status_code == 401
            and self._token
            and self.encoding_fallback
            and self.encoding == TokenEncoding.BASE64
        ):
            # Peers of OCPI 2.1.1/2.2 expect the token unencoded: try that once, and remember.
            retry = self._send(method, url, TokenEncoding.PLAIN, json, params)
            if retry.response.status_code != 401:
                logger.info("%s accepts only unencoded tokens; switching", redact_url(url))
                self._notify(sent, None, "refused the Base64 token; the unencoded one was taken")
                self.encoding = TokenEncoding.PLAIN
                sent = retry
            else:
                self._notify(retry, None, "refused the unencoded token too")
        try:
            reply = self._interpret(method, url, sent.response, sent.body)
        except PartnerError as exc:
            self._notify(sent, exc.ocpi_status, exc.message)
            raise
        self._notify(sent, reply.status_code, "")
        # DEBUG: every call is in the request journal; a log line per push costs the worker
        # a noticeable share of its CPU at thousands of pushes a second.
        logger.debug(
            "OCPI %s %s -> HTTP %s, %s",
            method,
            redact_url(url),
            reply.http_status,
            reply.status_code,
        )
        if self.on_reply is not None:
            self.on_reply(reply)
        return reply

    def _interpret(self, method: str, url: str, response: httpx.Response, raw: bytes) -> OcpiReply:
        status = response.status_code
        what = _what(method, url)
        if 300 <= status < 400:
            raise PartnerProtocolError(
                f"{what} answered with a redirect (HTTP {status}) to "
                f"{_short(redact_url(response.headers.get('Location', '?')))}; redirects are "
                "not followed.",
                http_status=status,
                public=f"{what} answered with a redirect (HTTP {status}); "
                "redirects are not followed.",
            )
        # The inbound parser and its limits (depth, long integers): a hostile answer is refused,
        # it cannot exhaust the stack or the CPU. Unreadable JSON counts as no JSON.
        unreadable = ""
        try:
            body = parse_json_body(raw, what="the answer")
        except (MalformedJson, RecursionError, ValueError) as exc:
            body = None
            # For the operator: our parser's words (a rule, a position), not the partner's bytes.
            why = exc.message if isinstance(exc, MalformedJson) else "the answer is unreadable JSON"
            unreadable = f"; {why.rstrip('.')}"
        envelope = body if isinstance(body, dict) and "status_code" in body else None
        message = envelope.get("status_message") if envelope else None
        detail = f": {_short(str(message)).rstrip('.')}" if message else ""
        # Only an OCPI envelope's status_message is relayed to the partner, and only its start.
        public_detail = (
            f": {_short(str(message), PUBLIC_MESSAGE_LIMIT).rstrip('.')}"
            if message and _is_ocpi_envelope(envelope)
            else ""
        )
        if status == 429 or status >= 500:
            raise PartnerUnavailable(
                f"{what} failed with HTTP {status}{detail}.",
                http_status=status,
                ocpi_status=_status_code(envelope),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                public=f"{what} failed with HTTP {status}{public_detail}.",
            )
        if status >= 400:
            raise PartnerRejected(
                f"{what} was refused with HTTP {status}{detail}.",
                http_status=status,
                ocpi_status=_status_code(envelope),
                public=f"{what} was refused with HTTP {status}{public_detail}.",
            )
        if envelope is None:
            kind = _short(response.headers.get("Content-Type", "no content type"), 60)
            what_came = "a JSON value that is not an OCPI envelope" if body is not None else kind
            raise PartnerProtocolError(
                f"{what} did not answer with an OCPI envelope (got {what_came}{unreadable}).",
                http_status=status,
                public=f"{what} did not answer with an OCPI envelope (HTTP {status}, {kind}).",
            )
        code = _status_code(envelope)
        if code is None:
            raise PartnerProtocolError(
                f"{what} answered with a status_code that is not an OCPI status (four digits).",
                http_status=status,
            )
        if 1000 <= code < 2000:
            return OcpiReply(status, code, message, envelope.get("data"), response.headers, url)
        error = f"{what} answered OCPI status {code}{detail}."
        public = f"{what} answered OCPI status {code}{public_detail}."
        if 3000 <= code < 4000 or code in (
            OcpiStatus.TIMEOUT_ON_FORWARDED_REQUEST,
            OcpiStatus.CONNECTION_PROBLEM,
        ):
            raise PartnerUnavailable(error, http_status=status, ocpi_status=code, public=public)
        raise PartnerRejected(error, http_status=status, ocpi_status=code, public=public)

    def get(self, url: str, *, params: Mapping[str, str] | None = None) -> OcpiReply:
        return self.request("GET", url, params=params)

    def post(self, url: str, json: Any) -> OcpiReply:
        return self.request("POST", url, json=json)

    def put(self, url: str, json: Any) -> OcpiReply:
        return self.request("PUT", url, json=json)

    def patch(self, url: str, json: Any) -> OcpiReply:
        return self.request("PATCH", url, json=json)

    def delete(self, url: str) -> OcpiReply:
        return self.request("DELETE", url)

    def iter_pages(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        max_pages: int = 10_000,
        max_rereads: int = 20,
        total: int | None = None,
    ) -> Iterator[OcpiReply]:
        """Follow ``Link: <…>; rel="next"`` until the last page; stop on a loop or the budget.

        A list that shrinks during the crawl (``X-Total-Count`` lower than on the page before)
        has moved the objects after the dropped ones forward: following the next link would
        skip them. That page is not yielded; the crawl reads again from its offset lowered by
        the drop (spec transport › Pagination), so every object still listed is read at least
        once (some twice: storing is idempotent). A page URL without ``offset`` is re-read by
        redoing the previous GET. ``total``: the count announced before ``url`` (a resumed
        crawl). At most ``max_rereads`` re-reads; every fetch counts against ``max_pages``.
        """
        seen: set[str] = set()
        next_url: str | None = url
        next_params = params
        previous: tuple[str, Mapping[str, str] | None] | None = None
        rereads = 0
        for _ in range(max_pages):
            if next_url is None:
                return
            # The same page however it is spelled: parameters merged, in sorted order.
            merged = httpx.URL(next_url).copy_merge_params(dict(next_params or {}))
            key = f"{merged.copy_with(query=None)}?{sorted(merged.params.multi_items())}"
            if key in seen:
                raise PartnerProtocolError(
                    f"Paging loops: {redact_url(next_url)} was already fetched."
                )
            seen.add(key)
            reply = self.get(next_url, params=next_params)
            count = _total_count(reply)
            if total is not None and count is not None and count < total:
                again = _reread_url(merged, total - count, previous)
                if again is not None:
                    rereads += 1
                    if rereads > max_rereads:
                        raise PartnerProtocolError(
                            f"Paging stopped: X-Total-Count of {redact_url(url)} dropped "
                            f"{rereads} times during the crawl."
                        )
                    logger.info(
                        "X-Total-Count of %s dropped from %s to %s: reading %s again",
                        redact_url(url),
                        total,
                        count,
                        redact_url(again),
                    )
                    # A re-read is not a loop: the pages are read again in the list's new state.
                    seen.clear()
                    total = count
                    next_url, next_params = again, None
                    continue
            if count is not None:
                total = count
            yield reply
            previous = (next_url, next_params)
            next_url, next_params = reply.next_link(), None
        raise PartnerProtocolError(f"Paging stopped after {max_pages} pages of {redact_url(url)}.")


def _what(method: str, url: str) -> str:
    """A call in an error message: its method and its URL without user info."""
    return f"{method} {redact_url(url)}"


def _read_body(method: str, url: str, response: httpx.Response) -> bytes:
    """The (decoded) body of a streamed answer; refused past OCPI_HTTP_MAX_RESPONSE_BYTES without
    reading further (a declared Content-Length over the limit: without reading at all)."""
    limit = int(settings.OCPI_HTTP_MAX_RESPONSE_BYTES)

    def too_large() -> PartnerProtocolError:
        what = _what(method, url)
        return PartnerProtocolError(
            f"{what} sent an answer larger than {limit} bytes (OCPI_HTTP_MAX_RESPONSE_BYTES); "
            "it was not read in full.",
            http_status=response.status_code,
            public=f"{what} sent an answer larger than {limit} bytes.",
        )

    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared[:20]) > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _total_count(reply: OcpiReply) -> int | None:
    value = reply.headers.get("X-Total-Count", "").strip()
    return int(value) if value.isdigit() else None


def _reread_url(
    page: httpx.URL, dropped: int, previous: tuple[str, Mapping[str, str] | None] | None
) -> str | None:
    """Where to read again when ``dropped`` objects left the list before ``page`` was read.

    The objects that were at ``offset`` … ``offset + dropped - 1`` (not read yet) may now be at
    ``offset - dropped`` …: read from there. A page without ``offset`` (the first, or a partner
    paging by cursor) falls back to the previous GET; the first page has nothing to redo.
    """
    offset = page.params.get("offset", "").strip()
    if offset.isdigit():
        if int(offset) == 0:
            return None
        return str(page.copy_set_param("offset", str(max(0, int(offset) - dropped))))
    if previous is None:
        return None
    before_url, before_params = previous
    return str(httpx.URL(before_url).copy_merge_params(dict(before_params or {})))


# --- pooled clients ------------------------------------------------------------------------------


def client_settings() -> tuple[Any, ...]:
    """What a client is built from besides its own arguments: the URL policy, the injected
    transport (tests), the environment's proxies and the timeouts. A pooled client built under
    other settings is not reused."""
    from .urlpolicy import environment_proxies

    return (
        current(),
        id(_transport.get()),
        tuple(sorted(environment_proxies().items())),
        settings.OCPI_HTTP_CONNECT_TIMEOUT,
        settings.OCPI_HTTP_READ_TIMEOUT,
    )


class ClientPool:
    """Clients kept between calls, one per key (a partner), with their keep-alive connections.

    ``checkout`` lends the key's client when it was built with the same ``fingerprint`` (the
    token, the URLs, ``client_settings()``...); otherwise the old one is closed and a new one is
    built. A client is lent to one caller at a time (it is taken out of the pool meanwhile); a
    call that fails with anything but a ``PartnerError`` closes it (its connection may be
    half-used). At most ``size`` clients are kept, the least recently used are closed. A forked
    child process starts with an empty pool (the parent's sockets are not its own).
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._clients: dict[Any, tuple[Any, OcpiClient]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _take(self, key: Any) -> tuple[Any, OcpiClient] | None:
        with self._lock:
            if self._pid != os.getpid():
                self._clients, self._pid = {}, os.getpid()
            return self._clients.pop(key, None)

    @contextmanager
    def checkout(
        self, key: Any, fingerprint: Any, build: Callable[[], OcpiClient]
    ) -> Iterator[OcpiClient]:
        entry = self._take(key)
        if entry is not None and entry[0] != fingerprint:
            entry[1].close()  # the partner's token or URL changed, or the settings did
            entry = None
        client = entry[1] if entry is not None else build()
        try:
            yield client
        except PartnerError:
            self._give_back(key, fingerprint, client)
            raise
        except BaseException:
            client.close()
            raise
        self._give_back(key, fingerprint, client)

    def _give_back(self, key: Any, fingerprint: Any, client: OcpiClient) -> None:
        client.routing = None
        evicted: list[OcpiClient] = []
        with self._lock:
            if self._pid != os.getpid() or key in self._clients:
                evicted.append(client)
            else:
                self._clients[key] = (fingerprint, client)
                while len(self._clients) > self.size:
                    oldest = next(iter(self._clients))
                    evicted.append(self._clients.pop(oldest)[1])
        for old in evicted:
            old.close()

    def discard(self, key: Any) -> None:
        entry = self._take(key)
        if entry is not None:
            entry[1].close()

    def close_all(self) -> None:
        with self._lock:
            entries, self._clients = list(self._clients.values()), {}
        for _, client in entries:
            client.close()

    def __len__(self) -> int:
        return len(self._clients)
