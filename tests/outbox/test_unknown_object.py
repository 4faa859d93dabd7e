"""A partner that lacks an object gets it in full: PATCH answered "unknown" becomes a PUT.

The issue: a location PUT was refused for good (OCPI 2001, HTTP 400); the partner never got the
location, its later EVSE PATCHes failed with "unknown object" and went FAILED too. Now a PATCH
answered OCPI 2003 or HTTP 404 is sent again as a PUT of the object's current state (the whole
location), a PUT so answered is FAILED (bounded), and a PATCH of an object whose PUT was refused
goes as a PUT from the start. FAILED rows stay visible and are counted.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from locations import services
from locations.models import Location
from locations.paths import select
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from tests.conftest import RegisteredPartner
from tests.fakes.locations_partner import LocationsPartner
from tests.fakes.partner import envelope
from tests.outbox.test_push import (
    CONNECTOR,
    EVSE,
    LOC,
    LOCATIONS,
    document,
    ours,
    receiver,
    rows,
    settle,
    stamp,
)

UNKNOWN = [
    pytest.param((200, envelope(status_code=2003, message="Unknown location")), id="ocpi-2003"),
    pytest.param((404, envelope(status_code=2001, message="No such object")), id="http-404"),
]
REFUSED = (400, envelope(status_code=2001, message="Invalid location"))


def sent(fake: LocationsPartner) -> list[tuple[str, str]]:
    return [(r.method, r.url.removeprefix(LOCATIONS + "/")) for r in fake.pushes]


@pytest.mark.parametrize("answer", UNKNOWN)
@pytest.mark.parametrize(
    ("path", "change"),
    [
        pytest.param(EVSE, lambda: services.set_evse_status(EVSE, "CHARGING"), id="evse"),
        pytest.param(
            CONNECTOR,
            lambda: services.patch(
                CONNECTOR, {"max_voltage": 400, "last_updated": stamp()}, owner=None
            ),
            id="connector",
        ),
        pytest.param(
            LOC,
            lambda: services.patch(LOC, {"name": "New", "last_updated": stamp()}, owner=None),
            id="loc",
        ),
    ],
)
def test_a_patch_of_an_unknown_object_is_sent_as_a_put_of_its_location(
    emsp, fake, path, change, answer
):
    ours()
    settle()
    change()
    fake.answers = [answer]

    assert outbox.drain(emsp.partner.pk) == 2

    assert sent(fake) == [("PATCH", path.path), ("PUT", "NL/ABC/LOC1")]
    assert fake.pushes[1].body == document()  # the current state, the change included
    row = rows(emsp)[-1]  # the PATCH's row, now a PUT of the location
    assert (row.state, row.method, row.key, row.path) == (
        DeliveryState.SENT,
        "PUT",
        "NL/ABC/LOC1",
        "NL/ABC/LOC1",
    )
    assert (row.attempts, row.ocpi_status, row.last_error) == (
        2,
        1000,
        "",
    )
    assert Delivery.objects.failed_count() == 0


@pytest.mark.parametrize("answer", UNKNOWN)
def test_a_put_answered_unknown_fails_for_good_no_loop(emsp, fake, answer):
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    fake.answers = [answer, answer, answer]

    outbox.drain(emsp.partner.pk)

    assert sent(fake) == [("PATCH", EVSE.path), ("PUT", "NL/ABC/LOC1")]
    [row] = rows(emsp, state=DeliveryState.FAILED)
    assert (row.method, row.key, row.attempts) == ("PUT", "NL/ABC/LOC1", 2)
    assert Delivery.objects.failed_count() == 1


def test_the_issue_a_refused_put_then_patches_reach_the_partner_once_the_cause_is_fixed(emsp, fake):
    ours()
    fake.answers = [REFUSED]
    outbox.drain(emsp.partner.pk)  # the location is refused for good
    [failed] = rows(emsp, state=DeliveryState.FAILED)
    assert failed.method == "PUT"

    # The cause is fixed on the partner's side; the next EVSE change brings the whole location.
    services.set_evse_status(EVSE, "CHARGING")
    assert outbox.drain(emsp.partner.pk) == 1
    assert sent(fake) == [("PUT", "NL/ABC/LOC1"), ("PUT", "NL/ABC/LOC1")]  # never a blind PATCH
    assert fake.pushes[1].body == document()
    assert select(fake.pushes[1].body, EVSE)["status"] == "CHARGING"

    # The partner has the location now: the next changes are PATCHes again.
    services.set_evse_status(EVSE, "BLOCKED")
    outbox.drain(emsp.partner.pk)
    assert sent(fake)[-1] == ("PATCH", EVSE.path)
    # The delivered PUT made up for the refusal: resolved (no longer counted), still on record.
    [put] = rows(emsp, state=DeliveryState.SENT, method="PUT")
    resolved = Delivery.objects.get(pk=failed.pk)
    assert resolved.state == DeliveryState.CANCELLED
    assert (
        resolved.last_error
        == f"{failed.last_error} (resolved: delivery {put.pk} sent the current state)"
    )
    assert Delivery.objects.failed_count() == 0


def test_patches_after_a_refused_put_keep_trying_the_whole_object(emsp, fake):
    """While the partner still refuses the location, each change tries it again, once."""
    ours()
    fake.answers = [REFUSED, REFUSED]
    outbox.drain(emsp.partner.pk)
    services.set_evse_status(EVSE, "CHARGING")
    outbox.drain(emsp.partner.pk)

    assert sent(fake) == [("PUT", "NL/ABC/LOC1"), ("PUT", "NL/ABC/LOC1")]
    assert Delivery.objects.failed_count() == 2

    services.set_evse_status(EVSE, "BLOCKED")
    outbox.drain(emsp.partner.pk)
    assert sent(fake)[-1] == ("PUT", "NL/ABC/LOC1")
    # That one was delivered: it resolves both refusals (the partner has the location now).
    assert Delivery.objects.failed_count() == 0
    assert [r.state for r in rows(emsp)] == [DeliveryState.CANCELLED] * 2 + [DeliveryState.SENT]


def test_a_refused_evse_put_makes_its_connectors_patches_a_put_not_its_locations(emsp, fake):
    ours()
    settle()
    services.put(EVSE, select_evse(), owner=None)
    fake.answers = [REFUSED]
    outbox.drain(emsp.partner.pk)  # the EVSE PUT is refused
    services.patch(CONNECTOR, {"max_voltage": 400, "last_updated": stamp()}, owner=None)
    services.patch(LOC, {"name": "New", "last_updated": stamp()}, owner=None)

    outbox.drain(emsp.partner.pk)

    assert sent(fake) == [
        ("PUT", EVSE.path),
        ("PUT", "NL/ABC/LOC1"),  # the connector's PATCH: the EVSE may be missing
        ("PATCH", "NL/ABC/LOC1"),  # the location itself is there
    ]


@pytest.mark.parametrize(
    "refusal",
    [
        (200, envelope(status_code=2001, message="Unknown status")),
        # A hub that cannot reach the receiving party says nothing about the object.
        (404, envelope(status_code=4001, message="Unknown receiver")),
    ],
    ids=["2001", "hub-404-4001"],
)
def test_a_refused_patch_does_not_turn_later_patches_into_puts(emsp, fake, refusal):
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    fake.answers = [refusal]
    outbox.drain(emsp.partner.pk)
    services.set_evse_status(EVSE, "BLOCKED")
    outbox.drain(emsp.partner.pk)

    assert sent(fake) == [("PATCH", EVSE.path), ("PATCH", EVSE.path)]


def test_an_unknown_object_that_is_no_longer_ours_is_cancelled(emsp, fake):
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    Location.objects.filter(location_id="LOC1").update(shared=False)
    fake.answers = [(200, envelope(status_code=2003))]

    outbox.drain(emsp.partner.pk)

    [row] = rows(emsp, state=DeliveryState.CANCELLED)
    assert "no longer ours" in row.last_error
    assert sent(fake) == [("PATCH", EVSE.path)]


def test_a_module_without_current_state_keeps_the_old_rule(emsp, fake, monkeypatch):
    monkeypatch.delitem(outbox.current_state, "locations")
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    fake.answers = [(200, envelope(status_code=2003))]

    outbox.drain(emsp.partner.pk)

    [row] = rows(emsp, state=DeliveryState.FAILED)
    assert row.method == "PATCH"
    assert sent(fake) == [("PATCH", EVSE.path)]


def select_evse() -> dict:
    evse = select(document(), EVSE)
    assert evse is not None
    return {**evse, "last_updated": stamp()}


# --- the count an operator alerts on -----------------------------------------------------------


def failed_setup(emsp: RegisteredPartner, fake: LocationsPartner) -> RegisteredPartner:
    other = receiver("fr-nsp", country_code="FR", party_id="NSP", role="NSP")
    ours("LOC1")
    ours("LOC2")
    fake.answers = [REFUSED]
    outbox.drain(emsp.partner.pk)  # LOC1 refused, LOC2 sent
    return other


def test_failed_deliveries_are_counted_per_partner(emsp, fake):
    other = failed_setup(emsp, fake)

    assert Delivery.objects.failed_count() == 1
    assert Delivery.objects.counts_by_partner() == [
        {"partner_id": emsp.partner.pk, "partner__name": "de-emsp", "pending": 0, "failed": 1},
        {"partner_id": other.partner.pk, "partner__name": "fr-nsp", "pending": 2, "failed": 0},
    ]


def test_the_outbox_command_prints_the_counts_and_fails_when_a_delivery_failed(emsp, fake, capsys):
    failed_setup(emsp, fake)

    with pytest.raises(CommandError, match="1 delivery failed for good"):
        call_command("ocpi_outbox", "--json")

    report = json.loads(capsys.readouterr().out)
    assert report == {
        "partners": [
            {"partner": "de-emsp", "pending": 0, "failed": 1},
            {"partner": "fr-nsp", "pending": 2, "failed": 0},
        ],
        "total": {"pending": 2, "failed": 1},
    }

    Delivery.objects.filter(state=DeliveryState.FAILED).update(state=DeliveryState.SENT)
    call_command("ocpi_outbox")  # no failure: exit status 0
    out = capsys.readouterr().out
    assert "fr-nsp" in out
    assert "0 failed" in out.splitlines()[-1]


def test_the_admin_list_says_how_many_deliveries_failed(emsp, fake, admin_client: Client):
    url = reverse("admin:outbox_delivery_changelist")
    assert "failed for good" not in admin_client.get(url).content.decode()

    failed_setup(emsp, fake)

    page = admin_client.get(url).content.decode()
    assert "1 delivery failed for good" in page
