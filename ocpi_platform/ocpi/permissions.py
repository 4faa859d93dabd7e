"""Which token kinds a view accepts, declared on the view (never inferred from the URL)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from . import registry
from .errors import BadRoutingHeaders, MethodNotAllowed
from .principal import PartnerPrincipal, PresentedToken
from .types import Role, is_printable_ascii


def principal_of(request: Request) -> PartnerPrincipal:
    """The authenticated partner of a request (views call this, never request.user)."""
    user = request.user
    if not isinstance(user, PartnerPrincipal):
        raise AuthenticationFailed("Missing or unknown credentials token.")
    return user


def presented_token(request: Request) -> str:
    """The token value the caller authenticated with (credentials GET echoes it)."""
    auth = request.auth
    if not isinstance(auth, PresentedToken):
        raise AuthenticationFailed("Missing or unknown credentials token.")
    return auth.value


def _shown_header(value: str) -> str:
    return repr(value) if len(value) <= 8 and is_printable_ascii(value) else "an invalid value"


def check_from_party(request: Request, principal: PartnerPrincipal) -> None:
    """OCPI-from-country-code / OCPI-from-party-id, when sent, name one of the caller's parties
    (the roles of its credentials); 2001 with HTTP 400 otherwise: the request does not get to
    speak for a party that is not the caller's.

    A partner registered with the role HUB relays requests of the parties behind it (transport
    › Message Routing: the FROM of a forwarded request is the original party), so any party
    may be named by a hub. Configuration modules ignore routing headers (they are not used
    there), and so do the versions and credentials endpoints, where token A has no parties yet.
    """
    meta = request.META  # the WSGI names: no header mapping built for two headers
    country_code = (meta.get("HTTP_OCPI_FROM_COUNTRY_CODE") or "").strip()
    party_id = (meta.get("HTTP_OCPI_FROM_PARTY_ID") or "").strip()
    if not country_code and not party_id:
        return
    if not (country_code and party_id):
        raise BadRoutingHeaders(
            "OCPI-from-country-code and OCPI-from-party-id go together: send both or neither."
        )
    if any(p.role == Role.HUB for p in principal.parties):
        return
    if not principal.owns(country_code, party_id):
        yours = ", ".join(sorted({f"{p.country_code}/{p.party_id}" for p in principal.parties}))
        raise BadRoutingHeaders(
            f"OCPI-from-country-code {_shown_header(country_code)} with OCPI-from-party-id "
            f"{_shown_header(party_id)} is not one of your parties (the roles of your "
            f"credentials: {yours or 'none'})."
        )


class RegisteredPartyOnly(BasePermission):
    """Functional modules: only a registered partner's regular token (token A gets 401), and
    OCPI-from-* naming one of its parties (``check_from_party``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = principal_of(request)
        if principal.is_registration_token:
            raise AuthenticationFailed(
                "The registration token (token A) may only be used on versions and credentials."
            )
        if not principal.registered:
            raise AuthenticationFailed("This partner is not registered.")
        endpoint = registry.endpoint_of(request)
        if endpoint is None or endpoint.identifier not in registry.CONFIGURATION_MODULES:
            check_from_party(request, principal)
        return True


class VersionsAccess(BasePermission):
    """Versions list and version details: any valid token, token A included."""

    def has_permission(self, request: Request, view: Any) -> bool:
        principal_of(request)
        return True


class CredentialsAccess(BasePermission):
    """Spec credentials: POST only before registration, PUT/DELETE only after (else 405)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = principal_of(request)
        method = request.method
        if method == "POST" and not principal.is_registration_token:
            if principal.registered:
                raise MethodNotAllowed("Already registered: use PUT to update the credentials.")
            raise MethodNotAllowed("Registration (POST) needs the registration token (token A).")
        if method in ("PUT", "DELETE") and (
            principal.is_registration_token or not principal.registered
        ):
            raise MethodNotAllowed(f"Not registered: {method} is allowed only after registration.")
        return True
