"""Push (we are the hub): every status change of a connection is PUT, through the outbox, to
every other reachable partner with a hubclientinfo RECEIVER endpoint; a partner that is back, or
new, gets the ClientInfo of every other connection.

Rows are sent by calling ``outbox.services.drain`` directly (no worker); the receiving
platforms live behind an ``httpx.MockTransport`` (``recorder``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from credentials import liveness
from credentials.models import ConnectionStatus, Partner, PartnerEndpoint, PartnerState
from hubclientinfo import services
from ocpi_platform.ocpi.types import format_datetime
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from tests.conftest import RegisteredPartner, b64
from tests.hubclientinfo.conftest import MODULE, client_url, connection
from tests.outbox.test_push import scheduled

pytestmark = pytest.mark.django_db

ROUTING = (
    "ocpi-from-country-code",
    "ocpi-from-party-id",
    "ocpi-to-country-code",
    "ocpi-to-party-id",
)
EARLIER = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class Net:
    subject: RegisteredPartner  # NL/PPP CPO: the partner whose status changes
    alpha: RegisteredPartner  # DE/AAA CPO, receiver endpoint
    bravo: RegisteredPartner  # FR/BBB EMSP, receiver endpoint with a trailing slash
    charlie: RegisteredPartner  # IT/CCC EMSP, a hubclientinfo SENDER endpoint only
    delta: RegisteredPartner  # ES/DDD EMSP, receiver endpoint, OFFLINE
    echo: RegisteredPartner  # PT/EEE NSP, receiver endpoint, SUSPENDED
    invited: RegisteredPartner  # BE/INV CPO, receiver endpoint, only invited (PLANNED)

    @property
    def everyone(self) -> list[RegisteredPartner]:
        return [
            self.subject,
            self.alpha,
            self.bravo,
            self.charlie,
            self.delta,
            self.echo,
            self.invited,
        ]


def build_net() -> Net:
    net = Net(
        subject=connection(
            "subject",
            "NL",
            "PPP",
            "CPO",
            receiver_url=client_url("subject.test"),
            status_since=EARLIER,
        ),
        alpha=connection("alpha", "DE", "AAA", "CPO", receiver_url=client_url("alpha.test")),
        bravo=connection("bravo", "FR", "BBB", "EMSP", receiver_url=client_url("bravo.test") + "/"),
        charlie=connection("charlie", "IT", "CCC", "EMSP"),
        delta=connection(
            "delta",
            "ES",
            "DDD",
            "EMSP",
            receiver_url=client_url("delta.test"),
            status=ConnectionStatus.OFFLINE,
        ),
        echo=connection(
            "echo",
            "PT",
            "EEE",
            "NSP",
            receiver_url=client_url("echo.test"),
            status=ConnectionStatus.SUSPENDED,
        ),
        invited=connection("invited", "BE", "INV", "CPO", receiver_url=client_url("inv.test")),
    )
    PartnerEndpoint.objects.create(
        partner=net.charlie.partner, identifier=MODULE, role="SENDER", url=client_url("c.test")
    )
    Partner.objects.filter(pk=net.invited.partner.pk).update(
        state=PartnerState.INVITED, status=ConnectionStatus.PLANNED
    )
    return net


@pytest.fixture
def net(we_are_hub: None) -> Net:
    return build_net()


def hci_rows(partner: RegisteredPartner | None = None, **filters: Any) -> list[Delivery]:
    qs = Delivery.objects.filter(module=MODULE, **filters).order_by("id")
    if partner is not None:
        qs = qs.filter(partner=partner.partner)
    return list(qs)


def fresh(partner: RegisteredPartner) -> Partner:
    return Partner.objects.get(pk=partner.partner.pk)


def expected_info(partner: RegisteredPartner, role: str | None = None) -> dict[str, Any]:
    p = fresh(partner)
    row = p.roles.get(role=role) if role else p.roles.get()
    return {
        "party_id": row.party_id,
        "country_code": row.country_code,
        "role": row.role,
        "status": p.status,
        "last_updated": format_datetime(p.status_since or p.created_at),
    }


def settle() -> None:
    Delivery.objects.update(state=DeliveryState.SENT)


# --- rows written with the change ---------------------------------------------------------------


def test_a_status_change_is_put_to_every_other_reachable_receiver(
    net, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        assert liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "test")

    subject = fresh(net.subject)
    assert subject.status == ConnectionStatus.OFFLINE
    body = {
        "party_id": "PPP",
        "country_code": "NL",
        "role": "CPO",
        "status": "OFFLINE",
        "last_updated": format_datetime(subject.status_since),
    }
    written = hci_rows()
    assert [r.partner_id for r in written] == [net.alpha.partner.pk, net.bravo.partner.pk]
    for row in written:
        assert (row.module, row.method, row.path, row.key) == (
            MODULE,
            "PUT",
            "NL/PPP",
            "NL/PPP/CPO",
        )
        assert row.body == body
        assert (row.state, row.changes) == (DeliveryState.PENDING, 1)
        # A configuration module: no routing headers will be sent.
        assert (row.from_country_code, row.from_party_id) == ("", "")
        assert (row.to_country_code, row.to_party_id) == ("", "")
    drains = {pid for pid, _ in scheduled(callbacks)}
    assert {net.alpha.partner.pk, net.bravo.partner.pk} <= drains
    assert not drains & {p.partner.pk for p in (net.subject, net.charlie, net.delta, net.echo)}


@pytest.mark.parametrize(
    "new", [ConnectionStatus.SUSPENDED, ConnectionStatus.PLANNED], ids=["suspended", "planned"]
)
def test_every_new_status_is_pushed(net, new):
    liveness.set_status(net.subject.partner.pk, new, "test")

    written = hci_rows()
    assert [r.partner_id for r in written] == [net.alpha.partner.pk, net.bravo.partner.pk]
    assert {r.body["status"] for r in written} == {str(new)}


def test_one_row_per_role_of_the_changed_partner(net):
    net.subject.partner.roles.create(
        role="EMSP", country_code="NL", party_id="PPP", business_details={"name": "s"}
    )

    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "test")

    for target in (net.alpha, net.bravo):
        rows = hci_rows(target)
        assert sorted((r.key, r.path, r.body["role"], r.body["status"]) for r in rows) == [
            ("NL/PPP/CPO", "NL/PPP", "CPO", "OFFLINE"),
            ("NL/PPP/EMSP", "NL/PPP", "EMSP", "OFFLINE"),
        ]
    assert len(hci_rows()) == 4


def test_an_unchanged_status_writes_nothing(net):
    assert not liveness.set_status(net.subject.partner.pk, ConnectionStatus.CONNECTED, "again")

    assert hci_rows() == []


def test_nothing_is_pushed_when_we_are_not_a_hub(settings):
    settings.OCPI_PARTIES = "NL:ABC:CPO,NL:ABC:EMSP"
    net = build_net()

    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "test")
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.CONNECTED, "back")
    services.on_partner_registered(None, partner_id=net.alpha.partner.pk)

    assert hci_rows() == []


def test_two_quick_changes_fold_into_one_row_with_the_newest_status(net):
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "first")
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.SUSPENDED, "second")

    subject = fresh(net.subject)
    written = hci_rows()
    assert [r.partner_id for r in written] == [net.alpha.partner.pk, net.bravo.partner.pk]
    for row in written:
        assert row.state == DeliveryState.PENDING
        assert row.changes == 2
        assert row.body["status"] == "SUSPENDED"
        assert row.body["last_updated"] == format_datetime(subject.status_since)


def test_a_change_after_the_row_was_sent_is_a_new_row(net):
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "first")
    settle()

    liveness.set_status(net.subject.partner.pk, ConnectionStatus.SUSPENDED, "second")

    pending = hci_rows(state=DeliveryState.PENDING)
    assert [(r.partner_id, r.body["status"]) for r in pending] == [
        (net.alpha.partner.pk, "SUSPENDED"),
        (net.bravo.partner.pk, "SUSPENDED"),
    ]


# --- sending ------------------------------------------------------------------------------------


def test_drain_puts_the_client_info_without_routing_headers(net, recorder):
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "test")
    [alpha_row] = hci_rows(net.alpha)
    [bravo_row] = hci_rows(net.bravo)

    assert outbox.drain(net.alpha.partner.pk) == 1
    assert outbox.drain(net.bravo.partner.pk) == 1

    assert [(r.method, str(r.url)) for r in recorder.requests] == [
        ("PUT", "https://alpha.test/ocpi/2.2.1/hubclientinfo/NL/PPP"),
        ("PUT", "https://bravo.test/ocpi/2.2.1/hubclientinfo/NL/PPP"),
    ]
    alpha_request = recorder.requests[0]
    assert json.loads(alpha_request.content) == alpha_row.body
    assert json.loads(recorder.requests[1].content) == bravo_row.body
    assert alpha_request.headers["Authorization"] == f"Token {b64(net.alpha.outbound_token)}"
    assert alpha_request.headers["Content-Type"] == "application/json"
    assert alpha_request.headers.get("X-Request-ID")
    assert alpha_request.headers.get("X-Correlation-ID")
    for request in recorder.requests:
        assert not [h for h in ROUTING if h in request.headers], dict(request.headers)
    sent = hci_rows()
    assert [(r.state, r.attempts, r.http_status, r.ocpi_status) for r in sent] == [
        (DeliveryState.SENT, 1, 200, 1000)
    ] * 2


def test_a_retried_row_sends_the_current_client_info(net, recorder):
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "test")
    [row] = hci_rows(net.alpha)
    Delivery.objects.filter(pk=row.pk).update(state=DeliveryState.FAILED, last_error="refused")
    # The status changed again meanwhile (that change was delivered in its own row).
    later = datetime(2025, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    Partner.objects.filter(pk=net.subject.partner.pk).update(
        status=ConnectionStatus.SUSPENDED, status_since=later
    )

    assert outbox.retry([Delivery.objects.get(pk=row.pk)]) == 1

    current = {
        "party_id": "PPP",
        "country_code": "NL",
        "role": "CPO",
        "status": "SUSPENDED",
        "last_updated": format_datetime(later),
    }
    retried = Delivery.objects.get(pk=row.pk)
    assert (retried.state, retried.method, retried.body) == (DeliveryState.PENDING, "PUT", current)
    assert services.current_body("NL/PPP/CPO") == current

    assert outbox.drain(net.alpha.partner.pk) == 1
    [request] = recorder.requests
    assert (request.method, str(request.url)) == (
        "PUT",
        "https://alpha.test/ocpi/2.2.1/hubclientinfo/NL/PPP",
    )
    assert json.loads(request.content) == current


def test_a_retried_row_of_a_party_that_is_gone_is_cancelled(net):
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "test")
    [row] = hci_rows(net.alpha)
    Delivery.objects.filter(pk=row.pk).update(state=DeliveryState.FAILED)
    net.subject.partner.roles.all().delete()

    assert outbox.retry([Delivery.objects.get(pk=row.pk)]) == 0

    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.CANCELLED


# --- full resend to a partner that is back, or new ----------------------------------------------


def others_of(net: Net, partner: RegisteredPartner) -> dict[str, dict[str, Any]]:
    """The ClientInfo of every other connection's roles, by outbox key."""
    out = {}
    for other in net.everyone:
        if other is partner:
            continue
        for role in fresh(other).roles.all():
            out[f"{role.country_code}/{role.party_id}/{role.role}"] = expected_info(
                other, role.role
            )
    return out


