"""Who is calling: the partner behind a credentials token, as the core sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .parties import Party


class TokenKind(StrEnum):
    REGISTRATION = "A"  # CREDENTIALS_TOKEN_A: versions and credentials only
    REGULAR = "C"  # the token we issued at registration or rotation (TOKEN_B or TOKEN_C)


class TokenEncoding(StrEnum):
    BASE64 = "base64"  # OCPI 2.2.1: Authorization: Token base64(token)
    PLAIN = "plain"  # older peers send the token unencoded


@dataclass(frozen=True)
class PartnerPrincipal:
    partner_id: int
    partner_name: str
    token_id: int
    token_kind: TokenKind
    encoding: TokenEncoding
    registered: bool
    suspended: bool = False
    parties: tuple[Party, ...] = field(default=())

    # DRF treats request.user as a user object.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_registration_token(self) -> bool:
        return self.token_kind == TokenKind.REGISTRATION

    def owns(self, country_code: str, party_id: str) -> bool:
        cc, pid = country_code.upper(), party_id.upper()
        return any(p.country_code == cc and p.party_id == pid for p in self.parties)


class PresentedToken:
    """The token value of the current request (request.auth); never shown in a repr."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "PresentedToken(***)"

    __str__ = __repr__
