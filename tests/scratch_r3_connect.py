from __future__ import annotations

import httpx
import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from django.db import connection

from credentials import handshake
from credentials.models import JobState, Partner, PartnerState
from ocpi_platform.ocpi.client import use_transport


def connect(fake):
    job = handshake.connect_partner(
        name="fake", versions_url=fake.versions_url, token_a="partner-token-a"
    )
    handshake.run_job(job.pk)
    job.refresh_from_db()
    return job


@pytest.mark.django_db
def test_soft_time_limit_during_post_leaves_token_b_active(fake_partner):
    original = fake_partner.handler

    def slow_post(request):
        if request.method == "POST":
            original(request)  # the partner registered us with token B
            raise SoftTimeLimitExceeded()
        return original(request)

    with use_transport(httpx.MockTransport(slow_post)):
        job = connect(fake_partner)
    p = Partner.objects.get(name="fake")
    active = list(p.inbound_tokens.active().values_list("kind", flat=True))
    print(
        "\nJOB",
        job.state,
        job.message,
        "| partner",
        p.state,
        "| active inbound:",
        active,
        "| methods:",
        [r.method for r in fake_partner.requests],
    )
    assert job.state == JobState.FAILED
    assert p.state == PartnerState.FAILED
    assert active == []  # expected: revoked


@pytest.mark.django_db
def test_read_timeout_on_post(fake_partner):
    original = fake_partner.handler

    def slow_post(request):
        if request.method == "POST":
            original(request)
            raise httpx.ReadTimeout("late")
        return original(request)

    with use_transport(httpx.MockTransport(slow_post)):
        job = connect(fake_partner)
    p = Partner.objects.get(name="fake")
    print(
        "\nJOB",
        job.state,
        job.message,
        "| active:",
        p.inbound_tokens.active().count(),
        [r.method for r in fake_partner.requests],
    )


@pytest.mark.django_db(transaction=True)
def test_no_http_inside_a_transaction(fake_partner):
    fake_partner.roles[0]["country_code"] = "D1"  # invalid answer -> DELETE
    original = fake_partner.handler
    seen = []

    def watch(request):
        seen.append((request.method, connection.in_atomic_block))
        return original(request)

    with use_transport(httpx.MockTransport(watch)):
        job = connect(fake_partner)
    print("\nJOB", job.state, job.message, seen)
    assert ("DELETE", False) in seen
    assert all(not atomic for _, atomic in seen)


@pytest.mark.django_db
def test_redelivered_connect_after_a_worker_loss(fake_partner):
    from credentials import tokens
    from credentials.models import PartnerJob
    from ocpi_platform.ocpi.principal import TokenKind
    from ocpi_platform.ocpi.types import now_utc

    job = handshake.connect_partner(
        name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
    )
    # The state a SIGKILL of the pool process during the POST leaves (claimed, busy, token B).
    PartnerJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, started_at=now_utc())
    Partner.objects.filter(pk=job.partner_id).update(busy_since=now_utc())
    tokens.issue_inbound_token(Partner.objects.get(pk=job.partner_id), TokenKind.REGULAR)
    handshake.run_job(job.pk)  # reject_on_worker_lost: redelivered at once
    job.refresh_from_db()
    p = Partner.objects.get(pk=job.partner_id)
    print(
        "\nREDELIVERED:",
        job.state,
        "| partner",
        p.state,
        "| active",
        p.inbound_tokens.active().count(),
    )
    try:
        handshake.connect_partner(
            name="fake", versions_url=fake_partner.versions_url, token_a="partner-token-a"
        )
    except handshake.HandshakeFailed as exc:
        print("RECONNECT:", exc.message)
    try:
        handshake.request_job(p, "UNREGISTER")
    except handshake.HandshakeFailed as exc:
        print("UNREGISTER:", exc.message)


@pytest.mark.django_db
@pytest.mark.parametrize("line", ["\n", "   \n", " tok-en-a \n", "tok-en-a\r\n", "tok-en-a"])
def test_token_a_stdin(fake_partner, line, capsys):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command(
            "ocpi_connect",
            "fake",
            "--versions-url",
            fake_partner.versions_url,
            "--token-a-stdin",
            "--json",
            stdin=io.StringIO(line),
            stdout=out,
        )
        res = "OK " + out.getvalue().replace("\n", " ")[:200]
    except CommandError as exc:
        res = "ERR " + str(exc)
    p = Partner.objects.filter(name="fake").first()
    stored = None
    if p and p.outbound_token_encrypted:
        from credentials import tokens

        stored = tokens.outbound_token(p)
    print(f"\nSTDIN {line!r}: {res} | stored={stored!r} | leaked={'tok-en-a' in res}")
