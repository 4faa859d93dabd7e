"""Which token kinds a view accepts, declared on the view (never inferred from the URL)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .errors import MethodNotAllowed
from .principal import PartnerPrincipal, PresentedToken


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


class RegisteredPartyOnly(BasePermission):
    """Functional modules: only a registered partner's regular token (token A gets 401)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = principal_of(request)
        if principal.is_registration_token:
            raise AuthenticationFailed(
                "The registration token (token A) may only be used on versions and credentials."
            )
        if not principal.registered:
            raise AuthenticationFailed("This partner is not registered.")
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