@pytest.mark.parametrize(
    "away", [ConnectionStatus.OFFLINE, ConnectionStatus.SUSPENDED], ids=["offline", "suspended"]
)
def test_a_partner_back_to_connected_gets_every_other_client_info(net, away):
    liveness.set_status(net.subject.partner.pk, away, "away")
    settle()

    liveness.set_status(net.subject.partner.pk, ConnectionStatus.CONNECTED, "back")

    resent = hci_rows(net.subject, state=DeliveryState.PENDING)
    assert {r.key: r.body for r in resent} == others_of(net, net.subject)
    assert len(resent) == len(others_of(net, net.subject))
    for row in resent:
        assert row.method == "PUT"
        assert row.path == row.key.rsplit("/", 1)[0]
    # The others hear that it is back.
    back = hci_rows(state=DeliveryState.PENDING)
    assert sorted(
        (r.partner_id, r.body["status"]) for r in back if r.partner_id != net.subject.partner.pk
    ) == [(net.alpha.partner.pk, "CONNECTED"), (net.bravo.partner.pk, "CONNECTED")]


def test_the_full_resend_is_drained_to_the_partner(net, recorder):
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "away")
    settle()
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.CONNECTED, "back")

    assert outbox.drain(net.subject.partner.pk) == len(others_of(net, net.subject))

    received = {
        request.url.path.rsplit("/hubclientinfo/", 1)[1]: json.loads(request.content)
        for request in recorder.requests
    }
    assert {str(r.url.host) for r in recorder.requests} == {"subject.test"}
    expected = others_of(net, net.subject)
    assert received == {key.rsplit("/", 1)[0]: body for key, body in expected.items()}


