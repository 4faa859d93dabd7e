"""tokens.realtime: the CPO's authorization of a partner's token, per whitelist rule, with the
eMSP reachable (answers), refusing, or unreachable (a fake transport)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.test import override_settings

from ocpi_platform.ocpi.client import use_transport
from tests.conftest import RegisteredPartner
from tokens.realtime import Source, authorize_at_charge_point, local_copy

from .conftest import PARTNER_TOKENS, example, partner_token

pytestmark = pytest.mark.django_db

LOCATION = {"location_id": "LOC1", "evse_uids": ["EVSE1"]}


class FakeEmsp:
    """The partner eMSP's authorize endpoint: answers ``allowed`` or what is scripted."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Callable[[httpx.Request], httpx.Response] = self.allowed

    def allowed(self, request: httpx.Request) -> httpx.Response:
        token = example()
        token["uid"] = request.url.path.split("/")[-2]
        data = {"allowed": "ALLOWED", "token": token, "authorization_reference": "REF1"}
        return httpx.Response(200, json={"data": data, "status_code": 1000, "timestamp": NOW})

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


NOW = "2026-01-01T00:00:00Z"


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("Connection refused")


def refusing(request: httpx.Request) -> httpx.Response:
    return httpx.Response(400, json={"status_code": 2001, "status_message": "no", "timestamp": NOW})


def unknown(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"status_code": 2004, "timestamp": NOW})


def garbled(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"data": {"allowed": "PERHAPS"}, "status_code": 1000, "timestamp": NOW}
    )


@pytest.fixture
def fake() -> Iterator[FakeEmsp]:
    emsp = FakeEmsp()
    with use_transport(httpx.MockTransport(emsp.handler)):
        yield emsp


def test_always_decides_from_the_local_copy_without_a_call(
    emsp: RegisteredPartner, fake: FakeEmsp
) -> None:
    partner_token(emsp, whitelist="ALWAYS")
    partner_token(emsp, "BLOCKED1", whitelist="ALWAYS", valid=False)
    outcome = authorize_at_charge_point("TOKEN1", location=LOCATION)
    assert (outcome.allowed, outcome.source) == ("ALLOWED", Source.LOCAL)
    assert outcome.info is not None
    assert outcome.info["token"]["uid"] == "TOKEN1"
    assert outcome.info["location"] == LOCATION
    assert authorize_at_charge_point("blocked1").allowed == "BLOCKED"
    assert fake.requests == []


@pytest.mark.parametrize("whitelist", ["ALLOWED", "ALLOWED_OFFLINE", "NEVER"])
def test_a_reachable_emsp_decides(emsp: RegisteredPartner, fake: FakeEmsp, whitelist: str) -> None:
    partner_token(emsp, whitelist=whitelist, valid=False)  # valid=false does not change the rule
    outcome = authorize_at_charge_point("TOKEN1", location=LOCATION)
    assert (outcome.allowed, outcome.source) == ("ALLOWED", Source.EMSP)
    assert outcome.info is not None
    assert outcome.info["authorization_reference"] == "REF1"
    (request,) = fake.requests
    assert request.method == "POST"
    assert str(request.url) == f"{PARTNER_TOKENS}/TOKEN1/authorize?type=RFID"
    assert json.loads(request.content) == LOCATION
    assert request.headers["OCPI-to-party-id"] == "TNM"
    assert request.headers["OCPI-from-party-id"] == "ABC"
    assert request.headers["Authorization"].startswith("Token ")


@pytest.mark.parametrize(
    ("whitelist", "answer", "allowed", "source"),
    [
        ("ALLOWED", unreachable, "ALLOWED", Source.LOCAL),
        ("ALLOWED", refusing, "ALLOWED", Source.LOCAL),
        ("ALLOWED", garbled, "ALLOWED", Source.LOCAL),
        ("ALLOWED_OFFLINE", unreachable, "ALLOWED", Source.LOCAL),
        ("ALLOWED_OFFLINE", refusing, None, Source.NONE),
        ("ALLOWED_OFFLINE", garbled, None, Source.NONE),
        ("NEVER", unreachable, None, Source.NONE),
        ("NEVER", refusing, None, Source.NONE),
        ("ALLOWED", unknown, None, Source.EMSP),
        ("NEVER", unknown, None, Source.EMSP),
    ],
)
def test_without_an_answer_the_whitelist_decides_the_fallback(
    emsp: RegisteredPartner,
    fake: FakeEmsp,
    whitelist: str,
    answer: Callable[[httpx.Request], httpx.Response],
    allowed: str | None,
    source: Source,
) -> None:
    partner_token(emsp, whitelist=whitelist)
    fake.answer = answer
    outcome = authorize_at_charge_point("TOKEN1")
    assert (outcome.allowed, outcome.source) == (allowed, source)
    assert len(fake.requests) == 1
    if source == Source.LOCAL:
        assert "local copy" in outcome.note


def test_a_timeout_counts_as_unreachable(emsp: RegisteredPartner, fake: FakeEmsp) -> None:
    partner_token(emsp, whitelist="ALLOWED_OFFLINE")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    fake.answer = slow
    outcome = authorize_at_charge_point("TOKEN1")
    assert (outcome.allowed, outcome.source) == ("ALLOWED", Source.LOCAL)


def test_allowed_tokens_are_decided_locally_when_the_setting_says_so(
    emsp: RegisteredPartner, fake: FakeEmsp
) -> None:
    partner_token(emsp, whitelist="ALLOWED")
    with override_settings(OCPI_TOKEN_ASK_WHEN_ALLOWED=False):
        outcome = authorize_at_charge_point("TOKEN1")
    assert (outcome.allowed, outcome.source) == ("ALLOWED", Source.LOCAL)
    assert fake.requests == []


def test_an_unknown_token_is_asked_of_the_named_emsp_only(
    emsp: RegisteredPartner, fake: FakeEmsp
) -> None:
    nothing = authorize_at_charge_point("NEW1")
    assert (nothing.allowed, nothing.source) == (None, Source.NONE)
    assert fake.requests == []
    asked = authorize_at_charge_point("NEW1", token_type="APP_USER", party=("de", "tnm"))
    assert (asked.allowed, asked.source) == ("ALLOWED", Source.EMSP)
    assert str(fake.requests[0].url).endswith("/NEW1/authorize?type=APP_USER")
    unknown_party = authorize_at_charge_point("NEW1", party=("FR", "XXX"))
    assert unknown_party.source == Source.NONE
    assert "FR/XXX" in unknown_party.note


def test_the_uid_is_one_encoded_path_segment(emsp: RegisteredPartner, fake: FakeEmsp) -> None:
    partner_token(emsp, "A/B C", whitelist="NEVER")
    authorize_at_charge_point("A/B C")
    assert fake.requests[0].url.raw_path.decode().startswith("/ocpi/2.2.1/tokens/A%2FB%20C/")


def test_the_copy_is_found_by_type_and_case_insensitive_uid(emsp: RegisteredPartner) -> None:
    partner_token(emsp, "AbC", type="APP_USER")
    assert local_copy("abc", "RFID") is None
    copy = local_copy("ABC", "APP_USER")
    assert copy is not None
    assert copy.partner_id == emsp.partner.pk


def test_as_dict_names_the_source(emsp: RegisteredPartner, fake: FakeEmsp) -> None:
    partner_token(emsp, whitelist="ALWAYS")
    result: dict[str, Any] = authorize_at_charge_point("TOKEN1").as_dict()
    assert result["source"] == "local copy"
    assert result["authorization_info"]["allowed"] == "ALLOWED"
