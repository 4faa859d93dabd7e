"""Our tokens (we are the eMSP) pushed to the CPOs: PUT on creation and replacement, PATCH of
``valid`` when blocked or unblocked (tokens.services.set_valid), never a DELETE."""

from __future__ import annotations

import json

import pytest

from ocpi_platform.ocpi.errors import InvalidParameters
from outbox.models import Delivery
from tests.conftest import RegisteredPartner
from tokens.models import Token
from tokens.services import set_valid

from .conftest import own_token, partner_token

pytestmark = pytest.mark.django_db


def deliveries() -> list[Delivery]:
    return list(Delivery.objects.filter(module="tokens").order_by("id"))


def test_creation_is_a_put_of_the_document(cpo: RegisteredPartner) -> None:
    token = own_token()
    (row,) = deliveries()
    assert (row.partner_id, row.method, row.path) == (
        cpo.partner.pk,
        "PUT",
        "NL/ABC/TOKEN1?type=RFID",
    )
    assert row.body == json.loads(token.ocpi_json)
    assert (row.to_country_code, row.to_party_id) == ("BE", "BEC")


def test_blocking_is_a_patch_of_valid(cpo: RegisteredPartner) -> None:
    token = own_token()
    Delivery.objects.update(state="SENT")
    set_valid(token, False)
    token.refresh_from_db()
    assert token.valid is False
    row = deliveries()[-1]
    assert row.method == "PATCH"
    assert row.body == {"valid": False, "last_updated": json.loads(token.ocpi_json)["last_updated"]}
    assert json.loads(token.ocpi_json)["valid"] is False
    set_valid(token, True)
    assert Token.objects.get(pk=token.pk).valid is True


def test_another_change_is_a_put(cpo: RegisteredPartner) -> None:
    own_token()
    Delivery.objects.update(state="SENT")
    own_token(issuer="Another Issuer")
    row = deliveries()[-1]
    assert (row.method, row.body["issuer"]) == ("PUT", "Another Issuer")


def test_a_partners_token_is_not_blocked_here(emsp: RegisteredPartner) -> None:
    with pytest.raises(InvalidParameters):
        set_valid(partner_token(emsp), False)


def test_our_token_must_be_of_our_emsp_party(cpo: RegisteredPartner) -> None:
    with pytest.raises(InvalidParameters, match="not one of our EMSP parties"):
        own_token(country_code="FR")
    assert deliveries() == []
