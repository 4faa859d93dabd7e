"""Sender interface: partners GET our own locations (the list, or one location, EVSE, connector).

Paths: /sender/locations[?date_from&date_to&offset&limit] and /sender/locations/{location_id}
[/{evse_uid}[/{connector_id}]] (no country_code/party_id segments on the sender side).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings

from locations import services
from locations.models import Location
from locations.paths import ObjectPath
from tests.conftest import OcpiApi, RegisteredPartner, Reply, b64
from tests.locations.conftest import SENDER, example, own_location

pytestmark = pytest.mark.django_db

# Distinct last_updated values (with milliseconds), ascending: STAMPS[i] is location L{i}'s.
STAMPS = [f"2021-01-0{day}T12:00:00.250Z" for day in range(1, 6)]
IDS = [f"L{i}" for i in range(len(STAMPS))]
NEXT = re.compile(r'<(?P<url>[^>]+)>; rel="next"')


# --- helpers


def store(location_id: str = "LOC1", stamp: str | None = None, **changes: Any) -> dict[str, Any]:
    """One of our locations (NL/ABC), created through the service with its timestamps kept."""
    data = own_location(location_id, **changes)
    if stamp is not None:
        data["last_updated"] = stamp
    outcome = services.put(
        ObjectPath("NL", "ABC", location_id), data, owner=None, keep_timestamps=True
    )
    assert outcome.created
    return data


def get_ok(api: OcpiApi, emsp: RegisteredPartner, path: str, **kwargs: Any) -> Reply:
    reply = api.get(path, token=emsp.inbound_token, **kwargs)
    assert reply.status == 200, reply.body
    assert reply.code == 1000, reply.body
    return reply


def ids(reply: Reply) -> list[str]:
    return [location["id"] for location in reply.data]


def next_url(reply: Reply) -> str | None:
    """The Link rel="next" URL, checked to be absolute on our public URL; None when absent."""
    link = reply.headers.get("Link")
    if link is None:
        return None
    match = NEXT.fullmatch(link)
    assert match, link
    url = match["url"]
    assert url.startswith(f"{django_settings.OCPI_PUBLIC_URL}/"), url
    return url


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def crawl(api: OcpiApi, emsp: RegisteredPartner, path: str) -> tuple[list[str], int]:
    """Follow the next links from ``path``: every listed id, in order, and the number of pages."""
    seen: list[str] = []
    pages = 0
    url: str | None = path
    while url is not None:
        reply = get_ok(api, emsp, url)
        pages += 1
        assert len(reply.data) <= int(reply.headers["X-Limit"])
        seen += ids(reply)
        following = next_url(reply)
        url = local(following) if following else None
        assert pages < 50, "the next links do not end"
    return seen, pages


@pytest.fixture
def dated(emsp: RegisteredPartner) -> list[dict[str, Any]]:
    """Five of our locations, L0..L4, with last_updated STAMPS[0..4]."""
    return [store(location_id, stamp) for location_id, stamp in zip(IDS, STAMPS, strict=True)]


# --- the list: envelope and pagination headers


def test_list_envelope_headers_and_served_document(api, emsp):
    data = store()

    reply = get_ok(api, emsp, SENDER)

    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.data == [data]  # the spec example as imported, timestamps kept
    assert reply.data[0]["last_updated"] == "2015-06-29T20:39:09Z"
    assert reply.body["timestamp"].endswith("Z")
    assert reply.headers["X-Total-Count"] == "1"
    assert reply.headers["X-Limit"] == str(django_settings.OCPI_PAGE_LIMIT)
    assert "Link" not in reply.headers


def test_empty_list(api, emsp):
    reply = get_ok(api, emsp, SENDER)

    assert reply.data == []
    assert reply.headers["X-Total-Count"] == "0"
    assert "Link" not in reply.headers


def test_limit_above_the_server_maximum_is_capped(api, emsp, dated, settings):
    settings.OCPI_PAGE_LIMIT = 2

    reply = get_ok(api, emsp, f"{SENDER}?limit=1000")

    assert ids(reply) == ["L0", "L1"]
    assert reply.headers["X-Limit"] == "2"
    assert reply.headers["X-Total-Count"] == "5"
    query = parse_qs(urlsplit(next_url(reply)).query)
    assert query == {"offset": ["2"], "limit": ["2"]}


def test_smaller_limit_is_the_page_size(api, emsp, dated):
    reply = get_ok(api, emsp, f"{SENDER}?limit=3")

    assert ids(reply) == ["L0", "L1", "L2"]
    assert reply.headers["X-Limit"] == "3"  # the common reading (digest §9.2)
    assert reply.headers["X-Total-Count"] == "5"


def test_link_keeps_the_filters_and_leads_to_the_next_page(api, emsp, dated):
    query = f"date_from={STAMPS[1]}&date_to={STAMPS[4]}&limit=2"

    first = get_ok(api, emsp, f"{SENDER}?{query}")

    assert ids(first) == ["L1", "L2"]
    assert first.headers["X-Total-Count"] == "3"
    link = urlsplit(next_url(first))
    assert link.path == SENDER
    assert parse_qs(link.query) == {
        "date_from": [STAMPS[1]],
        "date_to": [STAMPS[4]],
        "offset": ["2"],
        "limit": ["2"],
    }
    second = get_ok(api, emsp, f"{link.path}?{link.query}")
    assert ids(second) == ["L3"]
    assert second.headers["X-Total-Count"] == "3"
    assert "Link" not in second.headers  # the last page


def test_offset_past_the_end_is_an_empty_last_page(api, emsp, dated):
    reply = get_ok(api, emsp, f"{SENDER}?offset=5&limit=2")

    assert reply.data == []
    assert reply.headers["X-Total-Count"] == "5"
    assert "Link" not in reply.headers


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 100])
def test_crawling_the_pages_lists_every_location_once_in_creation_order(api, emsp, limit):
    # Equal last_updated values, and creation order unrelated to last_updated.
    stamps = [STAMPS[2], STAMPS[0], STAMPS[0], STAMPS[0], STAMPS[4], STAMPS[1], STAMPS[0]]
    created = [store(f"S{i}", stamp)["id"] for i, stamp in enumerate(stamps)]

    seen, pages = crawl(api, emsp, f"{SENDER}?limit={limit}")

    assert seen == created  # oldest first, nothing twice, nothing missing
    assert pages == math.ceil(len(created) / limit)
    again, _ = crawl(api, emsp, f"{SENDER}?limit={limit}")
    assert again == seen


# --- the list: date filters


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"date_from={STAMPS[1]}", ["L1", "L2", "L3", "L4"]),  # inclusive
        (f"date_to={STAMPS[3]}", ["L0", "L1", "L2"]),  # exclusive
        (f"date_from={STAMPS[1]}&date_to={STAMPS[3]}", ["L1", "L2"]),
        ("date_from=2021-01-02T12:00:00.250", ["L1", "L2", "L3", "L4"]),  # no 'Z' is UTC too
        ("date_from=2021-01-02T12:00:00.251Z", ["L2", "L3", "L4"]),  # millisecond precision
        ("date_to=2021-01-02T12:00:00.251Z", ["L0", "L1"]),
        ("date_from=2022-01-01T00:00:00Z", []),
    ],
)
def test_date_filters_on_last_updated(api, emsp, dated, query, expected):
    reply = get_ok(api, emsp, f"{SENDER}?{query}")

    assert ids(reply) == expected
    assert reply.headers["X-Total-Count"] == str(len(expected))


def test_consecutive_date_windows_neither_overlap_nor_leave_gaps(api, emsp, dated):
    before = ids(get_ok(api, emsp, f"{SENDER}?date_to={STAMPS[2]}"))
    after = ids(get_ok(api, emsp, f"{SENDER}?date_from={STAMPS[2]}"))

    assert before + after == IDS


def test_a_change_moves_the_location_into_the_window_with_the_new_document(api, emsp, dated):
    services.set_evse_status(ObjectPath("NL", "ABC", "L0", "3256"), "CHARGING")

    reply = get_ok(api, emsp, f"{SENDER}?date_from=2022-01-01T00:00:00Z")

    assert ids(reply) == ["L0"]
    served = reply.data[0]
    assert served["last_updated"] > STAMPS[4]
    assert served["evses"][0]["status"] == "CHARGING"
    assert served["evses"][0]["last_updated"] == served["last_updated"]  # the cascade
    assert served == json.loads(Location.objects.get(location_id="L0").ocpi_json)
    assert get_ok(api, emsp, f"{SENDER}/L0").data == served


# --- the list: invalid parameters


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
        ("limit=abc", "limit"),
        ("limit=-5", "limit"),
        ("date_from=yesterday", "date_from"),
        ("date_to=2021-13-01T00:00:00Z", "date_to"),
        ("date_from=2021-01-01T00:00:00%2B02:00", "date_from"),  # not UTC
        (f"date_from={STAMPS[3]}&date_to={STAMPS[1]}", "date_from"),  # empty window
    ],
)
def test_invalid_list_parameters_are_2001_naming_the_parameter(api, emsp, dated, query, parameter):
    reply = api.get(f"{SENDER}?{query}", token=emsp.inbound_token)

    # A GET of an existing resource by an authorized partner: the digest (transport §7.1) says
    # errors then travel with HTTP 200 and a 2xxx code (HTTP 400 is for a body that is not JSON).
    assert reply.status == 200, reply.body
    assert reply.code == 2001, reply.body
    assert parameter in reply.message
    assert reply.data is None
    assert "X-Total-Count" not in reply.headers


# --- the list: what is listed


def test_only_our_own_shared_locations_are_listed(api, emsp, cpo):
    shared = store("LOC1")
    store("PRIVATE")
    Location.objects.filter(location_id="PRIVATE").update(shared=False)
    theirs = {**example(), "id": "THEIRS"}
    services.put(ObjectPath("BE", "BEC", "THEIRS"), theirs, owner=cpo.partner.pk)
    assert Location.objects.count() == 3

    reply = get_ok(api, emsp, SENDER)

    assert reply.data == [shared]
    assert reply.headers["X-Total-Count"] == "1"
    for path in ("/PRIVATE", "/PRIVATE/3256", "/THEIRS", "/THEIRS/3256/1"):
        missing = api.get(SENDER + path, token=emsp.inbound_token)
        assert (missing.status, missing.code) == (404, 2001), path
    # The partner that owns the copy does not get it from our sender interface either.
    assert get_ok(api, cpo, SENDER).data == [shared]


def test_a_list_page_costs_the_same_few_queries_whatever_its_size(
    api, emsp, django_assert_max_num_queries
):
    # Queries of one call: the token (with its partner) and the partner's roles (authentication,
    # not cached: a first call costs the same as a later one as long as the partner's token
    # encoding does not change), then the count and the page of stored documents. The first
    # call also marks the partner seen (one write per throttle period, outside the count).
    for i in range(3):
        store(f"A{i}")
    get_ok(api, emsp, SENDER)
    with django_assert_max_num_queries(4) as small:
        reply = get_ok(api, emsp, SENDER)
    assert len(reply.data) == 3
    assert sum(len(location["evses"]) for location in reply.data) == 6

    for i in range(3, 30):
        store(f"A{i}")
    with django_assert_max_num_queries(4) as large:
        reply = get_ok(api, emsp, SENDER)
    assert len(reply.data) == 30

    assert len(large.captured_queries) == len(small.captured_queries)


# --- one location, EVSE or connector


def test_get_location_evse_and_connector_give_back_what_was_imported(api, emsp):
    data = store()

    assert get_ok(api, emsp, f"{SENDER}/LOC1").data == data
    for evse in data["evses"]:
        assert get_ok(api, emsp, f"{SENDER}/LOC1/{evse['uid']}").data == evse
        for connector in evse["connectors"]:
            path = f"{SENDER}/LOC1/{evse['uid']}/{connector['id']}"
            assert get_ok(api, emsp, path).data == connector


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/loc-aa", "location"),
        ("/LOC-AA", "location"),
        ("/loc-Aa/evse-B", "evse"),
        ("/LOC-AA/EVSE-B", "evse"),
        ("/loc-aa/evse-b/cx", "connector"),
        ("/Loc-aA/EVSE-b/CX", "connector"),
    ],
)
def test_ids_are_case_insensitive(api, emsp, path, kind):
    data = own_location("Loc-Aa")
    data["evses"][1]["uid"] = "Evse-b"
    data["evses"][1]["connectors"][0]["id"] = "cX"
    services.put(ObjectPath("NL", "ABC", "Loc-Aa"), data, owner=None, keep_timestamps=True)
    expected = {
        "location": data,
        "evse": data["evses"][1],
        "connector": data["evses"][1]["connectors"][0],
    }[kind]

    assert get_ok(api, emsp, SENDER + path).data == expected  # the stored spelling comes back


@pytest.mark.parametrize(
    ("path", "unknown"),
    [
        ("/NOPE", "NOPE"),
        ("/NOPE/3256", "NOPE"),
        ("/LOC1/9999", "9999"),
        ("/LOC1/9999/1", "9999"),
        ("/LOC1/3256/9", "9"),
        ("/LOC1/3257/2", "2"),  # connector 2 exists, but on the other EVSE
    ],
)
def test_unknown_object_is_404(api, emsp, path, unknown):
    store()

    reply = api.get(SENDER + path, token=emsp.inbound_token)

    # The digest asks only for HTTP 404 here; the code answers UnknownObject (404 + 2001).
    assert (reply.status, reply.code) == (404, 2001), reply.body
    assert unknown in reply.message
    assert reply.data is None


# --- routing headers


ROUTING = {
    "OCPI-from-country-code": "DE",
    "OCPI-from-party-id": "XYZ",
    "OCPI-to-country-code": "NL",
    "OCPI-to-party-id": "ABC",
}


@pytest.mark.parametrize("path", ["", "/LOC1", "/LOC1/3256/1"])
def test_routing_headers_are_swapped_on_the_response(api, emsp, path):
    store()

    reply = get_ok(api, emsp, SENDER + path, headers=ROUTING)

    assert reply.headers["OCPI-from-country-code"] == "NL"
    assert reply.headers["OCPI-from-party-id"] == "ABC"
    assert reply.headers["OCPI-to-country-code"] == "DE"
    assert reply.headers["OCPI-to-party-id"] == "XYZ"

    plain = get_ok(api, emsp, SENDER + path)
    assert not [name for name in plain.headers if name.lower().startswith("ocpi-")]


def test_object_addressed_to_a_party_that_does_not_hold_it_is_unknown(api, emsp):
    store()
    lower_case = {**ROUTING, "OCPI-to-country-code": "nl", "OCPI-to-party-id": "abc"}
    elsewhere = {**ROUTING, "OCPI-to-country-code": "NL", "OCPI-to-party-id": "XXX"}

    assert get_ok(api, emsp, f"{SENDER}/LOC1", headers=lower_case).data["id"] == "LOC1"
    reply = api.get(f"{SENDER}/LOC1", token=emsp.inbound_token, headers=elsewhere)
    assert (reply.status, reply.code) == (404, 2001)


# --- transport: trailing slashes and authentication


@pytest.mark.parametrize("path", ["", "/LOC1", "/LOC1/3256", "/LOC1/3256/2"])
def test_with_and_without_trailing_slash_without_redirect(api, emsp, path):
    store()

    without = api.get(SENDER + path, token=emsp.inbound_token)
    with_slash = api.get(SENDER + path + "/", token=emsp.inbound_token)

    for reply in (without, with_slash):
        assert (reply.status, reply.code) == (200, 1000), reply.body
        assert "Location" not in reply.headers
    assert with_slash.data == without.data


def test_link_of_a_trailing_slash_list_works(api, emsp, dated):
    seen, pages = crawl(api, emsp, f"{SENDER}/?limit=2")

    assert (seen, pages) == (IDS, 3)


def bad_authorization(case: str) -> dict[str, Any]:
    if case == "missing":
        return {}
    if case == "unknown token":
        return {"authorization": f"Token {b64('not-a-token')}"}
    if case == "wrong scheme":
        return {"authorization": "Bearer whatever"}
    return {"authorization": "Token"}  # no token after the scheme


@pytest.mark.parametrize("path", ["", "/LOC1/3256/1"])
@pytest.mark.parametrize("case", ["missing", "unknown token", "wrong scheme", "empty"])
def test_without_a_valid_token_is_401(api, emsp, path, case):
    store()

    reply = api.get(SENDER + path, **bad_authorization(case))

    assert reply.status == 401, reply.body
    assert reply.code == 2000
    assert reply.message
    assert "timestamp" in reply.body
    assert reply.data is None
    assert "X-Total-Count" not in reply.headers


@pytest.mark.parametrize("path", ["", "/LOC1"])
def test_token_a_is_401(api, invited, path):
    store()

    reply = api.get(SENDER + path, token=invited.token_a)

    assert (reply.status, reply.code) == (401, 2000), reply.body
    assert "token A" in reply.message
    assert reply.data is None
