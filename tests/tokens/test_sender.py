"""The eMSP's tokens sender list (kit, declared by tokens): ours only, paged, date filters."""

from __future__ import annotations

import pytest

from tests.conftest import OcpiApi, RegisteredPartner

from .conftest import SENDER, own_token, partner_token

pytestmark = pytest.mark.django_db


def test_the_list_pages_our_tokens_with_headers(
    api: OcpiApi, cpo: RegisteredPartner, emsp: RegisteredPartner
) -> None:
    stamps = [f"2020-01-0{n}T00:00:00Z" for n in range(1, 8)]
    for n, stamp in enumerate(stamps, 1):
        own_token(f"T{n}", last_updated=stamp)
    partner_token(emsp, "THEIRS")
    first = api.get(f"{SENDER}?limit=3", token=cpo.inbound_token)
    assert first.code == 1000
    assert [t["uid"] for t in first.data] == ["T1", "T2", "T3"]
    assert first.headers["X-Total-Count"] == "7"
    assert first.headers["X-Limit"] == "3"
    assert "offset=3" in first.headers["Link"]
    assert first.data[0]["last_updated"] == stamps[0]
    last = api.get(f"{SENDER}?limit=3&offset=6", token=cpo.inbound_token)
    assert [t["uid"] for t in last.data] == ["T7"]
    assert "Link" not in last.headers
    window = api.get(
        f"{SENDER}?date_from=2020-01-03T00:00:00Z&date_to=2020-01-05T00:00:00Z",
        token=cpo.inbound_token,
    )
    assert [t["uid"] for t in window.data] == ["T3", "T4"]
    assert window.headers["X-Total-Count"] == "2"


def test_bad_paging_parameters_are_2001(api: OcpiApi, cpo: RegisteredPartner) -> None:
    for query in ("limit=-1", "offset=x", "date_from=tomorrow"):
        reply = api.get(f"{SENDER}?{query}", token=cpo.inbound_token)
        assert reply.code == 2001, query
        assert query.split("=")[0] in reply.message


def test_version_details_list_both_token_interfaces(api: OcpiApi, cpo: RegisteredPartner) -> None:
    details = api.get("/ocpi/2.2.1", token=cpo.inbound_token).data
    tokens = {(e["role"], e["url"]) for e in details["endpoints"] if e["identifier"] == "tokens"}
    assert tokens == {
        ("SENDER", "http://testserver/ocpi/2.2.1/sender/tokens/"),
        ("RECEIVER", "http://testserver/ocpi/2.2.1/receiver/tokens/"),
    }
