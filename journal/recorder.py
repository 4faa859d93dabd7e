"""Writing the journal: one INSERT per call, after the answer; bodies only while captured.

Redaction, whatever is kept:
* a path's query values whose names look secret (token, key, secret, password, signature…),
  and the user info of an outbound URL, become ``***``;
* in a body (only while its partner's ``BodyCapture`` runs): every JSON member named ``token``
  or ``authorization`` (the credentials object's token, both ways), every ``Token …`` header
  form, and the call's own token values (plain and Base64), wherever they appear.
Nothing here ever raises into the call it records: a failed write is logged and dropped.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse

from credentials.models import Partner
from ocpi_platform.ocpi.client import Exchange
from ocpi_platform.ocpi.principal import PartnerPrincipal, PresentedToken
from ocpi_platform.ocpi.types import now_utc

from .models import BodyCapture, Direction, Entry

logger = logging.getLogger(__name__)

MASK = "***"
_SECRET_NAME = re.compile(r"token|secret|passw|key|auth|signature|sig$|credential", re.I)
_SECRET_MEMBERS = frozenset({"token", "authorization"})
_TOKEN_HEADER = re.compile(r"(Token)\s+[^\s\"',;]+", re.I)
_STATUS_CODE = re.compile(rb'"status_code"\s*:\s*(\d{4})')


# --- redaction ------------------------------------------------------------------------------------


def clean_path(url: str) -> str:
    """The path (or URL) with no user info and no secret-looking query values."""
    if "@" not in url and not _SECRET_NAME.search(url.partition("?")[2]):
        return url[:1000]  # the common case, without parsing
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_NAME.search(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))[:1000]


def _mask_members(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if str(k).lower() in _SECRET_MEMBERS else _mask_members(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_members(v) for v in value]
    return value


def redact_body(raw: bytes, secrets: tuple[str, ...] = ()) -> str:
    """A body as it may be stored: tokens masked, cut at OCPI_JOURNAL_BODY_MAX_CHARS."""
    if not raw:
        return ""
    text = raw.decode("utf-8", errors="replace")
    with suppress(ValueError, RecursionError):  # not JSON: the text, with the masks below
        text = json.dumps(_mask_members(json.loads(text)), ensure_ascii=False)
    text = _TOKEN_HEADER.sub(rf"\1 {MASK}", text)
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    limit = int(settings.OCPI_JOURNAL_BODY_MAX_CHARS)
    return text if len(text) <= limit else text[:limit] + "…"


# --- which partners have their bodies journaled (cached per process) ----------------------------

_captures: dict[int, datetime] = {}
_captures_read = -1e9
_captures_lock = threading.Lock()
CAPTURES_REFRESH_SECONDS = 5.0


def forget_captures() -> None:
    """Read the captures again on the next call (after a change, and in tests)."""
    global _captures_read
    with _captures_lock:
        _captures_read = -1e9


def _active_captures() -> dict[int, datetime]:
    global _captures, _captures_read
    moment = time.monotonic()
    if moment - _captures_read > CAPTURES_REFRESH_SECONDS:
        with _captures_lock:
            try:
                rows = BodyCapture.objects.filter(until__gt=now_utc()).values_list(
                    "partner_id", "until"
                )
                _captures = dict(rows)
            except DatabaseError:
                logger.exception("Could not read the journal's body captures")
                _captures = {}
            _captures_read = moment
    return _captures


def bodies_wanted(partner_id: int | None) -> bool:
    if partner_id is None:
        return False
    until = _active_captures().get(partner_id)
    return until is not None and until > now_utc()


def any_bodies_wanted() -> bool:
    return bool(_active_captures())


def capture_bodies(partner_id: int, minutes: float, by: str = "") -> BodyCapture:
    row, _ = BodyCapture.objects.update_or_create(
        partner_id=partner_id,
        defaults={"until": now_utc() + timedelta(minutes=minutes), "set_by": by[:150]},
    )
    forget_captures()
    return row


def stop_capture(partner_id: int) -> None:
    BodyCapture.objects.filter(partner_id=partner_id).delete()
    forget_captures()


# --- writing --------------------------------------------------------------------------------------
#
# With OCPI_JOURNAL_FLUSH_SECONDS > 0 (production) entries are buffered per process and written
# by one background thread in one multi-row INSERT per interval: a request pays for building the
# row, not for a round trip and a commit. What is buffered when a process dies is lost (at most
# one interval); a normal exit writes it. With 0 (tests), each entry is written at once.

_buffer: list[Row] = []
_buffer_lock = threading.Lock()
_flusher_pid: int | None = None
BUFFER_MAX = 10_000  # entries kept while the database cannot be written; older ones are dropped


# The columns of a buffered entry, in this order (a row is a plain tuple: cheaper to build in
# the request than a model instance; written with COPY on PostgreSQL).
COLUMNS = (
    "created_at",
    "partner_id",
    "direction",
    "method",
    "path",
    "http_status",
    "ocpi_status",
    "duration_ms",
    "request_id",
    "correlation_id",
    "error",
    "request_body",
    "response_body",
)
Row = tuple[Any, ...]


def _copy(rows: list[Row]) -> None:
    """One COPY of the rows (PostgreSQL): no SQL to compile, no model instances."""
    statement = f"COPY {Entry._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,  # psycopg's own errors become Django's
        cursor.cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _store(rows: list[Row]) -> None:
    if connection.vendor == "postgresql":
        _copy(rows)
    else:
        Entry.objects.bulk_create([Entry(**dict(zip(COLUMNS, row, strict=True))) for row in rows])


def _of_live_partners(rows: list[Row]) -> list[Row]:
    """The rows whose partner still exists (one deleted meanwhile fails the whole write)."""
    index = COLUMNS.index("partner_id")
    wanted = {row[index] for row in rows if row[index] is not None}
    live = set(Partner.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    return [row for row in rows if row[index] is None or row[index] in live]


def _write_rows(rows: list[Row]) -> None:
    if connection.in_atomic_block:
        with transaction.atomic():  # a savepoint: a failed write spoils nothing of the caller
            _store(rows)
    else:
        _store(rows)


def _insert(rows: list[Row]) -> None:
    try:
        try:
            _write_rows(rows)
        except IntegrityError:
            kept = _of_live_partners(rows)
            if len(kept) == len(rows):
                raise
            logger.info("Dropped %s journal entries of deleted partners", len(rows) - len(kept))
            _write_rows(kept)
    except DatabaseError:
        logger.exception("Could not write %s journal entries", len(rows))
        if not connection.in_atomic_block:
            connection.close()  # a broken connection is opened again on the next write


def flush() -> int:
    """Write what is buffered (the flusher thread, at exit, and tests); the count written."""
    with _buffer_lock:
        entries = _buffer[:]
        _buffer.clear()
    if entries:
        _insert(entries)
    return len(entries)


def _flush_forever(interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            flush()
        except Exception:  # never let the thread die
            logger.exception("The journal flusher failed")


def _start_flusher(interval: float) -> None:
    """One flusher thread per process (started again in a forked child)."""
    global _flusher_pid
    pid = os.getpid()
    if _flusher_pid == pid:
        return
    _flusher_pid = pid
    threading.Thread(
        target=_flush_forever, args=(interval,), name="journal-flusher", daemon=True
    ).start()


atexit.register(flush)


def enabled() -> bool:
    return bool(settings.OCPI_JOURNAL)


def _write(entry: Row) -> None:
    interval = float(settings.OCPI_JOURNAL_FLUSH_SECONDS)
    if interval <= 0:
        _insert([entry])
        return
    with _buffer_lock:
        _start_flusher(interval)
        if len(_buffer) >= BUFFER_MAX:
            del _buffer[: BUFFER_MAX // 10]
            logger.warning("The journal buffer is full: the oldest entries were dropped")
        _buffer.append(entry)


def record_outbound(exchange: Exchange) -> None:
    """Client observer: a call we made."""
    if not enabled():
        return
    with_bodies = bodies_wanted(exchange.partner_id)
    _write(
        (
            exchange.started_at,
            exchange.partner_id,
            Direction.OUT.value,
            exchange.method[:10],
            clean_path(exchange.url),
            exchange.http_status,
            exchange.ocpi_status,
            round(exchange.duration_ms),
            exchange.request_id[:255],
            exchange.correlation_id[:255],
            exchange.error[:2000],
            redact_body(exchange.request_body, exchange.secrets) if with_bodies else "",
            redact_body(exchange.response_body, exchange.secrets) if with_bodies else "",
        )
    )


def _ocpi_status(response: HttpResponse) -> int | None:
    data = getattr(response, "data", None)  # a DRF Response: the envelope, not yet rendered
    if isinstance(data, dict):
        code = data.get("status_code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None
    if response.streaming:
        return None
    content = response.content
    # Not a DRF Response: the middleware's errors (small), or a list page rendered in advance
    # (``raw_data_response``: the envelope's members follow the data, at the end).
    match = _STATUS_CODE.search(content[-1024:]) or _STATUS_CODE.search(content[:1024])
    return int(match.group(1)) if match else None


def _principal(request: HttpRequest) -> PartnerPrincipal | None:
    # DRF sets request.user on the Django request when it authenticates; ``type`` (not
    # isinstance) so that the session's lazy user is never evaluated.
    user = request.__dict__.get("user")
    return user if type(user) is PartnerPrincipal else None


def _inbound_secrets(request: HttpRequest) -> tuple[str, ...]:
    found = []
    auth = request.__dict__.get("auth")
    if isinstance(auth, PresentedToken):
        found.append(auth.value)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    value = header.strip().partition(" ")[2].strip()
    if value:
        found.append(value)
    return tuple(found)


def record_inbound(
    request: HttpRequest, response: HttpResponse, started: float, body: bytes | None
) -> None:
    """Middleware: a call the partner made (``body``: read before the view, or None)."""
    principal = _principal(request)
    partner_id = principal.partner_id if principal else None
    duration = (time.monotonic() - started) * 1000
    with_bodies = body is not None and bodies_wanted(partner_id)
    secrets = _inbound_secrets(request) if with_bodies else ()
    _write(
        (
            now_utc() - timedelta(milliseconds=duration),
            partner_id,
            Direction.IN.value,
            (request.method or "")[:10],
            clean_path(request.get_full_path()),
            response.status_code,
            _ocpi_status(response),
            round(duration),
            str(getattr(request, "ocpi_request_id", ""))[:255],
            str(getattr(request, "ocpi_correlation_id", ""))[:255],
            "",
            redact_body(body or b"", secrets) if with_bodies else "",
            redact_body(response.content, secrets)
            if with_bodies and not response.streaming
            else "",
        )
    )
