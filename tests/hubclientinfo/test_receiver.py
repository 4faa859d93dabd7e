"""Receiver interface: a hub partner PUTs the ClientInfo of the parties behind it and reads it back.

Path: /ocpi/2.2.1/receiver/hubclientinfo/{country_code}/{party_id}. Only a partner whose
credentials role is HUB may use it; a configuration module, so no routing headers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from credentials.models import HubParty
from tests.conftest import make_registered
from tests.hubclientinfo.conftest import RECEIVER

pytestmark = pytest.mark.django_db

URL = f"{RECEIVER}/FR/CPO"
T1 = "2019-01-28T12:00:00Z"
T2 = "2019-01-29T12:00:00.123Z"
T3 = "2019-01-30T08:15:00Z"
ROUTING = (
    "OCPI-from-country-code",
    "OCPI-from-party-id",
    "OCPI-to-country-code",
    "OCPI-to-party-id",
)


def info(
    country_code: str = "FR",
    party_id: str = "CPO",
    role: str = "CPO",
    status: str = "CONNECTED",
    last_updated: str | None = T1,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "party_id": party_id,
        "country_code": country_code,
        "role": role,
        "status": status,
    }
    if last_updated is not None:
        body["last_updated"] = last_updated
    return body


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def stored() -> list[tuple[int, str, str, str, str, datetime]]:
    return [
        (r.hub_id, r.country_code, r.party_id, r.role, r.status, r.last_updated)
        for r in HubParty.objects.order_by("id")
    ]


def put(api, hub, body: Any, url: str = URL):
    return api.put(url, token=hub.inbound_token, body=body)


# --- PUT and GET --------------------------------------------------------------------------------


def test_put_of_a_new_client_info_is_created_with_201(api, hub):
    reply = put(api, hub, info())

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert "timestamp" in reply.body
    assert stored() == [(hub.partner.pk, "FR", "CPO", "CPO", "CONNECTED", at(T1))]


def test_put_again_with_a_newer_last_updated_updates_with_200(api, hub):
    put(api, hub, info())

    reply = put(api, hub, info(status="OFFLINE", last_updated=T2))

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert "status_message" not in reply.body
    assert stored() == [(hub.partner.pk, "FR", "CPO", "CPO", "OFFLINE", at(T2))]


def test_put_with_an_older_last_updated_is_not_applied(api, hub):
    put(api, hub, info(status="OFFLINE", last_updated=T2))
    before = stored()

    reply = put(api, hub, info(status="CONNECTED", last_updated=T1))

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert reply.message.startswith("Not applied"), reply.body
    assert stored() == before
    assert api.get(URL, token=hub.inbound_token).data["status"] == "OFFLINE"


def test_get_returns_what_was_stored(api, hub):
    body = info(status="SUSPENDED", last_updated=T2)
    put(api, hub, body)

    reply = api.get(URL, token=hub.inbound_token)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert reply.data == body


def test_get_of_an_unknown_party_is_404_with_an_envelope(api, hub):
    put(api, hub, info())

    reply = api.get(f"{RECEIVER}/FR/XXX", token=hub.inbound_token)

    assert reply.status == 404
    assert reply.code == 2000
    assert "FR/XXX" in reply.message
    assert "timestamp" in reply.body
    assert reply.data is None


def test_another_hub_does_not_see_what_a_hub_pushed(api, hub):
    put(api, hub, info())
    other = make_registered("other-hub", country_code="BE", party_id="HUB", role="HUB")

    reply = api.get(URL, token=other.inbound_token)

    assert reply.status == 404
    assert api.get(URL, token=hub.inbound_token).status == 200


def test_two_roles_of_one_party_get_returns_the_most_recently_updated(api, hub):
    assert put(api, hub, info(role="CPO", status="CONNECTED", last_updated=T1)).status == 201
    second = put(api, hub, info(role="EMSP", status="PLANNED", last_updated=T2))
    assert (second.status, second.code) == (201, 1000), second.body
    assert HubParty.objects.count() == 2

    assert api.get(URL, token=hub.inbound_token).data == info(
        role="EMSP", status="PLANNED", last_updated=T2
    )

    put(api, hub, info(role="CPO", status="OFFLINE", last_updated=T3))

    assert api.get(URL, token=hub.inbound_token).data == info(
        role="CPO", status="OFFLINE", last_updated=T3
    )
    assert HubParty.objects.count() == 2


def test_lower_case_country_code_and_party_id_are_accepted(api, hub):
    reply = put(api, hub, info(country_code="fr", party_id="cpo"), url=f"{RECEIVER}/fr/cpo")

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert stored() == [(hub.partner.pk, "FR", "CPO", "CPO", "CONNECTED", at(T1))]

    # The same party, whatever the case of the URL and of the body.
    again = put(
        api, hub, info(country_code="Fr", party_id="CPO", status="OFFLINE", last_updated=T2)
    )
    assert (again.status, again.code) == (200, 1000), again.body
    assert stored() == [(hub.partner.pk, "FR", "CPO", "CPO", "OFFLINE", at(T2))]

    got = api.get(f"{RECEIVER}/fr/cPo", token=hub.inbound_token)
    assert (got.status, got.code) == (200, 1000), got.body
    assert got.data == info(status="OFFLINE", last_updated=T2)


def test_trailing_slash_is_accepted(api, hub):
    reply = put(api, hub, info(), url=f"{URL}/")

    assert (reply.status, reply.code) == (201, 1000), reply.body
    got = api.get(f"{URL}/", token=hub.inbound_token)
    assert (got.status, got.code) == (200, 1000), got.body
    assert got.data == info()


def test_a_single_object_wrapped_in_a_list_is_accepted(api, hub):
    reply = put(api, hub, [info()])

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert len(stored()) == 1


def test_the_endpoint_itself_without_a_party_is_404(api, hub):
    for method in ("GET", "PUT"):
        reply = api.call(method, RECEIVER, token=hub.inbound_token, body=info())
        assert reply.status == 404, method
        assert reply.code == 2000
    assert stored() == []


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_other_methods_are_405(api, hub, method):
    put(api, hub, info())
    before = stored()

    reply = api.call(method, URL, token=hub.inbound_token, body=info(status="OFFLINE"))

    assert (reply.status, reply.code) == (405, 2000), reply.body
    assert stored() == before


# --- no routing headers (configuration module) --------------------------------------------------


def test_no_routing_headers_are_needed_nor_answered(api, hub):
    ids = {"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}

    reply = api.put(URL, token=hub.inbound_token, body=info(), headers=ids)

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert reply.headers["X-Request-ID"] == "req-1"
    assert reply.headers["X-Correlation-ID"] == "corr-1"
    got = api.get(URL, token=hub.inbound_token, headers=ids)
    assert (got.status, got.code) == (200, 1000)
    for response in (reply, got):
        assert not [h for h in ROUTING if h in response.headers]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        pytest.param(info(status="ONLINE"), ["status", "ONLINE"], id="unknown-status"),
        pytest.param(info(last_updated=None), ["last_updated", "required"], id="no-last-updated"),
        pytest.param(info(last_updated="yesterday"), ["last_updated"], id="bad-last-updated"),
        pytest.param(info(last_updated="2019-13-45T99:00:00Z"), ["last_updated"], id="bad-date"),
        pytest.param(info(role="DRIVER"), ["role", "DRIVER"], id="unknown-role"),
        pytest.param(info(role="cpo"), ["role"], id="lower-case-role"),
        pytest.param({**info(), "party_id": None}, ["party_id"], id="null-party-id"),
        pytest.param(
            {k: v for k, v in info().items() if k != "country_code"},
            ["country_code"],
            id="no-country-code",
        ),
    ],
)
def test_invalid_client_info_is_2001_and_nothing_is_stored(api, hub, body, fragments):
    reply = put(api, hub, body)

    assert (reply.status, reply.code) == (200, 2001), reply.body
    for fragment in fragments:
        assert fragment in reply.message, reply.message
    assert stored() == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        pytest.param(info(country_code="BE"), "BE/CPO", id="country-code"),
        pytest.param(info(party_id="ABC"), "FR/ABC", id="party-id"),
    ],
)
def test_body_party_different_from_the_url_is_2001(api, hub, body, named):
    reply = put(api, hub, body)

    assert (reply.status, reply.code) == (200, 2001), reply.body
    assert named in reply.message
    assert "FR/CPO" in reply.message
    assert stored() == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param("", "no body", id="empty-body"),
        pytest.param("{}", "no body", id="empty-object"),
        pytest.param("null", "no body", id="null"),
        pytest.param('"FR/CPO"', "str", id="string"),
    ],
)
def test_a_body_that_is_not_one_object_is_2001(api, hub, raw, fragment):
    reply = api.put(URL, token=hub.inbound_token, raw=raw)

    assert (reply.status, reply.code) == (200, 2001), reply.body
    assert "ClientInfo" in reply.message
    assert fragment in reply.message
    assert stored() == []


def test_a_json_list_of_two_objects_is_2001(api, hub):
    reply = put(api, hub, [info(), info(role="EMSP")])

    assert (reply.status, reply.code) == (200, 2001), reply.body
    assert "list" in reply.message
    assert stored() == []


def test_a_body_that_is_not_json_is_http_400(api, hub):
    reply = api.put(URL, token=hub.inbound_token, raw='{"party_id": "CPO",')

    assert (reply.status, reply.code) == (400, 2001), reply.body
    assert "not valid JSON" in reply.message
    assert stored() == []


# --- who may call -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_partner_that_is_not_a_hub_is_refused_with_403(api, hub, emsp, method):
    put(api, hub, info())
    before = stored()

    reply = api.call(method, URL, token=emsp.inbound_token, body=info(last_updated=T3))

    assert (reply.status, reply.code) == (403, 2000), reply.body
    assert "HUB" in reply.message
    assert reply.data is None
    assert stored() == before


def test_a_cpo_partner_cannot_push_a_client_info_either(api):
    cpo = make_registered("fr-cpo", country_code="FR", party_id="CPO", role="CPO")

    reply = put(api, cpo, info())

    assert (reply.status, reply.code) == (403, 2000), reply.body
    assert stored() == []


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_token_a_is_401(api, invited, method):
    reply = api.call(method, URL, token=invited.token_a, body=info())

    assert reply.status == 401
    assert "status_code" in reply.body
    assert stored() == []


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_without_a_token_is_401(api, hub, method):
    reply = api.call(method, URL, body=info())

    assert reply.status == 401
    assert reply.code == 2000
    assert "Authorization" in reply.message
    assert stored() == []


def test_an_unknown_token_is_401(api, hub):
    reply = api.put(URL, token="not-a-token", body=info())

    assert reply.status == 401
    assert stored() == []


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"{RECEIVER}/F%00/CPO", "country_code"),
        (f"{RECEIVER}/FR/C%0AO", "party_id"),
        (f"{RECEIVER}/FRA/CPO", "country_code"),
    ],
)
def test_a_bad_party_in_the_url_is_2001_naming_it(api, hub, url, name):
    got = api.get(url, token=hub.inbound_token)
    put = api.put(url, token=hub.inbound_token, body=info())

    for reply in (got, put):
        assert reply.code == 2001, reply.body
        assert f"The {name} in the URL is not valid" in reply.message
    assert not HubParty.objects.exists()
