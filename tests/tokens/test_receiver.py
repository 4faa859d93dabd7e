"""The CPO's tokens receiver (kit, declared by tokens): GET, PUT, PATCH at
/{country_code}/{party_id}/{uid}[?type=...]; type defaults to RFID; every rule 2001 naming the
field; nothing stored from a refused request."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import OcpiApi, RegisteredPartner
from tokens.models import Token

from .conftest import RECEIVER, example

pytestmark = pytest.mark.django_db

URL = f"{RECEIVER}/DE/TNM/12345678905880"


def copies() -> list[Token]:
    return list(Token.objects.filter(partner__isnull=False).order_by("id"))


def put(api: OcpiApi, emsp: RegisteredPartner, body: Any, url: str = URL) -> Any:
    return api.put(url, token=emsp.inbound_token, body=body)


def test_put_stores_the_copy_and_get_serves_it(api: OcpiApi, emsp: RegisteredPartner) -> None:
    reply = put(api, emsp, example())
    assert (reply.status, reply.code) == (201, 1000)
    (copy,) = copies()
    assert (copy.partner_id, copy.object_type, copy.whitelist) == (
        emsp.partner.pk,
        "RFID",
        "ALLOWED",
    )
    assert (copy.valid, copy.contract_id) == (True, "DE8ACC12E46L89")
    got = api.get(URL, token=emsp.inbound_token)
    assert got.data == example()
    assert api.get(URL + "?type=RFID", token=emsp.inbound_token).data == example()
    assert put(api, emsp, example()).status == 200  # a replacement


def test_the_type_parameter_is_part_of_the_key(api: OcpiApi, emsp: RegisteredPartner) -> None:
    app = {**example(), "type": "APP_USER"}
    assert put(api, emsp, app, URL + "?type=APP_USER").code == 1000
    assert put(api, emsp, example()).code == 1000
    assert sorted(t.object_type for t in copies()) == ["APP_USER", "RFID"]
    assert api.get(URL + "?type=APP_USER", token=emsp.inbound_token).data["type"] == "APP_USER"
    # Without ?type the URL names the RFID token: an APP_USER body does not match it.
    reply = put(api, emsp, app)
    assert reply.code == 2001
    assert "type" in reply.message


def test_a_type_that_is_not_a_token_type_is_refused_naming_it(
    api: OcpiApi, emsp: RegisteredPartner
) -> None:
    assert put(api, emsp, example()).code == 1000
    got = api.get(URL + "?type=CARD", token=emsp.inbound_token)
    patched = api.patch(
        URL + "?type=CARD",
        body={"valid": False, "last_updated": "2030-01-01T00:00:00Z"},
        token=emsp.inbound_token,
    )
    for reply in (got, patched, put(api, emsp, example(), URL + "?type=CARD")):
        assert reply.code == 2001, reply
        assert "type" in reply.message, reply.message
        assert "RFID" in reply.message, reply.message
    assert [(t.object_type, t.valid) for t in copies()] == [("RFID", True)]


def test_a_party_that_is_not_the_callers_is_refused(
    api: OcpiApi, emsp: RegisteredPartner, cpo: RegisteredPartner
) -> None:
    reply = put(api, cpo, example())
    assert reply.status == 404
    assert "DE/TNM is not one of your parties" in reply.message
    assert copies() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("uid", "OTHER"),
        ("party_id", "XXX"),
        ("contract_id", None),
        ("contract_id", "C" * 37),
        ("issuer", "I" * 65),
        ("visual_number", "V" * 65),
        ("group_id", "G" * 37),
        ("valid", "true"),
        ("whitelist", "SOMETIMES"),
        ("whitelist", "always"),
        ("language", "eng"),
        ("default_profile_type", "SLOW"),
        ("energy_contract", {"contract_id": "X"}),
        ("last_updated", "yesterday"),
        ("type", "CARD"),
    ],
)
def test_each_rule_is_2001_naming_the_field(
    api: OcpiApi, emsp: RegisteredPartner, field: str, value: Any
) -> None:
    body = example()
    if value is None:
        del body[field]
    else:
        body[field] = value
    reply = put(api, emsp, body)
    assert reply.code == 2001, reply.body
    assert field in reply.message
    assert copies() == []


def test_patch_changes_fields_newest_last_updated_wins(
    api: OcpiApi, emsp: RegisteredPartner
) -> None:
    put(api, emsp, example())
    patch = {"valid": False, "last_updated": "2019-01-01T00:00:00Z"}
    reply = api.patch(URL, token=emsp.inbound_token, body=patch)
    assert (reply.code, reply.message) == (1000, "Updated.")
    (copy,) = copies()
    assert copy.valid is False
    document = api.get(URL, token=emsp.inbound_token).data
    assert {**example(), **patch} == document
    older = {"valid": True, "last_updated": "2018-01-01T00:00:00Z"}
    reply = api.patch(URL, token=emsp.inbound_token, body=older)
    assert reply.code == 1000
    assert "newer" in reply.message
    assert copies()[0].valid is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"valid": False}, "last_updated"),
        ({"valid": "no", "last_updated": "2019-01-01T00:00:00Z"}, "valid"),
        ({"uid": "OTHER", "last_updated": "2019-01-01T00:00:00Z"}, "uid"),
        ({"whitelist": "NOPE", "last_updated": "2019-01-01T00:00:00Z"}, "whitelist"),
    ],
)
def test_a_bad_patch_is_2001_naming_the_field(
    api: OcpiApi, emsp: RegisteredPartner, body: dict[str, Any], field: str
) -> None:
    put(api, emsp, example())
    reply = api.patch(URL, token=emsp.inbound_token, body=body)
    assert reply.code == 2001
    assert field in reply.message
    assert api.get(URL, token=emsp.inbound_token).data == example()


def test_patch_of_an_unknown_token_is_refused(api: OcpiApi, emsp: RegisteredPartner) -> None:
    reply = api.patch(
        URL, token=emsp.inbound_token, body={"valid": False, "last_updated": "2019-01-01T00:00:00Z"}
    )
    assert reply.status == 404
    assert copies() == []


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_tokens_are_never_deleted_nor_posted(
    api: OcpiApi, emsp: RegisteredPartner, method: str
) -> None:
    put(api, emsp, example())
    reply = api.call(method, URL, token=emsp.inbound_token, body=example())
    assert reply.status == 405
    assert len(copies()) == 1
