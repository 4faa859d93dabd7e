"""``Authorization: Token <base64(token)>`` (spec: transport_and_format, Authorization header).

Older peers send the token unencoded, and a raw token may itself be valid Base64, so both
readings are tried before a request is rejected. The presented value never reaches a message
or a log line.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from .principal import PartnerPrincipal, PresentedToken, TokenEncoding
from .types import TOKEN_MAX_LENGTH, is_printable_ascii

# Returns the partner and the token value that matched, or None (401).
Resolver = Callable[[Sequence[tuple[str, TokenEncoding]]], tuple[PartnerPrincipal, str] | None]


@cache
def _resolver(path: str) -> Resolver:
    return import_string(path)  # type: ignore[no-any-return]


def token_candidates(value: str) -> tuple[list[tuple[str, TokenEncoding]], bool]:
    """The tokens a header value may stand for, and whether it was valid Base64."""
    candidates: list[tuple[str, TokenEncoding]] = []
    valid_base64 = False
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
        valid_base64 = True
        if decoded and len(decoded) <= TOKEN_MAX_LENGTH and is_printable_ascii(decoded):
            candidates.append((decoded, TokenEncoding.BASE64))
    except (binascii.Error, ValueError):
        pass
    if len(value) <= TOKEN_MAX_LENGTH and is_printable_ascii(value):
        candidates.append((value, TokenEncoding.PLAIN))
    return candidates, valid_base64


class OcpiTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[PartnerPrincipal, PresentedToken]:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise AuthenticationFailed(
                "Authorization header missing: send 'Authorization: Token <base64 of the token>'."
            )
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "token":
            raise AuthenticationFailed(
                "Authorization header must use the 'Token' scheme: "
                "'Authorization: Token <base64 of the token>'."
            )
        if not value:
            raise AuthenticationFailed("Authorization header carries no token after 'Token'.")
        candidates, valid_base64 = token_candidates(value)
        resolved = _resolver(settings.OCPI_TOKEN_RESOLVER)(candidates) if candidates else None
        if resolved is None:
            hint = "" if valid_base64 else " (the value is not valid Base64 either)"
            raise AuthenticationFailed(f"Unknown or revoked credentials token{hint}.")
        principal, token = resolved
        return principal, PresentedToken(token)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
