"""The outbound client: headers, envelope parsing, failure classes, paging."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import httpx
import pytest

from ocpi_platform.ocpi.client import (
    OcpiClient,
    PartnerProtocolError,
    PartnerRejected,
    PartnerUnavailable,
    parse_retry_after,
    use_transport,
)
from ocpi_platform.ocpi.headers import correlation
from ocpi_platform.ocpi.principal import TokenEncoding

OK = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"}


def serve(handler):
    return use_transport(httpx.MockTransport(handler))


def test_requests_carry_base64_token_and_ids():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={**OK, "data": [1]})

    with serve(handler), correlation("corr-1"), OcpiClient("example-token") as client:
        reply = client.get("https://p.test/x")

    assert reply.data == [1]
    assert seen[0].headers["Authorization"] == "Token ZXhhbXBsZS10b2tlbg=="
    assert seen[0].headers["X-Correlation-ID"] == "corr-1"
    assert seen[0].headers["X-Request-ID"]


def test_plain_encoding_sends_the_token_as_it_is():
    seen = []
    with serve(lambda r: seen.append(r) or httpx.Response(200, json=OK)):
        OcpiClient("tok", encoding=TokenEncoding.PLAIN).get("https://p.test/x")
    assert seen[0].headers["Authorization"] == "Token tok"


def test_401_to_base64_retries_unencoded_and_remembers():
    def handler(request):
        if request.headers["Authorization"] == "Token tok":
            return httpx.Response(200, json=OK)
        return httpx.Response(401, json={"status_code": 2000})

    with serve(handler):
        client = OcpiClient("tok")
        client.get("https://p.test/x")
    assert client.encoding == TokenEncoding.PLAIN


@pytest.mark.parametrize(
    ("response", "error", "fragment"),
    [
        (httpx.Response(500, text="down"), PartnerUnavailable, "HTTP 500"),
        (httpx.Response(429, json={"status_code": 2000}), PartnerUnavailable, "HTTP 429"),
        (
            httpx.Response(404, json={"status_code": 2000, "status_message": "nope"}),
            PartnerRejected,
            "nope",
        ),
        (
            httpx.Response(200, json={"status_code": 2001, "status_message": "bad"}),
            PartnerRejected,
            "2001",
        ),
        (httpx.Response(200, json={"status_code": 3000}), PartnerUnavailable, "3000"),
        (httpx.Response(200, json={"status_code": 4001}), PartnerRejected, "4001"),
        (httpx.Response(200, json={"status_code": 4003}), PartnerUnavailable, "4003"),
        (
            httpx.Response(200, text="<html>", headers={"Content-Type": "text/html"}),
            PartnerProtocolError,
            "text/html",
        ),
        (httpx.Response(200, json=[1, 2]), PartnerProtocolError, "not an OCPI envelope"),
        (
            httpx.Response(302, headers={"Location": "https://elsewhere"}),
            PartnerProtocolError,
            "redirect",
        ),
    ],
)
def test_failures_are_classified_once(response, error, fragment):
    with serve(lambda r: response), pytest.raises(error, match=fragment) as raised:
        OcpiClient("tok", encoding_fallback=False).get("https://p.test/x")
    assert raised.value.permanent == (error is not PartnerUnavailable)


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_network_errors_are_transient(exc):
    def handler(request):
        raise exc

    with serve(handler), pytest.raises(PartnerUnavailable):
        OcpiClient("tok").get("https://p.test/x")


def test_errors_never_contain_the_token():
    token = "super-secret-token"
    with serve(lambda r: httpx.Response(403, text="no")), pytest.raises(PartnerRejected) as raised:
        OcpiClient(token).get("https://p.test/x")
    assert token not in str(raised.value)
    assert base64.b64encode(token.encode()).decode() not in str(raised.value)


def test_iter_pages_follows_links_and_detects_loops():
    def handler(request):
        offset = int(request.url.params.get("offset", 0))
        headers = {}
        if offset < 4:
            headers["Link"] = f'<https://p.test/list?offset={offset + 2}&limit=2>; rel="next"'
        return httpx.Response(200, json={**OK, "data": [offset, offset + 1]}, headers=headers)

    with serve(handler):
        pages = [r.data for r in OcpiClient("t").iter_pages("https://p.test/list")]
    assert pages == [[0, 1], [2, 3], [4, 5]]

    def looping(request):
        return httpx.Response(
            200, json={**OK, "data": []}, headers={"Link": '<https://p.test/list>; rel="next"'}
        )

    with serve(looping), pytest.raises(PartnerProtocolError, match="loops"):
        list(OcpiClient("t").iter_pages("https://p.test/list"))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("8", 8.0),
        (" 120 ", 120.0),
        ("Tue, 01 Dec 2026 10:00:30 GMT", 30.0),
        ("Tue, 01 Dec 2026 09:59:00 GMT", 0.0),  # in the past: now
        ("99999999", 3600.0),  # capped
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header, expected):
    now = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected


def test_a_429_carries_the_partners_retry_after():
    transport = httpx.MockTransport(
        lambda request: httpx.Response(429, headers={"Retry-After": "8"}, json={})
    )
    with (
        use_transport(transport),
        OcpiClient("tok") as client,
        pytest.raises(PartnerUnavailable) as caught,
    ):
        client.get("https://partner.example/ocpi/versions")
    assert caught.value.retry_after == 8.0
    assert caught.value.http_status == 429
