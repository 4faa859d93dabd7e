"""Pulling a partner eMSP's tokens (kit.sync, declared by tokens): every page stored as copies,
keyed with their type; an invalid token or one of a party that is not the partner's rejected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
from django.core.management import call_command

from kit import sync
from ocpi_platform.ocpi.client import use_transport
from tests.conftest import RegisteredPartner
from tokens.models import Token

from .conftest import PARTNER_TOKENS, example, partner_token

pytestmark = pytest.mark.django_db

NOW = "2026-01-01T00:00:00Z"


def listed() -> list[dict]:
    tokens = []
    for n in range(1, 8):
        token = example()
        token.update(uid=f"U{n}", type="APP_USER" if n == 7 else "RFID")
        tokens.append(token)
    tokens[2]["whitelist"] = "SOMETIMES"  # invalid
    tokens[3]["party_id"] = "OTH"  # not the partner's party
    return tokens


@pytest.fixture
def sender() -> Iterator[list[httpx.Request]]:
    tokens, seen = listed(), []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        query = parse_qs(request.url.query.decode())
        offset = int(query.get("offset", ["0"])[0])
        page = tokens[offset : offset + 3]
        headers = {"X-Total-Count": str(len(tokens)), "X-Limit": "3"}
        if offset + 3 < len(tokens):
            headers["Link"] = f'<{PARTNER_TOKENS}?offset={offset + 3}&limit=3>; rel="next"'
        body = {"data": page, "status_code": 1000, "timestamp": NOW}
        return httpx.Response(200, content=json.dumps(body), headers=headers)

    with use_transport(httpx.MockTransport(handler)):
        yield seen


def test_a_full_pull_stores_every_valid_token(
    emsp: RegisteredPartner, sender: list[httpx.Request]
) -> None:
    row = sync.pull(sync.puller_of("tokens"), emsp.partner.pk, full=True)
    assert (row.state, row.pages, row.received, row.stored, row.rejected) == (
        "DONE",
        3,
        7,
        5,
        2,
    )
    assert "whitelist" in row.message
    stored = Token.objects.filter(partner=emsp.partner).order_by("object_id")
    assert [(t.object_id, t.object_type) for t in stored] == [
        ("U1", "RFID"),
        ("U2", "RFID"),
        ("U5", "RFID"),
        ("U6", "RFID"),
        ("U7", "APP_USER"),
    ]
    assert json.loads(stored[0].ocpi_json) == listed()[0]
    assert sender[0].headers["OCPI-to-party-id"] == "TNM"


def test_a_copy_the_list_leaves_out_is_kept(
    emsp: RegisteredPartner, sender: list[httpx.Request]
) -> None:
    partner_token(emsp, "OLD")  # tokens are never deleted
    call_command("ocpi_pull", "tokens", emsp.partner.name, "--full")
    assert Token.objects.filter(partner=emsp.partner, object_id="OLD").exists()
    assert [r.method for r in sender] == ["GET", "GET", "GET"]
