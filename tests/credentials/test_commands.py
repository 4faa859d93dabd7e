"""Management commands: --json output for scripts and clear errors."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from credentials import tokens
from credentials.models import JobKind, PartnerJob

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_invite_prints_a_working_token_a_once():
    result = json.loads(run("ocpi_invite", "acme", "--json"))

    assert result["versions_url"] == "http://testserver/ocpi/versions"
    assert tokens.find_active(result["token_a"]).partner.name == "acme"
    listing = run("ocpi_partners", "--json")
    assert result["token_a"] not in listing
    assert json.loads(listing)[0]["state"] == "INVITED"


def test_partners_lists_registered_partners(registered):
    listed = json.loads(run("ocpi_partners", "--json"))

    assert listed[0]["name"] == "registered-partner"
    assert listed[0]["status"] == "CONNECTED"
    assert listed[0]["roles"] == [{"role": "EMSP", "country_code": "DE", "party_id": "XYZ"}]
    assert registered.outbound_token not in json.dumps(listed)
    assert "registered-partner" in run("ocpi_partners")


def test_connect_starts_a_job_and_validates_input(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        result = json.loads(
            run(
                "ocpi_connect",
                "acme",
                "--versions-url",
                "https://partner.test/ocpi/versions",
                "--token-a",
                "abc",
                "--json",
            )
        )
    assert result["kind"] == "CONNECT"
    assert len(callbacks) == 1
    with pytest.raises(CommandError, match="versions URL is not a valid"):
        run("ocpi_connect", "other", "--versions-url", "nope", "--token-a", "abc")


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("ocpi_rotate", JobKind.ROTATE),
        ("ocpi_unregister", JobKind.UNREGISTER),
        ("ocpi_refresh", JobKind.REFRESH),
    ],
)
def test_job_commands_need_a_registered_partner(command, kind, registered, invited):
    assert json.loads(run(command, "registered-partner", "--json"))["kind"] == kind
    assert PartnerJob.objects.filter(kind=kind).count() == 1
    with pytest.raises(CommandError, match="not registered"):
        run(command, "invited-partner")
    with pytest.raises(CommandError, match="No partner named"):
        run(command, "nobody")


def test_wait_reports_the_jobs_failure(registered, settings):
    job = PartnerJob.objects.create(partner=registered.partner, kind=JobKind.REFRESH)
    job.state, job.message = "FAILED", "The partner is unreachable."
    job.save()
    from credentials.management.base import PartnerCommand

    command = PartnerCommand(stdout=StringIO())
    with pytest.raises(CommandError, match="unreachable"):
        command.run_job({"wait": True, "timeout": 1, "json": True}, job, "started")


def test_token_values_are_not_stored_in_plain_text(registered):
    """Inbound: prefix + keyed digest only. Outbound: encrypted."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT prefix, digest FROM credentials_inboundtoken")
        rows = cursor.fetchall()
        cursor.execute(
            "SELECT outbound_token_encrypted, outbound_token_hint FROM credentials_partner"
        )
        partner_rows = cursor.fetchall()
    stored = repr(rows) + repr(partner_rows)
    assert registered.inbound_token not in stored
    assert registered.outbound_token not in stored
    assert rows[0][0] == registered.inbound_token[:8]
    assert partner_rows[0][1] == registered.outbound_token[:4]
