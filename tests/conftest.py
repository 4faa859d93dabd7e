"""Shared fixtures: partners in each registration state, an OCPI API caller, the fake partner."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from credentials import liveness, tokens
from credentials.models import (
    ConnectionStatus,
    Initiative,
    Partner,
    PartnerEndpoint,
    PartnerRole,
    PartnerState,
)
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.principal import TokenKind
from tests.fakes.partner import FakePartner

FIXTURES = Path(__file__).parent / "fixtures" / "ocpi"


def load_example(name: str) -> Any:
    """A verbatim OCPI specification example (tests/fixtures/ocpi)."""
    return json.loads((FIXTURES / name).read_text())


def b64(token: str) -> str:
    return base64.b64encode(token.encode()).decode()


@dataclass
class Reply:
    status: int
    body: dict
    headers: Any

    @property
    def code(self) -> int:
        return self.body.get("status_code", 0)

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def message(self) -> str:
        return self.body.get("status_message", "")


@pytest.fixture(autouse=True)
def _fresh_seen() -> Iterator[None]:
    """Each test starts with no "seen" write remembered by the throttle."""
    liveness.forget_seen()
    yield
    liveness.forget_seen()


class OcpiApi:
    """Calls our OCPI endpoints like a partner would."""

    def __init__(self) -> None:
        self.client = Client()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        plain: bool = False,
        body: Any = None,
        raw: str | bytes | None = None,
        authorization: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if authorization is not None:
            all_headers["Authorization"] = authorization
        elif token is not None:
            all_headers["Authorization"] = f"Token {token if plain else b64(token)}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = self.client.generic(
            method, path, data=data, content_type="application/json", headers=all_headers
        )
        return Reply(response.status_code, json.loads(response.content), response.headers)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Reply:
        return self.call("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Reply:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api() -> OcpiApi:
    return OcpiApi()


@pytest.fixture
def fake_partner() -> Iterator[FakePartner]:
    """A fake partner platform; every outbound call of the test goes to it."""
    fake = FakePartner()
    with use_transport(fake.transport()):
        yield fake


@dataclass
class InvitedPartner:
    partner: Partner
    token_a: str


@pytest.fixture
def invited(db: None) -> InvitedPartner:
    from credentials import handshake

    partner, token_a = handshake.invite_partner(name="invited-partner")
    return InvitedPartner(partner, token_a)


@dataclass
class RegisteredPartner:
    partner: Partner
    inbound_token: str  # what the partner presents to us
    outbound_token: str  # what we present to the partner


def make_registered(
    name: str = "registered-partner",
    *,
    country_code: str = "DE",
    party_id: str = "XYZ",
    role: str = "EMSP",
    versions_url: str = "https://partner.test/ocpi/versions",
    outbound_token: str = "partner-token-c",
    endpoints: tuple[tuple[str, str, str], ...] = (),
) -> RegisteredPartner:
    """A registered partner; ``endpoints``: its module endpoints, (identifier, role, url)."""
    partner = Partner.objects.create(
        name=name,
        state=PartnerState.REGISTERED,
        initiated_by=Initiative.PARTNER,
        versions_url=versions_url,
        version="2.2.1",
        status=ConnectionStatus.CONNECTED,
    )
    tokens.set_outbound_token(partner, outbound_token)
    partner.save()
    PartnerRole.objects.create(
        partner=partner,
        role=role,
        country_code=country_code,
        party_id=party_id,
        business_details={"name": name},
    )
    PartnerEndpoint.objects.create(
        partner=partner,
        identifier="credentials",
        role="SENDER",
        url=versions_url.replace("/versions", "/2.2.1/credentials"),
    )
    for identifier, role_of_interface, url in endpoints:
        PartnerEndpoint.objects.create(
            partner=partner, identifier=identifier, role=role_of_interface, url=url
        )
    _, inbound = tokens.issue_inbound_token(partner, TokenKind.REGULAR)
    return RegisteredPartner(partner, inbound, outbound_token)


@pytest.fixture
def registered(db: None) -> RegisteredPartner:
    return make_registered()


def partner_offer(
    token: str = "partner-token-b",
    *,
    url: str = "https://partner.test/ocpi/versions",
    roles: list[dict] | None = None,
) -> dict:
    """A partner's credentials object (as in its POST/PUT body)."""
    return {
        "token": token,
        "url": url,
        "roles": roles if roles is not None else [DEFAULT_ROLE],
    }


DEFAULT_ROLE = {
    "role": "EMSP",
    "party_id": "XYZ",
    "country_code": "DE",
    "business_details": {"name": "Fake eMSP"},
}
