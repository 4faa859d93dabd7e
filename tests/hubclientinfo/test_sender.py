"""Sender interface (we are the hub): GET the ClientInfo of our connections, paginated.

Also: the version details list hubclientinfo SENDER only when one of our parties is a HUB, and
RECEIVER when one of our parties is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from credentials.models import ConnectionStatus, Partner, PartnerState
from ocpi_platform.ocpi.types import format_datetime
from tests.conftest import RegisteredPartner
from tests.hubclientinfo.conftest import RECEIVER, SENDER, VERSION_DETAILS, connection

pytestmark = pytest.mark.django_db

T1 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)
T2 = datetime(2024, 3, 2, 10, 0, 0, 250000, tzinfo=UTC)
T3 = datetime(2024, 3, 3, 10, 0, 0, tzinfo=UTC)


def ci(partner: RegisteredPartner, role: str | None = None, **over: Any) -> dict[str, Any]:
    """The ClientInfo we expect for one role of ``partner`` (as stored now)."""
    p = Partner.objects.get(pk=partner.partner.pk)
    row = p.roles.get(role=role) if role else p.roles.get()
    body = {
        "party_id": row.party_id,
        "country_code": row.country_code,
        "role": row.role,
        "status": p.status,
        "last_updated": format_datetime(p.status_since or p.created_at),
    }
    body.update(over)
    return body


def get(api, caller: RegisteredPartner, query: str = ""):
    return api.get(f"{SENDER}{query}", token=caller.inbound_token)


def next_path(reply) -> str | None:
    link = reply.headers.get("Link")
    if link is None:
        return None
    url = link[link.index("<") + 1 : link.index(">")]
    assert link.endswith('; rel="next"'), link
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://testserver"
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def caller(we_are_hub: None) -> RegisteredPartner:
    """The partner that reads the list (DE/ASK EMSP, with a CPO role too)."""
    return connection("asker", "DE", "ASK", "EMSP", extra_roles=("CPO",), status_since=T1)


# --- version details ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parties", "expected"),
    [
        pytest.param("NL:HUB:HUB", {("SENDER", SENDER)}, id="hub-only"),
        pytest.param("NL:ABC:CPO,NL:ABC:EMSP", {("RECEIVER", RECEIVER)}, id="no-hub"),
        pytest.param(
            "NL:HUB:HUB,NL:ABC:CPO", {("SENDER", SENDER), ("RECEIVER", RECEIVER)}, id="both"
        ),
    ],
)
def test_version_details_list_hubclientinfo_by_our_roles(api, settings, parties, expected):
    settings.OCPI_PARTIES = parties
    partner = connection("reader", "DE", "RDR")

    reply = api.get(VERSION_DETAILS, token=partner.inbound_token)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    listed = {
        (e["role"], e["url"]) for e in reply.data["endpoints"] if e["identifier"] == "hubclientinfo"
    }
    # Advertised with a trailing slash: appending "NL/ABC" without a separator works too.
    assert listed == {(role, f"http://testserver{path}/") for role, path in expected}


# --- the list -----------------------------------------------------------------------------------


def test_list_has_one_client_info_per_role_of_every_other_partner(api, caller):
    cpo = connection("fr-cpo", "FR", "CPO", "CPO", extra_roles=("EMSP",), status_since=T2)
    offline = connection(
        "be-nsp", "BE", "NSP", "NSP", status=ConnectionStatus.OFFLINE, status_since=T3
    )
    never_changed = connection("it-emsp", "IT", "EMS", "EMSP")  # status_since is None
    suspended = connection(
        "es-cpo", "ES", "SUS", "CPO", status=ConnectionStatus.SUSPENDED, status_since=T1
    )

    reply = get(api, caller)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert reply.data == [
        ci(cpo, "CPO", status="CONNECTED", last_updated=format_datetime(T2)),
        ci(cpo, "EMSP", status="CONNECTED", last_updated=format_datetime(T2)),
        ci(offline, status="OFFLINE", last_updated=format_datetime(T3)),
        ci(never_changed, status="CONNECTED"),
        ci(suspended, status="SUSPENDED", last_updated=format_datetime(T1)),
    ]
    created = Partner.objects.get(pk=never_changed.partner.pk).created_at
    assert reply.data[3]["last_updated"] == format_datetime(created)
    assert reply.headers["X-Total-Count"] == "5"
    assert "Link" not in reply.headers
    # The caller's own parties are not listed.
    assert not [i for i in reply.data if (i["country_code"], i["party_id"]) == ("DE", "ASK")]


def test_another_caller_sees_the_first_caller_but_not_itself(api, caller):
    other = connection("fr-cpo", "FR", "CPO", "CPO", status_since=T2)

    reply = get(api, other)

    assert [(i["country_code"], i["party_id"], i["role"]) for i in reply.data] == [
        ("DE", "ASK", "CPO"),  # by connection, then country, party, role
        ("DE", "ASK", "EMSP"),
    ]


def test_status_follows_the_partner_status_and_status_since(api, caller):
    other = connection("fr-cpo", "FR", "CPO", "CPO", status_since=T1)
    Partner.objects.filter(pk=other.partner.pk).update(
        status=ConnectionStatus.OFFLINE, status_since=T3
    )

    [item] = get(api, caller).data

    assert (item["status"], item["last_updated"]) == ("OFFLINE", format_datetime(T3))


def test_an_empty_list(api, caller):
    reply = get(api, caller)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert reply.data == []
    assert reply.headers["X-Total-Count"] == "0"
    assert "Link" not in reply.headers


def make_five(start: datetime = T1) -> list[RegisteredPartner]:
    return [
        connection(f"p{i}", "FR", f"P{i}A", "CPO", status_since=start + timedelta(hours=i))
        for i in range(5)
    ]


def test_pages_follow_the_next_links(api, caller):
    five = make_five()
    expected = [ci(p) for p in five]

    first = get(api, caller, "?limit=2")
    assert (first.status, first.code) == (200, 1000), first.body
    assert first.data == expected[:2]
    assert (first.headers["X-Total-Count"], first.headers["X-Limit"]) == ("5", "2")
    second_path = next_path(first)
    assert second_path == f"{SENDER}?limit=2&offset=2"

    second = api.get(second_path, token=caller.inbound_token)
    assert second.data == expected[2:4]
    assert (second.headers["X-Total-Count"], second.headers["X-Limit"]) == ("5", "2")
    third_path = next_path(second)
    assert third_path == f"{SENDER}?limit=2&offset=4"

    third = api.get(third_path, token=caller.inbound_token)
    assert third.data == expected[4:]
    assert third.headers["X-Total-Count"] == "5"
    assert next_path(third) is None


def test_offset_and_limit(api, caller):
    five = make_five()

    reply = get(api, caller, "?offset=1&limit=3")

    assert reply.data == [ci(p) for p in five[1:4]]
    assert next_path(reply) == f"{SENDER}?limit=3&offset=4"
    assert get(api, caller, "?offset=5").data == []


def test_x_limit_is_the_server_cap_when_more_is_asked(api, caller, settings):
    settings.OCPI_PAGE_LIMIT = 3
    five = make_five()

    reply = get(api, caller, "?limit=100")

    assert reply.data == [ci(p) for p in five[:3]]
    assert reply.headers["X-Limit"] == "3"
    assert next_path(reply) == f"{SENDER}?limit=3&offset=3"


def test_date_from_is_inclusive_and_date_to_exclusive(api, caller):
    five = make_five()  # last_updated T1, T1+1h, ... T1+4h
    stamps = [format_datetime(T1 + timedelta(hours=i)) for i in range(5)]

    since = get(api, caller, f"?date_from={stamps[2]}")
    assert [i["party_id"] for i in since.data] == ["P2A", "P3A", "P4A"]
    assert since.headers["X-Total-Count"] == "3"

    until = get(api, caller, f"?date_to={stamps[2]}")
    # The caller's own row (T1) is excluded, the others before T1+2h are in.
    assert [i["party_id"] for i in until.data] == ["P0A", "P1A"]
    assert until.headers["X-Total-Count"] == "2"

    window = get(api, caller, f"?date_from={stamps[1]}&date_to={stamps[3]}")
    assert window.data == [ci(p) for p in five[1:3]]

    # Without the Z (the spec's own examples): UTC.
    plain = get(api, caller, f"?date_from={stamps[4][:-1]}")
    assert [i["party_id"] for i in plain.data] == ["P4A"]

    empty = get(api, caller, f"?date_from={stamps[2]}&date_to={stamps[2]}")
    assert (empty.code, empty.data) == (1000, [])


def test_the_next_link_keeps_the_date_filters(api, caller):
    make_five()
    date_from = format_datetime(T1)

    reply = get(api, caller, f"?date_from={date_from}&limit=2")

    path = next_path(reply)
    assert path is not None
    assert f"date_from={date_from.replace(':', '%3A')}" in path
    follow = api.get(path, token=caller.inbound_token)
    assert [i["party_id"] for i in follow.data] == ["P2A", "P3A"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        pytest.param("?date_from=yesterday", "date_from", id="date-from"),
        pytest.param("?date_to=2024-03-01", "date_to", id="date-to"),
        pytest.param("?limit=ten", "limit", id="limit"),
        pytest.param("?offset=-1", "offset", id="offset"),
        pytest.param(
            "?date_from=2024-03-02T00:00:00Z&date_to=2024-03-01T00:00:00Z",
            "date_from",
            id="reversed-window",
        ),
    ],
)
def test_invalid_parameters_are_2001(api, caller, query, fragment):
    make_five()

    reply = get(api, caller, query)

    assert (reply.status, reply.code) == (200, 2001), reply.body
    assert fragment in reply.message
    assert reply.data is None


def test_partners_that_are_not_registered_keep_their_status(api, caller):
    gone = connection("gone", "FR", "GON", "CPO", status_since=T2)
    Partner.objects.filter(pk=gone.partner.pk).update(
        state=PartnerState.UNREGISTERED, status=ConnectionStatus.OFFLINE
    )

    [item] = get(api, caller).data

    assert (item["party_id"], item["status"]) == ("GON", "OFFLINE")


# --- who may call -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_are_405(api, caller, method):
    reply = api.call(method, SENDER, token=caller.inbound_token, body={})

    assert (reply.status, reply.code) == (405, 2000), reply.body


def test_without_a_token_is_401(api, caller):
    reply = api.get(SENDER)

    assert reply.status == 401
    assert reply.code == 2000


def test_token_a_is_401(api, caller, invited):
    reply = api.get(SENDER, token=invited.token_a)

    assert reply.status == 401
    assert "status_code" in reply.body


# --- not offered --------------------------------------------------------------------------------


def test_the_list_is_not_served_when_we_are_not_a_hub(api, settings):
    settings.OCPI_PARTIES = "NL:ABC:CPO,NL:ABC:EMSP"  # not listed in our version details
    connection("fr-cpo", "FR", "CPO", "CPO", status_since=T2)
    reader = connection("reader", "DE", "RDR")

    reply = get(api, reader)

    assert (reply.status, reply.code) == (404, 2000), reply.body
    assert "does not offer the hubclientinfo SENDER interface" in reply.message
    assert "data" not in reply.body


def test_the_receiver_is_not_served_on_a_hub_only_instance(api, settings):
    settings.OCPI_PARTIES = "NL:HUB:HUB"
    hub = connection("other-hub", "DE", "HUB", "HUB")

    reply = api.put(
        f"{RECEIVER}/FR/CPO",
        token=hub.inbound_token,
        body={
            "party_id": "CPO",
            "country_code": "FR",
            "role": "CPO",
            "status": "CONNECTED",
            "last_updated": "2019-01-28T12:00:00Z",
        },
    )

    assert (reply.status, reply.code) == (404, 2000), reply.body
    assert "does not offer the hubclientinfo RECEIVER interface" in reply.message
