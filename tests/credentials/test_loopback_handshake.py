"""The platform registers with itself: two instances in one process, over the loopback transport.

Every step is real protocol traffic through our own views and services; only sockets are missing.
"""

from __future__ import annotations

import pytest

from credentials import handshake, tokens
from credentials.models import JobKind, JobState, Partner, PartnerState
from ocpi_platform.ocpi.client import use_transport
from tests.fakes.loopback import Instance, LoopbackTransport

pytestmark = pytest.mark.django_db

ALPHA = Instance("alpha.test", "NL:AAA:CPO", "Alpha CPO")
BETA = Instance("beta.test", "DE:BBB:EMSP,DE:BBB:NSP", "Beta eMSP")


@pytest.fixture
def loopback():
    transport = LoopbackTransport(ALPHA, BETA)
    with use_transport(transport):
        yield transport


def run(instance: Instance, job_id: int) -> None:
    with instance.settings():
        handshake.run_job(job_id)


def connect(initiator: Instance, issuer: Instance, *, as_name: str, issuer_calls_us: str):
    """issuer invites, initiator connects; returns (partner at initiator, partner at issuer)."""
    with issuer.settings():
        at_issuer, token_a = handshake.invite_partner(name=issuer_calls_us)
    with initiator.settings():
        job = handshake.connect_partner(
            name=as_name, versions_url=issuer.versions_url, token_a=token_a
        )
    run(initiator, job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.message
    return Partner.objects.get(name=as_name), Partner.objects.get(pk=at_issuer.pk), token_a


def parties(partner: Partner) -> set[str]:
    return {f"{r.country_code}/{r.party_id} {r.role}" for r in partner.roles.all()}


@pytest.mark.parametrize(("initiator", "issuer"), [(ALPHA, BETA), (BETA, ALPHA)])
def test_two_instances_register_in_either_direction(loopback, initiator, issuer):
    at_initiator, at_issuer, token_a = connect(
        initiator, issuer, as_name="issuer", issuer_calls_us="initiator"
    )

    assert at_initiator.state == at_issuer.state == PartnerState.REGISTERED
    assert parties(at_initiator) == {
        f"{p.split(':')[0]}/{p.split(':')[1]} {p.split(':')[2]}" for p in issuer.parties.split(",")
    }
    assert parties(at_issuer) == {
        f"{p.split(':')[0]}/{p.split(':')[1]} {p.split(':')[2]}"
        for p in initiator.parties.split(",")
    }
    assert at_initiator.versions_url == issuer.versions_url
    assert at_issuer.versions_url == initiator.versions_url
    credentials_url = f"{issuer.public_url}/ocpi/2.2.1/credentials/"
    assert at_initiator.endpoint_url("credentials") == credentials_url
    # Token A is gone; each side holds a working token for the other.
    assert tokens.find_active(token_a) is None
    assert tokens.find_active(tokens.outbound_token(at_initiator)).partner == at_issuer
    assert tokens.find_active(tokens.outbound_token(at_issuer)).partner == at_initiator
    # The callback happened during the POST: versions and details of the initiator.
    methods = loopback.calls
    post = methods.index(("POST", credentials_url))
    assert ("GET", initiator.versions_url) in methods[post + 1 :]


def test_rotate_refresh_and_unregister_between_instances(loopback):
    at_alpha, at_beta, _ = connect(ALPHA, BETA, as_name="beta", issuer_calls_us="alpha")
    old_alpha_token = tokens.outbound_token(at_alpha)

    with BETA.settings():
        rotate = handshake.request_job(at_beta, JobKind.ROTATE)
    run(BETA, rotate.pk)
    rotate.refresh_from_db()
    assert rotate.state == JobState.SUCCEEDED, rotate.message

    at_alpha.refresh_from_db()
    assert tokens.outbound_token(at_alpha) != old_alpha_token
    for instance, partner in ((ALPHA, at_alpha), (BETA, at_beta)):
        with instance.settings():
            job = handshake.request_job(partner, JobKind.REFRESH)
        run(instance, job.pk)
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED, job.message

    with ALPHA.settings():
        bye = handshake.request_job(at_alpha, JobKind.UNREGISTER)
    run(ALPHA, bye.pk)
    bye.refresh_from_db()
    assert bye.state == JobState.SUCCEEDED, bye.message
    assert Partner.objects.get(pk=at_alpha.pk).state == PartnerState.UNREGISTERED
    assert Partner.objects.get(pk=at_beta.pk).state == PartnerState.UNREGISTERED
    assert not at_beta.inbound_tokens.active().exists()
    assert not at_alpha.inbound_tokens.active().exists()


def test_an_instance_cannot_register_a_party_twice(loopback):
    connect(ALPHA, BETA, as_name="beta", issuer_calls_us="alpha")
    with BETA.settings():
        _, token_a = handshake.invite_partner(name="alpha-again")
    with ALPHA.settings():
        job = handshake.connect_partner(
            name="beta-again", versions_url=BETA.versions_url, token_a=token_a
        )
    run(ALPHA, job.pk)
    job.refresh_from_db()

    assert job.state == JobState.FAILED
    assert "NL/AAA CPO is already registered by another connection" in job.message
