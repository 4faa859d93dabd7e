"""Request bodies under /ocpi/: size (Content-Length and chunked), JSON nesting, huge integers,
NaN, lone surrogates. Every refusal is the envelope with a message that names the problem."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory
from django.test.client import ClientHandler

from locations.models import Location
from ocpi_platform.ocpi.envelope import envelope, handler400, json_depth, parse_json_body
from ocpi_platform.ocpi.errors import MalformedJson
from tests.conftest import b64
from tests.locations.conftest import RECEIVER, example

LOC = f"{RECEIVER}/BE/BEC/LOC1"


class CountingInput:
    """A wsgi.input that records how many bytes were read from it."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.read_bytes += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - not used by JSON bodies
        return self.stream.readline(size)


def wsgi(
    method: str,
    path: str,
    body: CountingInput,
    *,
    token: str | None = None,
    content_length: int | None = None,
    chunked: bool = False,
) -> tuple[int, dict[str, Any], Any]:
    """One request through the whole Django stack (every middleware), with the environ built
    here: without CONTENT_LENGTH when ``content_length`` is None, like gunicorn for a chunked
    body."""
    environ = RequestFactory()._base_environ(
        PATH_INFO=path,
        REQUEST_METHOD=method,
        CONTENT_TYPE="application/json",
        HTTP_X_REQUEST_ID="req-1",
        **{"wsgi.input": body},
    )
    environ.pop("CONTENT_LENGTH", None)
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Token {b64(token)}"
    response = ClientHandler(enforce_csrf_checks=False)(environ)
    return response.status_code, json.loads(response.content), response


# --- size ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(cpo, settings):
    settings.OCPI_MAX_BODY_BYTES = 1000
    body = CountingInput(b"[" + b"1," * 10_000_000 + b"1]")  # 20 MB

    status, reply, response = wsgi(
        "PUT", LOC, body, token=cpo.inbound_token, content_length=20_000_002
    )

    assert (status, reply["status_code"]) == (413, 2000)
    assert "larger than 1000 bytes" in reply["status_message"]
    assert body.read_bytes == 0
    assert response["X-Request-ID"] == "req-1"


@pytest.mark.django_db
def test_a_chunked_body_without_content_length_is_read(cpo):
    data = json.dumps(example()).encode()

    status, reply, _ = wsgi("PUT", LOC, CountingInput(data), token=cpo.inbound_token, chunked=True)

    assert (status, reply["status_code"]) == (201, 1000), reply
    assert Location.objects.filter(location_id="LOC1").exists()


@pytest.mark.django_db
def test_a_chunked_body_over_the_limit_stops_being_read_at_the_limit(cpo, settings):
    settings.OCPI_MAX_BODY_BYTES = 100_000
    body = CountingInput(b" " * 5_000_000)

    status, reply, _ = wsgi("PUT", LOC, body, token=cpo.inbound_token, chunked=True)

    assert (status, reply["status_code"]) == (413, 2000)
    assert body.read_bytes <= 100_001


@pytest.mark.django_db
def test_a_content_length_that_is_not_a_number_is_a_400_envelope(cpo):
    environ_length = "12x"
    factory = RequestFactory()
    environ = factory._base_environ(
        PATH_INFO=LOC,
        REQUEST_METHOD="PUT",
        CONTENT_LENGTH=environ_length,
        HTTP_AUTHORIZATION=f"Token {b64(cpo.inbound_token)}",
        **{"wsgi.input": io.BytesIO(b"{}")},
    )
    response = ClientHandler()(environ)
    reply = json.loads(response.content)

    assert (response.status_code, reply["status_code"]) == (400, 2000)
    assert "Content-Length" in reply["status_message"]


def test_djangos_own_body_limit_is_answered_with_the_envelope_under_ocpi():
    request = RequestFactory().put(LOC)

    response = handler400(request, RequestDataTooBig("too big"))

    assert response.status_code == 413
    assert json.loads(response.content)["status_code"] == 2000


