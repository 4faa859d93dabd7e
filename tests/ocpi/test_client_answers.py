"""Partners' answers are read within limits: size (streamed, stopped early), JSON depth and long
integers (the inbound parser's limits); URLs in messages lose their user info."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from ocpi_platform.ocpi import urlpolicy
from ocpi_platform.ocpi.client import (
    OcpiClient,
    PartnerProtocolError,
    PartnerUnavailable,
    UrlRefused,
    use_transport,
)
from ocpi_platform.ocpi.principal import TokenEncoding

OK = b'{"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": '
MiB = 1 << 20


def serve(handler):
    return use_transport(httpx.MockTransport(handler))


def get(url: str = "https://p.test/ocpi/versions", token: str = "tok"):
    with OcpiClient(token) as client:
        return client.get(url)


# --- depth and long integers ---


def test_a_deeply_nested_answer_is_a_protocol_error_not_a_recursion_error():
    body = OK + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with (
        serve(lambda r: httpx.Response(200, content=body)),
        pytest.raises(PartnerProtocolError) as failed,
    ):
        get()
    assert "deeper than" in failed.value.message
    assert "did not answer with an OCPI envelope" in failed.value.public


def test_an_unbalanced_deep_answer_is_a_protocol_error():
    with (
        serve(lambda r: httpx.Response(200, content=b"[" * 100_000)),
        pytest.raises(PartnerProtocolError),
    ):
        get()


def test_an_answer_with_a_huge_integer_is_a_protocol_error():
    with (
        serve(lambda r: httpx.Response(200, content=OK + b"1" + b"0" * 5000 + b"}")),
        pytest.raises(PartnerProtocolError, match="more than 20"),
    ):
        get()


def test_a_deep_answer_to_a_server_error_stays_transient():
    with (
        serve(lambda r: httpx.Response(503, content=b"[" * 100_000)),
        pytest.raises(PartnerUnavailable),
    ):
        get()


def test_an_answer_within_the_limits_is_read():
    with serve(lambda r: httpx.Response(200, content=OK + b"[[[1, 12345678901234567890]]]}")):
        assert get().data == [[[1, 12345678901234567890]]]


# --- size ---


class Streamed:
    """A body of ``total`` bytes in 64 KiB chunks, produced only as it is read."""

    def __init__(self, total: int, prefix: bytes = OK + b'"') -> None:
        self.total, self.prefix, self.served = total, prefix, 0

    def __iter__(self) -> Iterator[bytes]:
        yield self.prefix
        chunk = b"a" * (64 * 1024)
        while self.served < self.total:
            self.served += len(chunk)
            yield chunk
        yield b'"}'


def test_a_huge_streamed_answer_is_refused_after_the_limit(settings):
    settings.OCPI_HTTP_MAX_RESPONSE_BYTES = MiB
    body = Streamed(512 * MiB)
    with (
        serve(lambda r: httpx.Response(200, content=iter(body))),
        pytest.raises(PartnerProtocolError, match=f"answer larger than {MiB} bytes"),
    ):
        get()
    assert body.served <= MiB + 64 * 1024  # it stopped at the limit, not at 512 MiB


def test_a_declared_content_length_over_the_limit_is_refused_unread(settings):
    settings.OCPI_HTTP_MAX_RESPONSE_BYTES = MiB
    body = Streamed(512 * MiB)
    headers = {"Content-Length": str(512 * MiB)}
    with (
        serve(lambda r: httpx.Response(200, content=iter(body), headers=headers)),
        pytest.raises(PartnerProtocolError, match="answer larger than"),
    ):
        get()
    assert body.served == 0


def test_the_default_limit_is_16_mib_and_an_answer_under_it_is_read(settings):
    assert 16 * MiB == settings.OCPI_HTTP_MAX_RESPONSE_BYTES
    settings.OCPI_HTTP_MAX_RESPONSE_BYTES = 2 * MiB
    body = Streamed(MiB)
    with serve(lambda r: httpx.Response(200, content=iter(body))):
        assert len(get().data) == MiB


def test_the_plain_token_retry_and_redirects_work_with_streaming(settings):
    settings.OCPI_HTTP_MAX_RESPONSE_BYTES = MiB

    def handler(request):
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"Location": "https://elsewhere.test/"})
        if request.headers["Authorization"] != "Token tok":
            return httpx.Response(401, content=iter([b'{"status_code": 2000}']))
        return httpx.Response(200, content=iter([OK, b"[1]}"]))

    with serve(handler), OcpiClient("tok") as client:
        assert client.get("https://p.test/x").data == [1]
        assert client.encoding == TokenEncoding.PLAIN
        with pytest.raises(PartnerProtocolError, match="redirect"):
            client.get("https://p.test/moved")


def test_a_401_answer_over_the_limit_fails_the_call(settings):
    settings.OCPI_HTTP_MAX_RESPONSE_BYTES = MiB
    with (
        serve(lambda r: httpx.Response(401, content=iter(Streamed(10 * MiB)))),
        pytest.raises(PartnerProtocolError, match="answer larger than"),
    ):
        get()


# --- user info in messages ---


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cr3t@partner.test/ocpi", "https://***@partner.test/ocpi"),
        ("https://s3cr3t@partner.test", "https://***@partner.test"),
        ("https://a:b@c:s3cr3t@partner.test/x?y=z@w", "https://***@partner.test/x?y=z@w"),
        ("//user:s3cr3t@partner.test/", "//***@partner.test/"),
        ("https://partner.test/a@b", "https://partner.test/a@b"),
        ("https://partner.test/?next=https://u:p@x", "https://partner.test/?next=https://u:p@x"),
        ("/relative/path", "/relative/path"),
    ],
)
def test_redact_url_removes_the_user_info_only(url, shown):
    assert urlpolicy.redact_url(url) == shown


def test_a_url_with_a_password_is_refused_without_showing_it(caplog):
    refusals: list[UrlRefused] = []
    caplog.set_level(logging.INFO)
    with serve(lambda r: httpx.Response(200, content=OK + b"[]}")):
        client = OcpiClient("tok", on_refused=refusals.append)
        with pytest.raises(UrlRefused) as refused:
            client.get("https://user:s3cr3t@partner.test/ocpi/versions")
    for text in (refused.value.message, refused.value.public, refusals[0].message, caplog.text):
        assert "s3cr3t" not in text
    assert "https://***@partner.test/ocpi/versions" in refused.value.message


def test_a_redirect_location_with_a_password_is_not_shown():
    location = "https://admin:s3cr3t@internal.test/"
    with (
        serve(lambda r: httpx.Response(301, headers={"Location": location})),
        pytest.raises(PartnerProtocolError) as failed,
    ):
        get()
    assert "s3cr3t" not in failed.value.message
    assert "https://***@internal.test/" in failed.value.message
