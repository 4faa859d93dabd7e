"""The partner doctor against the fake partner: all PASS, and one failing verdict per broken
rule; only GETs are sent."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from journal import doctor
from journal.doctor import Verdict
from journal.models import Entry
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.principal import TokenEncoding
from tests.fakes.doctor_partner import RULES, DoctorPartner

pytestmark = pytest.mark.django_db

# The check each broken rule must fail (trailing slashes are advice: WARN).
FAILS = {
    "versions_shape": ("versions", Verdict.FAIL),
    "details_shape": ("version details", Verdict.FAIL),
    "envelope": ("envelope and timestamp", Verdict.FAIL),
    "paging_headers": ("locations list paging", Verdict.FAIL),
    "link": ("locations list paging", Verdict.FAIL),
    "date_filter": ("locations date_from", Verdict.FAIL),
    "plain_only": ("token encoding", Verdict.FAIL),
    "any_token": ("wrong token refused", Verdict.FAIL),
    "trailing_slash": ("trailing slash", Verdict.WARN),
}


def run(registered, breaks: str = "") -> tuple[doctor.Report, DoctorPartner]:
    fake = DoctorPartner(breaks=breaks, accepted_tokens={registered.outbound_token})
    if fake.wants_plain_tokens:  # the platform learned it at registration
        registered.partner.token_encoding = TokenEncoding.PLAIN
        registered.partner.save()
    with use_transport(fake.transport()):
        return doctor.diagnose(registered.partner), fake


def test_a_healthy_partner_passes_every_check(registered):
    report, fake = run(registered)

    assert [(c.name, c.verdict) for c in report.checks] == [
        ("versions", Verdict.PASS),
        ("version details", Verdict.PASS),
        ("locations list paging", Verdict.PASS),
        ("locations date_from", Verdict.PASS),
        ("token encoding", Verdict.PASS),
        ("wrong token refused", Verdict.PASS),
        ("trailing slash", Verdict.PASS),
        ("envelope and timestamp", Verdict.PASS),
    ], report.as_text()
    assert report.verdict == Verdict.PASS
    assert {r.method for r in fake.requests} == {"GET"}  # read-only
    # Every request of the doctor is in the journal.
    assert Entry.objects.filter(partner=registered.partner).count() == len(fake.requests)


def test_rules_cover_every_broken_fake():
    assert set(FAILS) == set(RULES)


@pytest.mark.parametrize("rule", RULES)
def test_a_partner_breaking_a_rule_gets_one_failing_verdict(registered, rule):
    report, _ = run(registered, rule)

    name, verdict = FAILS[rule]
    failing = [(c.name, c.verdict) for c in report.checks if c.verdict != Verdict.PASS]
    assert failing == [(name, verdict)], report.as_text()
    assert report.check(name).advice


def test_the_command_prints_json_and_fails_on_a_failing_check(registered, capsys):
    fake = DoctorPartner(breaks="date_filter", accepted_tokens={registered.outbound_token})
    with use_transport(fake.transport()), pytest.raises(CommandError, match="1 check"):
        call_command("ocpi_doctor", registered.partner.name, "--json")

    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "FAIL"
    assert {c["name"]: c["verdict"] for c in out["checks"]}["locations date_from"] == "FAIL"


def test_the_command_prints_text(registered, capsys):
    fake = DoctorPartner(accepted_tokens={registered.outbound_token})
    with use_transport(fake.transport()):
        call_command("ocpi_doctor", registered.partner.name)

    out = capsys.readouterr().out
    assert "PASS  versions:" in out
    assert "Verdict: PASS" in out
    assert registered.outbound_token not in out


def test_a_partner_not_registered_is_not_examined(invited):
    with pytest.raises(CommandError, match="not REGISTERED"):
        call_command("ocpi_doctor", invited.partner.name)
