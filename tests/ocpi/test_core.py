"""The OCPI core: envelope, datetimes, errors, headers, token-kind rules, pagination."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import RequestFactory, override_settings
from django.urls import path
from rest_framework.request import Request
from rest_framework.views import APIView

from ocpi_platform.ocpi import errors
from ocpi_platform.ocpi.envelope import ocpi_response
from ocpi_platform.ocpi.pagination import page_headers, page_request
from ocpi_platform.ocpi.parties import parse_parties
from ocpi_platform.ocpi.status import OcpiStatus
from ocpi_platform.ocpi.types import format_datetime, join_url, parse_datetime

# --- a functional-module view for the token-kind rules (the real modules come later) ----------


class FunctionalView(APIView):
    """Uses the default permission: registered partners only."""

    def get(self, request: Request):
        return ocpi_response({"partner": request.user.partner_name})


class CrashingView(APIView):
    def get(self, request: Request):
        raise RuntimeError("boom with secret details")


urlpatterns = [
    path("ocpi/2.2.1/functional", FunctionalView.as_view()),
    path("ocpi/2.2.1/crash", CrashingView.as_view()),
]


@pytest.fixture
def functional_urls(settings):
    from ocpi_platform import urls

    settings.ROOT_URLCONF = __name__
    globals()["urlpatterns"] = [*urlpatterns, *urls.urlpatterns]


# --- datetimes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC), "2015-06-29T20:39:09Z"),
        (datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC), "2016-12-29T17:45:09.200Z"),
        (datetime(2018, 1, 1, 1, 8, 1, 123456, tzinfo=UTC), "2018-01-01T01:08:01.123Z"),
        # Less than a millisecond is not sent: the partner reads back exactly this text.
        (datetime(2018, 1, 1, 1, 8, 1, 412, tzinfo=UTC), "2018-01-01T01:08:01Z"),
    ],
)
def test_datetimes_are_emitted_in_utc_with_z_and_milliseconds(value, expected):
    assert format_datetime(value) == expected
    assert len(expected) <= 25


@pytest.mark.parametrize(
    "text",
    [
        "2015-06-29T20:39:09Z",
        "2015-06-29T20:39:09",
        "2016-12-29T17:45:09.2Z",
        "2016-12-29T17:45:09.2",
        "2018-01-01T01:08:01.123Z",
        "2018-01-01T01:08:01.123456",
    ],
)
def test_every_spec_datetime_pattern_parses_as_utc(text):
    parsed = parse_datetime(text)
    assert parsed.tzinfo is UTC
    assert parsed.year in (2015, 2016, 2018)


@pytest.mark.parametrize("text", ["2015-06-29", "yesterday", "2015-06-29T20:39:09+02:00", ""])
def test_invalid_datetimes_are_refused(text):
    with pytest.raises(ValueError, match="not an OCPI DateTime"):
        parse_datetime(text)


def test_urls_are_joined_with_one_slash():
    assert join_url("https://p/ocpi/2.2.1/locations/", "NL", "ABC") == (
        "https://p/ocpi/2.2.1/locations/NL/ABC"
    )
    assert join_url("https://p/x", "/y/") == "https://p/x/y"


# --- errors and envelope -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "http", "code"),
    [
        (errors.InvalidParameters, 200, 2001),
        (errors.NotEnoughInformation, 200, 2002),
        (errors.UnknownLocation, 200, 2003),
        (errors.UnknownToken, 200, 2004),
        (errors.ServerError, 200, 3000),
        (errors.PartnerApiUnusable, 200, 3001),
        (errors.UnsupportedVersion, 200, 3002),
        (errors.NoMutualEndpoints, 200, 3003),
        (errors.HubError, 200, 4000),
        (errors.UnknownReceiver, 200, 4001),
        (errors.ForwardTimeout, 200, 4002),
        (errors.ConnectionProblem, 200, 4003),
        (errors.Unauthorized, 401, 2000),
        (errors.MethodNotAllowed, 405, 2000),
        (errors.MalformedJson, 400, 2001),
        (errors.NotFound, 404, 2000),
        (errors.BadRequest, 400, 2000),
        (errors.BadRoutingHeaders, 400, 2001),
        (errors.BodyTooLarge, 413, 2000),
    ],
)
def test_every_error_maps_to_its_spec_codes(error, http, code):
    assert (error.http_status, int(error.ocpi_status)) == (http, code)
    assert OcpiStatus(code)


def test_envelope_has_timestamp_and_omits_empty_data():
    response = ocpi_response()
    assert response.data["status_code"] == 1000
    assert "data" not in response.data
    assert response.data["timestamp"].endswith("Z")


@pytest.mark.django_db
def test_unknown_ocpi_url_answers_404_envelope_with_ids(client):
    response = client.get("/ocpi/2.2.1/nothing", headers={"X-Request-ID": "req-1"})

    assert response.status_code == 404
    assert response.json()["status_code"] == 2000
    assert response["X-Request-ID"] == "req-1"
    assert response["X-Correlation-ID"]


@pytest.mark.django_db
def test_request_and_correlation_ids_are_echoed(api, invited):
    reply = api.get(
        "/ocpi/versions",
        token=invited.token_a,
        headers={"X-Request-ID": "abc-123", "X-Correlation-ID": "corr-9"},
    )

    assert reply.headers["X-Request-ID"] == "abc-123"
    assert reply.headers["X-Correlation-ID"] == "corr-9"
    assert "OCPI-from-party-id" not in reply.headers


@pytest.mark.django_db
def test_paths_work_with_and_without_trailing_slash(api, invited):
    for path_ in ("/ocpi/versions", "/ocpi/versions/", "/ocpi/2.2.1", "/ocpi/2.2.1/"):
        reply = api.get(path_, token=invited.token_a)
        assert (reply.status, reply.code) == (200, 1000), path_


# --- versions ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_versions_and_details_need_a_token_and_list_registered_modules(api, invited):
    assert api.get("/ocpi/versions").status == 401
    versions = api.get("/ocpi/versions", token=invited.token_a)
    assert versions.data == [{"version": "2.2.1", "url": "http://testserver/ocpi/2.2.1"}]
    details = api.get("/ocpi/2.2.1", token=invited.token_a)
    assert details.data["version"] == "2.2.1"
    assert {
        "identifier": "credentials",
        "role": "SENDER",
        "url": "http://testserver/ocpi/2.2.1/credentials/",
    } in details.data["endpoints"]


# --- token kinds ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_a_outside_versions_and_credentials_answers_401(api, invited, functional_urls):
    reply = api.get("/ocpi/2.2.1/functional", token=invited.token_a)

    assert reply.status == 401
    assert "token A" in reply.message


@pytest.mark.django_db
def test_registered_token_reaches_functional_modules(api, registered, functional_urls):
    reply = api.get("/ocpi/2.2.1/functional", token=registered.inbound_token)

    assert reply.data == {"partner": "registered-partner"}


@pytest.mark.django_db
def test_registered_partner_may_send_the_token_unencoded(api, registered, functional_urls):
    reply = api.get("/ocpi/2.2.1/functional", token=registered.inbound_token, plain=True)

    assert reply.code == 1000
    registered.partner.refresh_from_db()
    assert registered.partner.token_encoding == "plain"


@pytest.mark.django_db
def test_unexpected_error_answers_3000_without_details(api, registered, functional_urls, caplog):
    reply = api.get("/ocpi/2.2.1/crash", token=registered.inbound_token)

    assert (reply.status, reply.code) == (200, 3000)
    assert "secret" not in reply.message
    assert "boom" in caplog.text  # logged for the operator


@pytest.mark.django_db
def test_no_token_value_reaches_the_log(api, invited, fake_partner, caplog):
    from tests.conftest import partner_offer

    caplog.set_level("DEBUG")
    fake_partner.accepted_tokens = {"partner-token-b"}
    reply = api.post("/ocpi/2.2.1/credentials", token=invited.token_a, body=partner_offer())
    api.get("/ocpi/versions", token="wrong-token-value")

    assert reply.code == 1000
    for secret in (invited.token_a, reply.data["token"], "partner-token-b", "wrong-token-value"):
        assert secret not in caplog.text


# --- pagination ----------------------------------------------------------------------------


@override_settings(OCPI_PUBLIC_URL="https://ocpi.example", OCPI_PAGE_LIMIT=100)
def test_pagination_headers_keep_filters_and_cap_the_limit():
    request = RequestFactory().get(
        "/ocpi/2.2.1/locations", {"limit": "2000", "date_from": "2019-01-28T12:00:00"}
    )
    page = page_request(request)

    assert (page.offset, page.limit, page.max_limit) == (0, 100, 100)
    headers = page_headers(request, page, total=250)
    assert headers["X-Total-Count"] == "250"
    assert headers["X-Limit"] == "100"
    assert headers["Link"] == (
        "<https://ocpi.example/ocpi/2.2.1/locations?date_from=2019-01-28T12%3A00%3A00"
        '&limit=100&offset=100>; rel="next"'
    )


@override_settings(OCPI_PAGE_LIMIT=100)
def test_last_page_has_no_link():
    request = RequestFactory().get("/x", {"offset": "200", "limit": "50"})
    assert "Link" not in page_headers(request, page_request(request), total=250)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"offset": "-1"}, "offset must not be negative"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"date_from": "yesterday"}, "date_from: not an OCPI DateTime"),
        (
            {"date_from": "2020-01-02T00:00:00Z", "date_to": "2020-01-01T00:00:00Z"},
            "date_from must not be after date_to",
        ),
    ],
)
def test_bad_pagination_parameters_answer_2001(query, fragment):
    with pytest.raises(errors.InvalidParameters, match=fragment):
        page_request(RequestFactory().get("/x", query))


# --- our parties ---------------------------------------------------------------------------


def test_parties_parse_and_normalise():
    parties = parse_parties("nl:abc:cpo, NL:ABC:EMSP")
    assert [str(p) for p in parties] == ["NL/ABC CPO", "NL/ABC EMSP"]


@pytest.mark.parametrize(
    "text", ["", "NL:ABC", "NLD:ABC:CPO", "NL:AB:CPO", "NL:ABC:DRIVER", "NL:ABC:CPO,nl:abc:cpo"]
)
def test_invalid_parties_are_refused(text):
    with pytest.raises(ValueError):  # noqa: PT011
        parse_parties(text)


def test_new_ids_are_random_version_4_uuids():
    import uuid

    from ocpi_platform.ocpi.headers import new_id

    ids = {new_id() for _ in range(1000)}

    assert len(ids) == 1000
    for value in list(ids)[:50]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize("value", ["abc\n", "\n", "abc\r\n", "a\x00", "é"])
def test_a_trailing_newline_is_not_printable_ascii(value):
    from ocpi_platform.ocpi.types import is_printable_ascii

    assert not is_printable_ascii(value)
    assert not is_printable_ascii(value, allow_space=True)