# --- the parser --------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": [1, {"b": "[[[[\\"]]]]"}]}') == 3
    assert json_depth(nested(7)) == 7


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_nesting_is_a_400_2001(api, cpo, depth):
    reply = api.put(LOC, token=cpo.inbound_token, raw=nested(depth))

    assert (reply.status, reply.code) == (400, 2001), reply.body
    assert "deeper than 64 levels" in reply.message


def test_nesting_up_to_the_limit_parses(settings):
    settings.OCPI_MAX_JSON_DEPTH = 5
    assert parse_json_body(nested(5)) == [[[[[]]]]]
    with pytest.raises(MalformedJson):
        parse_json_body(nested(6))


@pytest.mark.django_db
@pytest.mark.parametrize("digits", [21, 5000, 100_000])
def test_integers_of_too_many_digits_are_a_400_2001(api, cpo, digits):
    body = example()
    body["evses"][0]["connectors"][0]["max_voltage"] = "@@"
    raw = json.dumps(body).replace('"@@"', "9" * digits)

    reply = api.put(LOC, token=cpo.inbound_token, raw=raw)

    assert (reply.status, reply.code) == (400, 2001), reply.body
    assert "more than 20 digits" in reply.message
    assert not Location.objects.exists()


def test_long_fractions_and_exponents_are_not_integers():
    assert parse_json_body(b"[0.1234567890123456789012345, 1e-1234567890123456789012]") == [
        0.1234567890123456789012345,
        0.0,
    ]
    assert parse_json_body(b'{"n": "123456789012345678901234567890"}')  # a string, not a number


def test_large_but_sane_integers_and_negative_ones_parse():
    assert parse_json_body(b"[12345678901234567890, -12345678901234567890]") == [
        12345678901234567890,
        -12345678901234567890,
    ]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant):
    with pytest.raises(MalformedJson, match="not a JSON value"):
        parse_json_body(f'{{"a": {constant}}}'.encode())


@pytest.mark.django_db
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\ud83dy", "\\ude00\\ud83d"])
def test_a_lone_surrogate_is_a_400_2001_that_does_not_echo_it(api, cpo, escape):
    body = example()
    body["name"] = "@@"
    raw = json.dumps(body).replace("@@", escape)

    reply = api.put(LOC, token=cpo.inbound_token, raw=raw)

    assert (reply.status, reply.code) == (400, 2001), reply.body
    assert "lone UTF-16 surrogate" in reply.message
    assert not Location.objects.exists()


@pytest.mark.django_db
def test_a_paired_surrogate_escape_is_text(api, cpo):
    body = example()
    body["name"] = "@@"
    raw = json.dumps(body).replace("@@", "Gent \\ud83d\\ude00")

    reply = api.put(LOC, token=cpo.inbound_token, raw=raw)

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert Location.objects.get().name == "Gent \U0001f600"


def test_an_escaped_backslash_before_u_is_not_a_surrogate():
    assert parse_json_body(b'["\\\\ud800"]') == ["\\ud800"]


def test_a_message_quoting_a_lone_surrogate_is_still_encodable():
    body = envelope(message="bad value '\ud800'")
    assert json.dumps(body, ensure_ascii=False).encode("utf-8")


@pytest.mark.django_db
def test_a_large_location_under_the_limit_is_stored_whatever_djangos_upload_limit(api, cpo):
    """3 MB: over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), under OCPI_MAX_BODY_BYTES."""
    body = example()
    body["directions"] = [{"language": "en", "text": f"{i:05d} " + "x" * 500} for i in range(6000)]
    raw = json.dumps(body)
    assert 2_621_440 < len(raw) < 4 * 1024 * 1024

    reply = api.put(LOC, token=cpo.inbound_token, raw=raw)

    assert (reply.status, reply.code) == (201, 1000), reply.body
    assert len(Location.objects.get().directions) == 6000
