"""Inbound rules under /ocpi/: only offered interfaces, OCPI-from-* naming the caller's party,
URL ids validated like body ids, bad Host, OPTIONS, doubled slashes. All answered with the
envelope."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.views import APIView

from locations.models import Location
from ocpi_platform.ocpi import registry
from ocpi_platform.ocpi.envelope import ocpi_response
from ocpi_platform.ocpi.types import join_url
from tests.conftest import make_registered
from tests.locations.conftest import RECEIVER, SENDER, example

pytestmark = pytest.mark.django_db

LOC = f"{RECEIVER}/BE/BEC/LOC1"


# --- interfaces not offered ----------------------------------------------------------------


def test_an_interface_not_in_our_version_details_is_not_served(api, cpo, settings):
    settings.OCPI_PARTIES = "NL:ABC:CPO"  # a CPO only: no locations receiver

    details = api.get("/ocpi/2.2.1", token=cpo.inbound_token)
    assert ("locations", "RECEIVER") not in {
        (e["identifier"], e["role"]) for e in details.data["endpoints"]
    }
    reply = api.put(LOC, token=cpo.inbound_token, body=example())

    assert (reply.status, reply.code) == (404, 2000), reply.body
    assert "does not offer the locations RECEIVER interface" in reply.message
    assert not Location.objects.exists()
    # The offered one still works.
    assert api.get(SENDER, token=cpo.inbound_token).code == 1000


class RogueView(APIView):
    def get(self, request: Request):
        return ocpi_response({"secret": True})


urlpatterns = [
    path("ocpi/2.2.1/", include(([path("rogue", RogueView.as_view(), name="rogue")], "ocpi"))),
]


def test_an_ocpi_url_that_no_registered_endpoint_claims_is_not_served(api, cpo, settings):
    settings.ROOT_URLCONF = __name__

    reply = api.get("/ocpi/2.2.1/rogue", token=cpo.inbound_token)

    assert (reply.status, reply.code) == (404, 2000)
    assert "secret" not in json.dumps(reply.body)


def test_url_names_belong_to_the_longest_registered_endpoint_name():
    assert registry.endpoint_serving("ocpi:locations-receiver-object").role == "RECEIVER"
    assert registry.endpoint_serving("ocpi:locations-sender").role == "SENDER"
    assert registry.endpoint_serving("ocpi:locationsx") is None


# --- OCPI-from-* ---------------------------------------------------------------------------


def from_headers(country_code: str, party_id: str) -> dict[str, str]:
    return {"OCPI-from-country-code": country_code, "OCPI-from-party-id": party_id}


def test_a_push_from_the_callers_own_party_is_served(api, cpo):
    reply = api.put(LOC, token=cpo.inbound_token, body=example(), headers=from_headers("be", "bec"))

    assert (reply.status, reply.code) == (201, 1000), reply.body


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_request_naming_another_party_as_sender_is_refused(api, cpo, method):
    body = example() if method == "PUT" else None

    reply = api.call(
        method, LOC, token=cpo.inbound_token, body=body, headers=from_headers("NL", "ABC")
    )

    assert (reply.status, reply.code) == (400, 2001), reply.body
    assert "'NL'" in reply.message
    assert "'ABC'" in reply.message
    assert "not one of your parties" in reply.message
    assert "BE/BEC" in reply.message
    assert not Location.objects.exists()


def test_one_from_header_without_the_other_is_refused(api, cpo):
    reply = api.get(LOC, token=cpo.inbound_token, headers={"OCPI-from-country-code": "BE"})

    assert (reply.status, reply.code) == (400, 2001)
    assert "send both or neither" in reply.message


def test_an_unprintable_from_header_is_not_echoed(api, cpo):
    reply = api.get(LOC, token=cpo.inbound_token, headers=from_headers("B\tE", "<script>x"))

    assert (reply.status, reply.code) == (400, 2001)
    assert "<script>" not in reply.message


def test_a_hub_may_name_the_parties_it_relays_for(api):
    hub = make_registered("hub", country_code="DE", party_id="HUB", role="HUB")

    reply = api.get(SENDER, token=hub.inbound_token, headers=from_headers("FR", "CPO"))

    assert (reply.status, reply.code) == (200, 1000), reply.body


def test_configuration_modules_ignore_from_headers(api, invited, cpo):
    headers = from_headers("ZZ", "ZZZ")
    assert api.get("/ocpi/versions", token=invited.token_a, headers=headers).code == 1000
    assert api.get("/ocpi/2.2.1/credentials", token=cpo.inbound_token, headers=headers).code == 1000


# --- ids in URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"{RECEIVER}/BE/BEC/LOC%001", "location_id"),
        (f"{RECEIVER}/BE/BEC/LOC1/32%0056", "evse_uid"),
        (f"{RECEIVER}/BE/BEC/LOC1/3256/%01", "connector_id"),
        (f"{RECEIVER}/BE/B%00C/LOC1", "party_id"),
        (f"{RECEIVER}/BE/BEC/{'L' * 37}", "location_id"),
        (f"{RECEIVER}/BE/BEC/LOC%C3%A91", "location_id"),
        (f"{SENDER}/LOC%001", "location_id"),
        (f"{SENDER}/LOC1/%0A", "evse_uid"),
    ],
)
def test_bad_ids_in_urls_are_2001_naming_the_id(api, cpo, url, name):
    reply = api.get(url, token=cpo.inbound_token)

    assert reply.code == 2001, reply.body
    assert f"The {name} in the URL is not valid" in reply.message
    assert "\x00" not in reply.message


def test_a_nul_in_a_patched_url_id_is_2001_and_nothing_is_stored(api, cpo):
    api.put(LOC, token=cpo.inbound_token, body=example())

    reply = api.patch(
        f"{LOC}/32%0056", token=cpo.inbound_token, body={"last_updated": "2030-01-01T00:00:00Z"}
    )

    assert reply.code == 2001, reply.body
    assert "The evse_uid in the URL is not valid" in reply.message


# --- Host, OPTIONS -------------------------------------------------------------------------


def test_a_bad_host_header_is_a_400_envelope_under_ocpi():
    client = Client(HTTP_HOST="evil.example")

    response = client.get("/ocpi/versions", headers={"X-Request-ID": "rid-7"})

    assert response.status_code == 400
    body = json.loads(response.content)
    assert body["status_code"] == 2000
    assert "Host header" in body["status_message"]
    assert response["X-Request-ID"] == "rid-7"
    # The admin keeps Django's own answer.
    assert Client(HTTP_HOST="evil.example").get("/admin/login/").status_code == 400


def test_options_answers_the_envelope_with_allow_and_no_docstrings(api, cpo):
    response = Client().options(LOC)

    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["status_code"] == 1000
    assert set(response["Allow"].split(", ")) == {"GET", "PUT", "PATCH", "OPTIONS"}
    assert "client owned objects" not in response.content.decode()
    assert "renders" not in body
    assert "name" not in body


# --- slashes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "tail"),
    [
        (f"{RECEIVER}/", "BE/BEC/LOC1"),  # as advertised, no separator added
        (f"{RECEIVER}/", "/BE/BEC/LOC1"),  # a doubled slash
        (RECEIVER, "/BE/BEC/LOC1"),
        (RECEIVER, "BE/BEC/LOC1/"),  # joined with our own join_url
    ],
)
def test_every_way_of_joining_the_endpoint_url_and_the_object_path_works(api, cpo, endpoint, tail):
    url = endpoint + tail if not tail.endswith("/") else join_url(endpoint, tail)

    put = api.put(url, token=cpo.inbound_token, body=example())
    got = api.get(url.replace("LOC1", "LOC1//3256//"), token=cpo.inbound_token)

    assert (put.status, put.code) == (201, 1000), (url, put.body)
    assert (got.code, got.data["uid"]) == (1000, "3256")


def test_doubled_slashes_anywhere_in_an_ocpi_path_are_served(api, invited):
    assert api.get("/ocpi//2.2.1//", token=invited.token_a).code == 1000


def test_our_own_joins_give_single_slashes():
    advertised = "http://partner.test/ocpi/2.2.1/receiver/locations/"
    assert join_url(advertised, "NL", "ABC", "LOC1") == (
        "http://partner.test/ocpi/2.2.1/receiver/locations/NL/ABC/LOC1"
    )


def test_the_ocpi_root_without_a_slash_is_a_404_envelope(api):
    reply = api.get("/ocpi")

    assert (reply.status, reply.code) == (404, 2000)