def test_a_newly_registered_partner_gets_every_other_client_info(net):
    newcomer = connection("newcomer", "DK", "NEW", "EMSP", receiver_url=client_url("new.test"))

    services.on_partner_registered(None, partner_id=newcomer.partner.pk)

    rows = hci_rows(newcomer)
    assert {r.key: r.body for r in rows} == others_of(net, newcomer)
    assert "DK/NEW/EMSP" not in {r.key for r in rows}
    assert {r.partner_id for r in hci_rows()} == {newcomer.partner.pk}


def test_a_newly_registered_partner_without_a_receiver_endpoint_gets_nothing(net):
    services.on_partner_registered(None, partner_id=net.charlie.partner.pk)

    assert hci_rows() == []


def test_a_partner_that_was_offline_while_a_status_changed_gets_it_when_back(net):
    liveness.set_status(net.alpha.partner.pk, ConnectionStatus.OFFLINE, "away")
    liveness.set_status(net.subject.partner.pk, ConnectionStatus.SUSPENDED, "meanwhile")
    # alpha is told nothing while it is OFFLINE.
    assert hci_rows(net.alpha) == []
    assert [r.body["status"] for r in hci_rows(net.bravo)] == ["OFFLINE", "SUSPENDED"]
    settle()

    liveness.set_status(net.alpha.partner.pk, ConnectionStatus.CONNECTED, "back")

    resent = {r.key: r.body for r in hci_rows(net.alpha, state=DeliveryState.PENDING)}
    assert resent["NL/PPP/CPO"] == expected_info(net.subject)
    assert resent["NL/PPP/CPO"]["status"] == "SUSPENDED"


