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
    parse_next_link,
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
        ("99999999", 1800.0),  # capped
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


# --- paging: relative links, a list that shrinks mid-crawl ----------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '</ocpi/2.2.1/sender/locations?offset=2&limit=2>; rel="next"',
            "https://p.test/ocpi/2.2.1/sender/locations?offset=2&limit=2",
        ),
        ('<?offset=2>; rel="next"', "https://p.test/ocpi/2.2.1/sender/locations?offset=2"),
        ("<page2>; rel=next", "https://p.test/ocpi/2.2.1/sender/page2"),
        (
            '<https://p.test/a?offset=0>; rel="prev", </a?offset=4>; title="x"; rel="next"',
            "https://p.test/a?offset=4",
        ),
        ('<https://other.test/x>; rel="next last"', "https://other.test/x"),
        ('</a?offset=4>; rel="prev"', None),
        ("", None),
    ],
)
def test_a_next_link_is_found_and_resolved_against_the_request_url(header, expected):
    base = "https://p.test/ocpi/2.2.1/sender/locations?date_from=2026-01-01T00:00:00Z"
    assert parse_next_link(header, base=base) == expected


@pytest.mark.parametrize(
    "link",
    [
        '</ocpi/2.2.1/sender/locations?offset={offset}&limit=2>; rel="next"',
        '<?offset={offset}&limit=2>; rel="next"',
    ],
    ids=["absolute-path", "query-only"],
)
def test_iter_pages_follows_relative_links_on_the_same_host(link):
    fetched = []

    def handler(request):
        fetched.append(str(request.url))
        offset = int(request.url.params.get("offset", 0))
        headers = {"Link": link.format(offset=offset + 2)} if offset < 4 else {}
        return httpx.Response(200, json={**OK, "data": [offset, offset + 1]}, headers=headers)

    start = "https://p.test/ocpi/2.2.1/sender/locations"
    with serve(handler):
        pages = [r.data for r in OcpiClient("t").iter_pages(start)]

    assert pages == [[0, 1], [2, 3], [4, 5]]
    assert fetched == [start, f"{start}?offset=2&limit=2", f"{start}?offset=4&limit=2"]


class ShrinkingList:
    """A sender paging ``items`` by offset/limit; ``after_request`` edits the list mid-crawl."""

    def __init__(self, items, *, page_size=3, after_request=None, by_offset=True):
        self.items = list(items)
        self.page_size = page_size
        self.after_request = after_request or {}
        self.by_offset = by_offset
        self.fetched: list[str] = []

    def handler(self, request):
        self.fetched.append(str(request.url))
        if self.by_offset:
            offset = int(request.url.params.get("offset", 0))
        else:  # paged by page number, no offset in the URL
            offset = int(request.url.params.get("page", 0)) * self.page_size
        page = self.items[offset : offset + self.page_size]
        headers = {"X-Total-Count": str(len(self.items))}
        if offset + self.page_size < len(self.items):
            if self.by_offset:
                target = f"?offset={offset + self.page_size}&limit={self.page_size}"
            else:
                target = f"?page={offset // self.page_size + 1}"
            headers["Link"] = f'<{target}>; rel="next"'
        edit = self.after_request.pop(len(self.fetched), None)
        if edit:
            edit(self.items)
        return httpx.Response(200, json={**OK, "data": page}, headers=headers)

    def crawl(self, **kwargs):
        with serve(self.handler):
            return [r.data for r in OcpiClient("t").iter_pages("https://p.test/list", **kwargs)]


def test_a_list_that_shrinks_mid_crawl_is_read_again_from_earlier_so_nothing_is_skipped():
    # After the first page (0, 1, 2) object 1 leaves the list: 3 moves to offset 2.
    sender = ShrinkingList(range(10), after_request={1: lambda items: items.remove(1)})

    pages = sender.crawl()

    # The page at offset 3 announced 9 instead of 10: it is dropped and offset 2 read instead.
    assert [query(u) for u in sender.fetched] == [
        {},
        {"offset": "3", "limit": "3"},
        {"offset": "2", "limit": "3"},
        {"offset": "5", "limit": "3"},
        {"offset": "8", "limit": "3"},
    ]
    assert pages == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # 3 is not skipped


