"""Credentials tokens: generation, keyed hashing of inbound tokens, encryption of outbound ones.

No function here logs or returns a token value inside a message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from ocpi_platform.ocpi.parties import Party
from ocpi_platform.ocpi.principal import PartnerPrincipal, TokenEncoding, TokenKind
from ocpi_platform.ocpi.types import Role, now_utc

from .models import ConnectionStatus, InboundToken, Partner, PartnerState

PREFIX_LENGTH = 8
HINT_LENGTH = 4


def generate_token() -> str:
    """43 URL-safe characters from the OS CSPRNG: printable ASCII, well under 64.

    Never starting with '-': operators paste tokens into command lines (``--token-a T``), where
    a leading dash reads as an option.
    """
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


@cache
def _keyed(key: str) -> hmac.HMAC:
    return hmac.new(key.encode("utf-8"), digestmod=hashlib.sha256)


def digest(token: str) -> str:
    # A copy of the keyed HMAC: OpenSSL 3 looks the digest up again on every hmac.new, at four
    # times the cost of the hash (this runs on every request).
    mac = _keyed(settings.OCPI_TOKEN_HMAC_KEY).copy()
    mac.update(token.encode("utf-8"))
    return mac.hexdigest()


def hint(token: str) -> str:
    """What an operator may see of a token: a short prefix."""
    return token[:HINT_LENGTH]


@cache
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def encrypt(token: str) -> str:
    return _fernet(settings.OCPI_TOKEN_ENCRYPTION_KEYS).encrypt(token.encode("utf-8")).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet(settings.OCPI_TOKEN_ENCRYPTION_KEYS).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise RuntimeError(
            "Stored partner token cannot be decrypted with the configured keys."
        ) from None


def set_outbound_token(partner: Partner, token: str | None) -> None:
    """Store (or wipe) the token the partner issued to us; the caller saves the partner."""
    partner.outbound_token_encrypted = encrypt(token) if token else ""
    partner.outbound_token_hint = hint(token) if token else ""


def outbound_token(partner: Partner) -> str | None:
    return decrypt(partner.outbound_token_encrypted) if partner.outbound_token_encrypted else None


def issue_inbound_token(partner: Partner, kind: TokenKind) -> tuple[InboundToken, str]:
    """Create a token the partner will present to us. The value is returned once, never stored."""
    value = generate_token()
    row = InboundToken.objects.create(
        partner=partner, kind=kind, prefix=value[:PREFIX_LENGTH], digest=digest(value)
    )
    return row, value


def find_active(token: str) -> InboundToken | None:
    """Look up by prefix, compare the keyed digest in constant time."""
    wanted = digest(token)
    rows = InboundToken.objects.active().filter(prefix=token[:PREFIX_LENGTH])
    for row in rows.select_related("partner"):
        if hmac.compare_digest(row.digest, wanted):
            return row
    return None


# Resolved principals of registered partners' regular tokens, by (digest, encoding): partners
# call many times a second, and resolving costs two queries. An entry lives
# OCPI_AUTH_CACHE_SECONDS (0: no cache). Revoking in this process empties the cache at once;
# other processes notice within that time.
_principals: dict[tuple[str, TokenEncoding], tuple[float, PartnerPrincipal]] = {}
_principals_lock = threading.Lock()
_CACHE_MAX = 10_000


def forget_resolved() -> None:
    """Empty the cache of resolved tokens (after a revocation, a change of parties)."""
    with _principals_lock:
        _principals.clear()


def _cached(key: tuple[str, TokenEncoding]) -> PartnerPrincipal | None:
    entry = _principals.get(key)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _remember(key: tuple[str, TokenEncoding], principal: PartnerPrincipal, row: Any) -> None:
    seconds = float(getattr(settings, "OCPI_AUTH_CACHE_SECONDS", 0))
    cacheable = principal.registered and principal.token_kind == TokenKind.REGULAR
    if seconds <= 0 or not cacheable or row.expires_at is not None:
        return
    with _principals_lock:
        if len(_principals) >= _CACHE_MAX:
            _principals.clear()
        _principals[key] = (time.monotonic() + seconds, principal)


def resolve_principal(
    candidates: Sequence[tuple[str, TokenEncoding]],
) -> tuple[PartnerPrincipal, str] | None:
    """OCPI_TOKEN_RESOLVER: map the presented token to its partner (None: 401)."""
    for value, encoding in candidates:
        key = (digest(value), encoding)
        cached = _cached(key)
        if cached is not None:
            _seen(cached)
            return cached, value
        row = find_active(value)
        if row is None:
            continue
        partner = row.partner
        if partner.state == PartnerState.UNREGISTERED:
            return None
        if partner.token_encoding != encoding:
            # Remember which form this partner uses: we answer its calls in the same form.
            Partner.objects.filter(pk=partner.pk).update(token_encoding=encoding)
        parties = tuple(
            Party(r.country_code, r.party_id, Role(r.role)) for r in partner.roles.all()
        )
        principal = PartnerPrincipal(
            partner_id=partner.pk,
            partner_name=partner.name,
            token_id=row.pk,
            token_kind=TokenKind(row.kind),
            encoding=encoding,
            registered=partner.state == PartnerState.REGISTERED,
            suspended=partner.status == ConnectionStatus.SUSPENDED,
            parties=parties,
        )
        _remember(key, principal, row)
        _seen(principal)
        return principal, value
    return None


def _seen(principal: PartnerPrincipal) -> None:
    """Every authenticated request of a registered partner marks it seen (throttled).

    Authentication stays a lookup and this one write: a status change that the sign of life
    causes (OFFLINE -> CONNECTED, and the full resends that follow) runs as a task.
    """
    if principal.registered and principal.token_kind == TokenKind.REGULAR:
        from .liveness import mark_seen  # liveness calls partners with our tokens: imports us

        mark_seen(principal.partner_id, defer_status=True)


def revoke(tokens: QuerySet[InboundToken]) -> int:
    """Revoke every token of the queryset now."""
    forget_resolved()
    if float(getattr(settings, "OCPI_AUTH_CACHE_SECONDS", 0)) > 0:
        transaction.on_commit(forget_resolved)  # what was resolved before the commit, too
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=now_utc())
