"""The CPO's authorization of a token at its charge point (we hold partners' token copies).

``authorize_at_charge_point(uid, token_type=..., location=...)`` is what our charge point
system calls (and ``manage.py ocpi_authorize``). It applies the token's ``whitelist`` (spec
WhitelistType, other-modules.md §4.3); ``valid = false`` does not change which rule applies:

- ``ALWAYS``: the local copy decides (valid: ALLOWED, else BLOCKED); the eMSP is not asked;
- ``ALLOWED``: we may ask; with ``OCPI_TOKEN_ASK_WHEN_ALLOWED`` (default on) the eMSP is asked
  and any failure to get its answer falls back to the local copy;
- ``ALLOWED_OFFLINE``: the eMSP is asked; the local copy is used only when the eMSP cannot be
  reached (no connection, timeout, 5xx, 3xxx); an eMSP that refuses gives no authorization;
- ``NEVER``: the eMSP is asked, always; without its answer there is no authorization.

A token we hold no copy of is asked of the eMSP named by ``party`` (country_code, party_id),
if given; otherwise it is unknown. The eMSP is the partner owning the token's party; it is
called at its tokens SENDER endpoint with ``OCPI_TOKEN_AUTHORIZE_TIMEOUT`` seconds to answer.

The result says where the answer came from (``Source``), so the charge point's session records
``auth_method`` WHITELIST (local copy) or AUTH_REQUEST (eMSP) with its authorization_reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from django.conf import settings
from rest_framework import serializers

from credentials import liveness
from credentials.models import Partner, PartnerRole, PartnerState
from ocpi_platform.ocpi.client import PartnerError, PartnerRejected, PartnerUnavailable
from ocpi_platform.ocpi.headers import RoutingHeaders
from ocpi_platform.ocpi.parties import our_parties
from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.status import OcpiStatus
from ocpi_platform.ocpi.types import InterfaceRole, Role, join_url

from .models import Token, Whitelist
from .schema import validate_authorization_info


class Source(StrEnum):
    LOCAL = "local copy"
    EMSP = "eMSP"
    NONE = "none"  # no authorization could be obtained


@dataclass(frozen=True)
class Outcome:
    """``info``: the AuthorizationInfo (OCPI JSON), None when there is none; ``note``: why."""

    info: dict[str, Any] | None
    source: Source
    whitelist: str | None
    note: str = ""

    @property
    def allowed(self) -> str | None:
        return self.info["allowed"] if self.info else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "authorization_info": self.info,
            "source": self.source.value,
            "whitelist": self.whitelist,
            "note": self.note,
        }


class EmspUnreachable(Exception):
    """The eMSP could not be asked or gave no usable answer; ``reachable``: it answered."""

    def __init__(self, message: str, *, reachable: bool) -> None:
        super().__init__(message)
        self.reachable = reachable


def local_copy(uid: str, token_type: str, party: tuple[str, str] | None = None) -> Token | None:
    """Our copy of a partner's token (the newest, if several eMSPs use this uid)."""
    return Token.lookup(uid, token_type, ours=False, party=party)


def local_decision(token: Token, location: dict[str, Any] | None) -> dict[str, Any]:
    info: dict[str, Any] = {"allowed": "ALLOWED" if token.valid else "BLOCKED"}
    info["token"] = json.loads(token.ocpi_json)
    if location and token.valid:
        info["location"] = {k: v for k, v in location.items() if v is not None}
    return info


def _emsp_of(country_code: str, party_id: str) -> Partner | None:
    role = (
        PartnerRole.objects.filter(
            country_code=country_code.upper(),
            party_id=party_id.upper(),
            role=Role.EMSP,
            partner__state=PartnerState.REGISTERED,
        )
        .select_related("partner")
        .first()
    )
    return role.partner if role else None


def _our_cpo() -> tuple[str, str] | None:
    return next(((p.country_code, p.party_id) for p in our_parties() if p.role == Role.CPO), None)


def ask_emsp(
    partner: Partner,
    uid: str,
    token_type: str,
    location: dict[str, Any] | None,
    party: tuple[str, str],
) -> dict[str, Any] | None:
    """POST authorize at the eMSP: its AuthorizationInfo, None when it does not know the
    token (404/2004). Raises ``EmspUnreachable`` otherwise."""
    base = partner.endpoint_url(ModuleId.TOKENS, InterfaceRole.SENDER)
    if not base:
        raise EmspUnreachable(f"{partner} has no tokens sender endpoint.", reachable=False)
    url = join_url(base, quote(uid, safe=""), "authorize") + f"?type={quote(token_type, safe='')}"
    ours = _our_cpo()
    routing = RoutingHeaders(ours[0] if ours else None, ours[1] if ours else None, *party)
    try:
        with liveness.client_for(
            partner, read_timeout=settings.OCPI_TOKEN_AUTHORIZE_TIMEOUT, routing=routing
        ) as client:
            reply = client.post(url, location)
    except PartnerUnavailable as exc:
        raise EmspUnreachable(exc.message, reachable=False) from None
    except PartnerRejected as exc:
        if exc.ocpi_status == OcpiStatus.UNKNOWN_TOKEN or exc.http_status == 404:
            return None
        raise EmspUnreachable(exc.message, reachable=True) from None
    except PartnerError as exc:
        raise EmspUnreachable(exc.message, reachable=True) from None
    try:
        validate_authorization_info(reply.data)
    except serializers.ValidationError:
        raise EmspUnreachable(
            f"{partner} answered with an AuthorizationInfo that is not valid.", reachable=True
        ) from None
    result: dict[str, Any] = reply.data
    return result


def authorize_at_charge_point(
    uid: str,
    *,
    token_type: str = "RFID",  # noqa: S107 (a TokenType, not a secret)
    location: dict[str, Any] | None = None,
    party: tuple[str, str] | None = None,
) -> Outcome:
    """The decision for a token presented at one of our charge points (module docstring)."""
    token = local_copy(uid, token_type, party)
    whitelist = token.whitelist if token else None
    if token is not None and whitelist == Whitelist.ALWAYS:
        return Outcome(local_decision(token, location), Source.LOCAL, whitelist)
    ask = settings.OCPI_TOKEN_ASK_WHEN_ALLOWED
    if token is not None and whitelist == Whitelist.ALLOWED and not ask:
        return Outcome(local_decision(token, location), Source.LOCAL, whitelist)
    owner = (token.country_code, token.party_id) if token else party
    if owner is None:
        return Outcome(None, Source.NONE, None, "Unknown token: no local copy, no eMSP named.")
    emsp = token.partner if token else _emsp_of(*owner)
    try:
        if emsp is None:
            raise EmspUnreachable(
                f"No registered eMSP partner has the party {owner[0]}/{owner[1]}.",
                reachable=False,
            )
        info = ask_emsp(emsp, uid, token_type, location, owner)
    except EmspUnreachable as exc:
        fallback = whitelist == Whitelist.ALLOWED or (
            whitelist == Whitelist.ALLOWED_OFFLINE and not exc.reachable
        )
        if token is not None and fallback:
            note = f"The eMSP gave no answer ({exc}); decided from the local copy."
            return Outcome(local_decision(token, location), Source.LOCAL, whitelist, note)
        return Outcome(None, Source.NONE, whitelist, f"No authorization: {exc}")
    if info is None:
        return Outcome(None, Source.EMSP, whitelist, "The eMSP does not know this token.")
    return Outcome(info, Source.EMSP, whitelist)