def test_a_drop_larger_than_a_page_reads_again_from_further_back():
    sender = ShrinkingList(
        range(12), after_request={2: lambda items: items.__delitem__(slice(0, 5))}
    )

    pages = sender.crawl()

    seen = {i for page in pages for i in page}
    assert set(range(5, 12)) <= seen  # everything still listed was read
    assert query(sender.fetched[3]) == {"offset": "1", "limit": "3"}  # 6 - 5 dropped


def test_a_shrinking_list_paged_without_offset_redoes_the_previous_get():
    sender = ShrinkingList(
        range(9), after_request={2: lambda items: items.remove(0)}, by_offset=False
    )

    pages = sender.crawl()

    assert [query(u) for u in sender.fetched] == [
        {},
        {"page": "1"},
        {"page": "2"},  # announces 8: dropped, the previous GET is redone
        {"page": "1"},
        {"page": "2"},
    ]
    assert set(range(1, 9)) <= {i for page in pages for i in page}


def test_a_total_that_keeps_dropping_stops_the_crawl():
    sender = ShrinkingList(range(1000), page_size=2)
    sender.after_request = {n: (lambda items: items.pop()) for n in range(1, 100)}

    with pytest.raises(PartnerProtocolError, match="dropped 4 times"):
        sender.crawl(max_rereads=3)
    assert len(sender.fetched) < 20


def test_a_resumed_crawl_compares_with_the_total_announced_before():
    sender = ShrinkingList(range(1, 10))  # 10 objects when the crawl stopped; 0 left since

    with serve(sender.handler):
        client = OcpiClient("t")
        pages = [r.data for r in client.iter_pages("https://p.test/list?offset=3", total=10)]

    assert query(sender.fetched[1]) == {"offset": "2"}
    assert pages[0] == [3, 4, 5]
    # Nothing is re-read when the first page (offset 0) announces fewer.
    sender.fetched.clear()
    assert sender.crawl(total=10)[0] == [1, 2, 3]
    assert len(sender.fetched) == 3


def query(url):
    return dict(httpx.URL(url).params)


@pytest.mark.parametrize(
    ("status", "body", "unknown"),
    [
        (404, {"status_code": 2000, "timestamp": "2026-01-01T00:00:00Z"}, True),
        (404, {"error": "not an envelope"}, True),
        (200, {"status_code": 2003, "timestamp": "2026-01-01T00:00:00Z"}, True),
        (404, {"status_code": 4001, "timestamp": "2026-01-01T00:00:00Z"}, False),
        (404, {"status_code": "4003", "timestamp": "2026-01-01T00:00:00Z"}, False),
        (400, {"status_code": 2001, "timestamp": "2026-01-01T00:00:00Z"}, False),
        (404, {"status_code": -4001, "timestamp": "2026-01-01T00:00:00Z"}, True),  # implausible
        (401, {"status_code": 2003, "timestamp": "2026-01-01T00:00:00Z"}, False),  # the caller
        (403, {"status_code": 2003, "timestamp": "2026-01-01T00:00:00Z"}, False),
    ],
)
def test_a_refusal_says_unknown_object_only_for_404_or_2003_not_for_a_hub_error(
    status, body, unknown
):
    with (
        serve(lambda request: httpx.Response(status, json=body)),
        OcpiClient("tok") as client,
        pytest.raises(PartnerRejected) as caught,
    ):
        client.get("https://partner.example/ocpi/2.2.1/locations/LOC1")
    assert caught.value.unknown_object is unknown
    code = int(body.get("status_code", 0))
    assert caught.value.ocpi_status == (code if 1000 <= code <= 9999 else None)


@pytest.mark.parametrize("code", [-1, 99999999999, 0, 999, "1000x", None, True])
def test_a_success_answer_with_an_implausible_status_code_is_a_protocol_error(code):
    body = {"status_code": code, "timestamp": "2026-01-01T00:00:00Z"}
    with (
        serve(lambda request: httpx.Response(200, json=body)),
        OcpiClient("tok") as client,
        pytest.raises(PartnerProtocolError) as caught,
    ):
        client.get("https://partner.example/ocpi/2.2.1/locations")
    assert caught.value.ocpi_status is None
    assert "not an OCPI status" in caught.value.message
