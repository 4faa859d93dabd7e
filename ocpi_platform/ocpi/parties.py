"""Our own parties, from OCPI_PARTIES ("NL:ABC:CPO,NL:ABC:EMSP")."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.conf import settings

from .types import Role, validate_country_code, validate_party_id


@dataclass(frozen=True)
class Party:
    country_code: str
    party_id: str
    role: Role

    def __str__(self) -> str:
        return f"{self.country_code}/{self.party_id} {self.role}"


def parse_parties(text: str) -> tuple[Party, ...]:
    parties: list[Party] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        fields = item.split(":")
        if len(fields) != 3:
            raise ValueError(f"{item!r} is not COUNTRY:PARTY:ROLE")
        country_code, party_id, role = (f.strip() for f in fields)
        try:
            party = Party(
                validate_country_code(country_code),
                validate_party_id(party_id),
                Role(role.upper()),
            )
        except ValueError as exc:
            raise ValueError(f"{item!r}: {exc}") from None
        if party in parties:
            raise ValueError(f"{item!r} is listed twice")
        parties.append(party)
    if not parties:
        raise ValueError("at least one party is needed")
    return tuple(parties)


@cache
def _parse_cached(text: str) -> tuple[Party, ...]:
    return parse_parties(text)


def our_parties() -> tuple[Party, ...]:
    return _parse_cached(settings.OCPI_PARTIES)


def has_role(role: Role) -> bool:
    return any(p.role == role for p in our_parties())