def test_an_offline_partner_that_calls_us_is_back_and_resynced(
    api, net, monkeypatch, django_capture_on_commit_callbacks
):
    """A request from an OFFLINE partner marks it seen; the task it enqueues makes it
    CONNECTED, pushes that to the others and resends it the ClientInfo of every other one."""
    from credentials import tasks as credential_tasks

    liveness.set_status(net.subject.partner.pk, ConnectionStatus.OFFLINE, "away")
    settle()
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(credential_tasks.recover_partner, "delay", lambda **kw: queued.append(kw))

    with django_capture_on_commit_callbacks(execute=True):
        reply = api.get("/ocpi/2.2.1/sender/hubclientinfo", token=net.subject.inbound_token)

    assert (reply.status, reply.code) == (200, 1000), reply.body
    assert fresh(net.subject).status == ConnectionStatus.OFFLINE  # the request only saw it
    assert hci_rows(state=DeliveryState.PENDING) == []
    assert queued == [{"partner_id": net.subject.partner.pk, "how": liveness.CALLED_US}]
    credential_tasks.recover_partner(**queued[0])  # what the worker does
    assert fresh(net.subject).status == ConnectionStatus.CONNECTED
    pending = hci_rows(state=DeliveryState.PENDING)
    told = [(r.partner_id, r.body["status"]) for r in pending if r.key == "NL/PPP/CPO"]
    assert told == [(net.alpha.partner.pk, "CONNECTED"), (net.bravo.partner.pk, "CONNECTED")]
    resent = {r.key for r in pending if r.partner_id == net.subject.partner.pk}
    assert resent == set(others_of(net, net.subject))


# --- a connection that ends ---------------------------------------------------------------------


def test_a_partner_that_unregisters_is_pushed_as_offline(api, net):
    reply = api.delete("/ocpi/2.2.1/credentials", token=net.subject.inbound_token)
    assert (reply.status, reply.code) == (200, 1000), reply.body

    subject = fresh(net.subject)
    assert (subject.state, subject.status) == (PartnerState.UNREGISTERED, "OFFLINE")
    written = hci_rows()
    assert [(r.partner_id, r.key, r.body["status"]) for r in written] == [
        (net.alpha.partner.pk, "NL/PPP/CPO", "OFFLINE"),
        (net.bravo.partner.pk, "NL/PPP/CPO", "OFFLINE"),
    ]
    assert written[0].body["last_updated"] == format_datetime(subject.status_since)


def test_a_partner_that_unregisters_stays_in_the_sender_list(api, net):
    api.delete("/ocpi/2.2.1/credentials", token=net.subject.inbound_token)
    pushed = hci_rows(net.alpha)[0].body

    listed = api.get("/ocpi/2.2.1/sender/hubclientinfo", token=net.alpha.inbound_token).data

    assert [i for i in listed if (i["country_code"], i["party_id"]) == ("NL", "PPP")] == [pushed]
