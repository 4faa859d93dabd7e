"""The request journal: both directions, no token ever, bodies only on request, retention."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import httpx
import pytest

from credentials import liveness
from journal import recorder
from journal.models import Direction, Entry
from ocpi_platform import housekeeping
from ocpi_platform.ocpi.client import OcpiClient, PartnerUnavailable, use_transport
from ocpi_platform.ocpi.headers import correlation
from ocpi_platform.ocpi.types import now_utc
from tests.conftest import partner_offer

CREDENTIALS = "/ocpi/2.2.1/credentials"
pytestmark = pytest.mark.django_db

COLUMNS = [f.attname for f in Entry._meta.concrete_fields]


def stored_text() -> str:
    """Every column of every journal entry, as one text."""
    return "\n".join(str(v) for row in Entry.objects.values_list(*COLUMNS) for v in row)


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def test_an_inbound_request_is_journaled_with_partner_statuses_and_ids(api, registered):
    reply = api.get(
        "/ocpi/versions?offset=0&token=s3cret",
        token=registered.inbound_token,
        headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"},
    )

    assert reply.code == 1000
    entry = Entry.objects.get()
    assert entry.direction == Direction.IN
    assert entry.partner_id == registered.partner.pk
    assert (entry.method, entry.http_status, entry.ocpi_status) == ("GET", 200, 1000)
    assert entry.path == "/ocpi/versions?offset=0&token=%2A%2A%2A"
    assert (entry.request_id, entry.correlation_id) == ("req-1", "corr-1")
    assert entry.request_body == entry.response_body == ""
    assert "s3cret" not in stored_text()


def test_an_unknown_token_is_journaled_without_partner(api, registered):
    assert api.get("/ocpi/versions", token="not-a-token").status == 401

    entry = Entry.objects.get()
    assert (entry.partner_id, entry.http_status, entry.ocpi_status) == (None, 401, 2000)


def test_a_request_outside_ocpi_is_not_journaled(client, db):
    client.get("/admin/login/")
    assert not Entry.objects.exists()


def test_an_outbound_call_is_journaled_with_its_ids(registered, fake_partner):
    fake_partner.accepted_tokens = {registered.outbound_token}
    with correlation("corr-out"), liveness.client_for(registered.partner) as client:
        client.get("https://partner.test/ocpi/versions?limit=5")

    entry = Entry.objects.get()
    assert entry.direction == Direction.OUT
    assert entry.partner_id == registered.partner.pk
    assert entry.path == "https://partner.test/ocpi/versions?limit=5"
    assert (entry.http_status, entry.ocpi_status) == (200, 1000)
    assert entry.correlation_id == "corr-out"
    assert entry.request_id == fake_partner.requests[0].headers["X-Request-ID"]


def test_paths_lose_user_info_and_secret_query_values():
    cleaned = recorder.clean_path("https://u:pw@p.test/x?limit=5&api_key=k1&Signature=s2&offset=0")
    assert cleaned == "https://p.test/x?limit=5&api_key=%2A%2A%2A&Signature=%2A%2A%2A&offset=0"


def test_a_call_without_answer_is_journaled_with_the_reason(registered, fake_partner):
    fake_partner.fail_next(httpx.ConnectTimeout("slow"))
    with liveness.client_for(registered.partner) as client, pytest.raises(PartnerUnavailable):
        client.get(fake_partner.versions_url)

    entry = Entry.objects.get()
    assert entry.http_status is None
    assert "timed out" in entry.error


def test_the_unencoded_retry_is_journaled_as_a_second_call(registered, fake_partner):
    fake_partner.wants_plain_tokens = True
    fake_partner.accepted_tokens = {registered.outbound_token}
    with liveness.client_for(registered.partner) as client:
        client.get(fake_partner.versions_url)

    statuses = list(Entry.objects.order_by("created_at", "id").values_list("http_status", "error"))
    assert [s for s, _ in statuses] == [401, 200]
    assert "Base64" in statuses[0][1]


def test_a_registration_with_bodies_journaled_stores_no_token_anywhere(api, invited, fake_partner):
    """Both directions of a credentials exchange, bodies on: token A, the partner's token and
    the token we issued appear in no column, plain or Base64."""
    fake_partner.accepted_tokens = {"partner-token-b"}
    recorder.capture_bodies(invited.partner.pk, 15)

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer("partner-token-b"))

    assert reply.code == 1000
    token_c = reply.data["token"]
    directions = set(Entry.objects.values_list("direction", flat=True))
    assert directions == {Direction.IN, Direction.OUT}
    inbound = Entry.objects.get(direction=Direction.IN)
    assert '"token": "***"' in inbound.request_body
    assert '"token": "***"' in inbound.response_body
    assert "roles" in inbound.request_body  # the rest of the body is there
    assert Entry.objects.filter(direction=Direction.OUT).exclude(response_body="").count() == 2
    text = stored_text()
    for secret in (invited.token_a, "partner-token-b", token_c):
        assert secret not in text
        assert b64(secret) not in text


def test_a_token_echoed_outside_a_token_member_is_redacted_too(registered, fake_partner):
    recorder.capture_bodies(registered.partner.pk, 15)
    token = registered.outbound_token
    fake_partner.respond_next(200, {"status_code": 1000, "timestamp": "x", "data": f"me {token}"})
    with liveness.client_for(registered.partner) as client:
        client.get(fake_partner.versions_url)

    entry = Entry.objects.get()
    assert "***" in entry.response_body
    assert token not in stored_text()


def test_bodies_are_not_kept_once_the_capture_expired(api, registered):
    recorder.capture_bodies(registered.partner.pk, 15)
    api.get("/ocpi/versions", token=registered.inbound_token)
    recorder.stop_capture(registered.partner.pk)
    api.get("/ocpi/versions", token=registered.inbound_token)

    bodies = list(Entry.objects.order_by("id").values_list("response_body", flat=True))
    assert bodies[0] != ""
    assert bodies[1] == ""


def test_a_transport_seam_call_of_a_client_without_partner_is_journaled(db):
    transport = httpx.MockTransport(lambda r: httpx.Response(503))
    with use_transport(transport), pytest.raises(PartnerUnavailable):
        OcpiClient("tok").get("https://p.test/x")
    entry = Entry.objects.get()
    assert (entry.partner_id, entry.http_status) == (None, 503)


def aged_entry(partner, age_days: float) -> int:
    return Entry.objects.create(
        created_at=now_utc() - timedelta(days=age_days),
        partner=partner,
        direction=Direction.IN,
        method="GET",
        path="/ocpi/versions",
        duration_ms=1,
    ).pk


def test_entries_older_than_the_journal_retention_are_pruned(registered, settings):
    settings.OCPI_RETENTION_DAYS = 30
    settings.OCPI_JOURNAL_RETENTION_DAYS = 7
    old, older, recent = (aged_entry(registered.partner, age) for age in (8, 40, 6))

    report = housekeeping.prune()

    assert report.counts["journal_entries"] == 2
    assert set(Entry.objects.values_list("pk", flat=True)) == {recent}
    assert not Entry.objects.filter(pk__in=[old, older]).exists()


def test_a_shorter_prune_days_prunes_the_journal_too(registered, settings):
    settings.OCPI_JOURNAL_RETENTION_DAYS = 7
    aged_entry(registered.partner, 2)
    aged_entry(registered.partner, 0.5)

    assert housekeeping.prune(days=1).counts["journal_entries"] == 1
    assert Entry.objects.count() == 1


def test_buffered_entries_are_written_in_one_go_by_flush(api, registered, settings):
    """Production buffers entries per process (OCPI_JOURNAL_FLUSH_SECONDS); flush writes them."""
    settings.OCPI_JOURNAL_FLUSH_SECONDS = 3600  # the flusher thread will not run in this test
    for _ in range(3):
        api.get("/ocpi/versions", token=registered.inbound_token)

    assert not Entry.objects.exists()
    assert recorder.flush() == 3
    assert Entry.objects.filter(partner=registered.partner).count() == 3
    assert recorder.flush() == 0


def test_the_status_of_a_list_page_rendered_in_advance_is_journaled(registered):
    from django.http import HttpRequest

    from ocpi_platform.ocpi.envelope import raw_data_response

    response = raw_data_response("[" + ",".join(['{"id": "x"}'] * 500) + "]")
    request = HttpRequest()
    request.method, request.path = "GET", "/ocpi/2.2.1/locations"
    recorder.record_inbound(request, response, time.monotonic(), None)

    assert Entry.objects.get().ocpi_status == 1000
