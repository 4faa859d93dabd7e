"""We register with a partner (connect job): its answer is validated leniently for optional
parts, and a registration that fails after the partner returned its token is undone there.

Item 17: a partner without a logo that sends ``logo: {url: null, ...}`` is still registered
(the logo is left out and recorded). Whatever fails once the partner answered our POST revokes
our TOKEN_B, marks us FAILED and sends the partner a DELETE with the token it returned.
Item 16: a party that another connection registers meanwhile is refused cleanly (not an
"Internal error"), with the same cleanup.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from django.db import connection as default_connection
from django.db import connections, transaction

from credentials import handshake
from credentials.models import (
    Initiative,
    JobState,
    Partner,
    PartnerEvent,
    PartnerRole,
    PartnerState,
)
from ocpi_platform.ocpi.client import use_transport
from tests.conftest import b64, make_registered
from tests.fakes.partner import envelope

NO_LOGO = {"url": None, "thumbnail": None, "category": "OPERATOR", "type": "png"}


def connect(fake):
    job = handshake.connect_partner(
        name="fake", versions_url=fake.versions_url, token_a="partner-token-a"
    )
    handshake.run_job(job.pk)
    job.refresh_from_db()
    return job


def events(kind: str) -> list[str]:
    return list(
        PartnerEvent.objects.filter(partner__name="fake", kind=kind).values_list(
            "message", flat=True
        )
    )


def deletes(fake) -> list:
    return [r for r in fake.requests if r.method == "DELETE"]


def assert_undone(fake, job) -> None:
    """Our side failed with our token revoked; the partner was told with its own token."""
    assert job.state == JobState.FAILED
    partner = Partner.objects.get(name="fake")
    assert partner.state == PartnerState.FAILED
    assert not partner.inbound_tokens.active().exists()
    assert not partner.roles.exists()
    [delete] = deletes(fake)
    assert delete.url == fake.credentials_url
    assert delete.headers["Authorization"] == "Token " + b64(fake.issued[0])
    assert "We unregistered at the partner again." in job.message
    assert events("remote_unregistered") == ["We unregistered at the partner again."]


# --- 17: invalid optional fields are left out -----------------------------------------------------


@pytest.mark.django_db
def test_a_logo_without_url_is_left_out_and_the_registration_succeeds(fake_partner):
    fake_partner.roles[0]["business_details"] = {
        "name": "Fake eMSP",
        "website": "https://fake.example.com",
        "logo": NO_LOGO,
    }

    job = connect(fake_partner)

    assert job.state == JobState.SUCCEEDED, job.message
    partner = Partner.objects.get(name="fake")
    assert partner.state == PartnerState.REGISTERED
    assert partner.roles.get().business_details == {
        "name": "Fake eMSP",
        "website": "https://fake.example.com",
    }
    [warning] = events("credentials_warning")
    assert "roles[0].business_details.logo left out" in warning
    assert "url" in warning
    assert deletes(fake_partner) == []


@pytest.mark.django_db
def test_an_invalid_website_and_logo_size_are_left_out_the_rest_is_kept(fake_partner):
    logo = {"url": "https://fake.example.com/l.png", "category": "OPERATOR", "type": "png"}
    fake_partner.roles[0]["business_details"] = {
        "name": "Fake eMSP",
        "website": "not a url",
        "logo": {**logo, "width": -5},
    }

    job = connect(fake_partner)

    assert job.state == JobState.SUCCEEDED, job.message
    details = Partner.objects.get(name="fake").roles.get().business_details
    assert details == {"name": "Fake eMSP", "logo": logo}
    [warning] = events("credentials_warning")
    assert "business_details.website left out" in warning
    assert "business_details.logo.width left out" in warning


@pytest.mark.django_db
def test_an_invalid_required_field_fails_and_the_partner_is_told(fake_partner):
    fake_partner.roles[0]["party_id"] = "TOOLONG"

    job = connect(fake_partner)

    assert "party_id" in job.message
    assert_undone(fake_partner, job)


@pytest.mark.django_db
def test_a_missing_business_name_fails_even_with_a_logo_left_out(fake_partner):
    fake_partner.roles[0]["business_details"] = {"logo": NO_LOGO}

    job = connect(fake_partner)

    assert "business_details.name" in job.message
    assert_undone(fake_partner, job)


@pytest.mark.django_db
def test_an_answer_without_a_usable_token_cannot_be_undone_and_says_so(fake_partner):
    original = fake_partner.handler

    def answer_without_token(request):
        if request.method == "POST":
            original(request)
            return httpx.Response(200, json=envelope({"url": fake_partner.versions_url}))
        return original(request)

    with use_transport(httpx.MockTransport(answer_without_token)):
        job = connect(fake_partner)

    assert job.state == JobState.FAILED
    assert "could not be told" in job.message
    assert deletes(fake_partner) == []
    assert not Partner.objects.get(name="fake").inbound_tokens.active().exists()
    assert len(events("remote_unregister_failed")) == 1


@pytest.mark.django_db
def test_a_failing_delete_is_reported_and_never_raises(fake_partner):
    fake_partner.roles[0]["country_code"] = "D1"
    original = fake_partner.handler

    def delete_fails(request):
        if request.method == "DELETE":
            raise httpx.ConnectError("refused")
        return original(request)

    with use_transport(httpx.MockTransport(delete_fails)):
        job = connect(fake_partner)

    assert job.state == JobState.FAILED
    assert "Unregistering at the partner failed too" in job.message
    assert Partner.objects.get(name="fake").state == PartnerState.FAILED
    [failed] = events("remote_unregister_failed")
    assert "refused" in failed
    assert fake_partner.issued[0] not in job.message


@pytest.mark.django_db
def test_a_crash_after_the_answer_still_undoes_the_remote_registration(fake_partner, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(handshake, "_mark_registered", crash)

    job = connect(fake_partner)

    assert job.message.startswith("Internal error (RuntimeError)")
    assert_undone(fake_partner, job)


# --- 16: the party is registered by another connection meanwhile ------------------------------


@pytest.mark.django_db
def test_a_party_taken_between_check_and_store_is_refused_cleanly(fake_partner, monkeypatch):
    """The check passed, then another connection stored the party: the unique constraint
    refuses our row. That ends as a clear refusal, not as an internal error."""
    make_registered("other", country_code="DE", party_id="XYZ", role="EMSP")
    monkeypatch.setattr(handshake, "check_parties_available", lambda partner, parties: None)

    job = connect(fake_partner)

    assert "Internal error" not in job.message
    assert "DE/XYZ EMSP" in job.message
    assert "just registered by another connection" in job.message
    assert_undone(fake_partner, job)
    assert PartnerRole.objects.get().partner.name == "other"


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_registration_of_the_same_party_is_refused_cleanly(fake_partner):
    """Real concurrency on PostgreSQL: while our POST is answered, another connection's
    transaction inserts the same party and commits only once our insert waits for it."""
    inserted = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def other_connection() -> None:
        try:
            with transaction.atomic():
                other = Partner.objects.create(
                    name="other", state=PartnerState.REGISTERED, initiated_by=Initiative.PARTNER
                )
                PartnerRole.objects.create(
                    partner=other, role="EMSP", country_code="DE", party_id="XYZ"
                )
                inserted.set()
                release.wait(20)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    original = fake_partner.handler

    def answer_while_the_other_inserts(request):
        if request.method == "POST":
            thread.start()
            assert inserted.wait(10)
        return original(request)

    def release_once_we_wait() -> None:
        # Our INSERT blocks on the other transaction's uncommitted row: then let it commit.
        try:
            with default_connection.cursor() as cursor:
                for _ in range(200):
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                    if cursor.fetchone()[0]:
                        break
                    threading.Event().wait(0.05)
        finally:
            release.set()
            connections.close_all()

    thread = threading.Thread(target=other_connection)
    watcher = threading.Thread(target=lambda: (inserted.wait(10), release_once_we_wait()))
    watcher.start()
    try:
        with use_transport(httpx.MockTransport(answer_while_the_other_inserts)):
            job = connect(fake_partner)
    finally:
        release.set()
        watcher.join(10)
        thread.join(10)
    assert errors == []

    assert "Internal error" not in job.message
    assert "just registered by another connection" in job.message
    assert_undone(fake_partner, job)
    assert PartnerRole.objects.get().partner.name == "other"


# --- the same leniency when the partner registers with us -----------------------------------


@pytest.mark.django_db
def test_a_partner_registering_with_a_logo_without_url_is_registered_with_a_warning(
    api, invited, fake_partner
):
    from tests.conftest import partner_offer

    fake_partner.accepted_tokens = {"partner-token-b"}
    role = {
        "role": "EMSP",
        "party_id": "XYZ",
        "country_code": "DE",
        "business_details": {"name": "Fake eMSP", "logo": NO_LOGO},
    }

    reply = api.post(
        "/ocpi/2.2.1/credentials", token=invited.token_a, body=partner_offer(roles=[role])
    )

    assert (reply.status, reply.code) == (200, 1000), reply.body
    partner = Partner.objects.get(pk=invited.partner.pk)
    assert partner.state == PartnerState.REGISTERED
    assert partner.roles.get().business_details == {"name": "Fake eMSP"}
    [warning] = PartnerEvent.objects.filter(partner=partner, kind="credentials_warning")
    assert "roles[0].business_details.logo left out" in warning.message
