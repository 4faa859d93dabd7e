"""Real-time authorization at the eMSP (we own the token): the decision, one service.

A CPO asks ``POST {tokens}/{uid}/authorize[?type=...]`` with optional LocationReferences
(spec mod_tokens, other-modules.md §4.2); ``authorize`` answers an AuthorizationInfo:

1. the token is one of ours, found by (uid, type) (the request's OCPI-to-* headers narrow it
   to one of our eMSP parties when we host several); unknown: HTTP 404 + OCPI 2004;
2. a token with ``valid = false`` is ``BLOCKED`` (the Token object has no expiry date nor a
   credit balance: EXPIRED and NO_CREDIT can only come from the operator's rule, step 3);
3. the operator's own rule, when ``OCPI_TOKEN_AUTHORIZER`` names one (a dotted path to a
   callable, see ``Authorizer``), decides a valid token: it may answer any AllowedType
   (EXPIRED, NO_CREDIT, NOT_ALLOWED for a location the contract does not cover, ...), raise
   ``NotEnoughInformation`` (OCPI 2002, e.g. it needs LocationReferences), or return None to
   fall through to step 4;
4. otherwise ``ALLOWED``: the spec forbids checking opening hours or EVSE status here.

An ``ALLOWED`` answer carries a fresh ``authorization_reference`` (the CPO puts it in the
Session and CDR) and, as its ``location``, the requested LocationReferences (the EVSEs it is
allowed at) unless the rule narrowed them. The token in the answer is the stored document.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from ocpi_platform.ocpi.errors import UnknownToken
from ocpi_platform.ocpi.principal import PartnerPrincipal

from .models import Token
from .schema import ALLOWED_TYPES, validate_authorization_info

ALLOWED, BLOCKED = "ALLOWED", "BLOCKED"


class TokenNotFound(UnknownToken):
    """Authorize of a token we do not know: HTTP 404 with OCPI 2004 (spec mod_tokens)."""

    http_status = 404
    default_message = "Unknown token."


@dataclass(frozen=True)
class Decision:
    """What a rule decides: an AllowedType, optionally a DisplayText ``info`` for the driver
    (``{"language": "en", "text": "..."}``) and the LocationReferences it is allowed at."""

    allowed: str
    info: Mapping[str, str] | None = None
    location: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.allowed not in ALLOWED_TYPES:
            raise ValueError(f"{self.allowed!r} is not an AllowedType ({', '.join(ALLOWED_TYPES)})")


# The operator's rule: called with the token row (its document in ``token.ocpi_json``), the
# validated LocationReferences of the request (None without a body) and the calling partner;
# returns a Decision (or a bare AllowedType string) to decide, None to fall through.
Authorizer = Callable[..., "Decision | str | None"]


@cache
def _load(path: str) -> Authorizer | None:
    return import_string(path) if path else None


def operator_rule() -> Authorizer | None:
    """The callable ``OCPI_TOKEN_AUTHORIZER`` names (loaded once per process), if any."""
    return _load(getattr(settings, "OCPI_TOKEN_AUTHORIZER", "") or "")


def find_ours(uid: str, token_type: str, *, party: tuple[str, str] | None = None) -> Token:
    """Our token (uid, type), of the given (country_code, party_id) when the request named one."""
    token = Token.lookup(uid, token_type, ours=True, party=party)
    if token is None:
        raise TokenNotFound(f"We have no {token_type} token with this uid.")
    return token


def decide(token: Token, location: Mapping[str, Any] | None, partner: PartnerPrincipal) -> Decision:
    """Steps 2 to 4 of the module docstring."""
    if not token.valid:
        return Decision(BLOCKED)
    rule = operator_rule()
    if rule is not None:
        decided = rule(token=token, location=location, partner=partner)
        if isinstance(decided, str):
            return Decision(decided)
        if decided is not None:
            return decided
    return Decision(ALLOWED)


def new_reference() -> str:
    """An authorization_reference: 128 random bits as 32 hex characters (CiString(36))."""
    return os.urandom(16).hex()


def authorize(
    uid: str,
    token_type: str,
    location: Mapping[str, Any] | None,
    *,
    partner: PartnerPrincipal,
    party: tuple[str, str] | None = None,
) -> str:
    """The AuthorizationInfo for a CPO's request, as JSON (the token embedded as stored)."""
    token = find_ours(uid, token_type, party=party)
    decision = decide(token, location, partner)
    fields: dict[str, Any] = {"allowed": decision.allowed}
    allowed_at = decision.location if decision.location is not None else location
    if decision.allowed == ALLOWED:
        if allowed_at:
            fields["location"] = {k: v for k, v in allowed_at.items() if v is not None}
        fields["authorization_reference"] = new_reference()
    if decision.info:
        fields["info"] = dict(decision.info)
    if rule_decided(decision):
        # What an operator's rule gave is checked like a partner's answer (2001-proof JSON).
        validate_authorization_info({**fields, "token": json.loads(token.ocpi_json)})
    head = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return '{"token":' + token.ocpi_json + "," + head[1:]


def rule_decided(decision: Decision) -> bool:
    return bool(decision.info) or decision.location is not None
