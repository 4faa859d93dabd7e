"""Pushing our own locations through the outbox: rows with the change, delivery, folding, failures.

Deliveries are sent by calling ``outbox.services.drain`` directly (no worker); the partner is
``LocationsPartner`` behind ``use_transport``. ``scheduled(callbacks)`` reads the drains that
``transaction.on_commit`` would start.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from credentials.models import PartnerEndpoint, PartnerRole, PartnerState
from locations import push, services
from locations.models import Evse, Location
from locations.paths import ObjectPath, select
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.headers import correlation
from ocpi_platform.ocpi.types import format_datetime, now_utc, parse_datetime
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState, OutboxLease
from outbox.tasks import deliver
from tests.conftest import RegisteredPartner, load_example, make_registered
from tests.fakes.locations_partner import LocationsPartner
from tests.fakes.partner import envelope
from tests.outbox.conftest import LOCATIONS, receiver

OTHER_LOCATIONS = "https://other.test/ocpi/2.2.1/locations/"  # with a trailing slash
LOC = ObjectPath("NL", "ABC", "LOC1")
EVSE = ObjectPath("NL", "ABC", "LOC1", "3256")
CONNECTOR = ObjectPath("NL", "ABC", "LOC1", "3256", "1")
BACKOFF = (7.0, 11.0)


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _backoff(settings: Any) -> None:
    settings.OCPI_OUTBOX_BACKOFF = BACKOFF


@pytest.fixture
def nsp(db: None) -> RegisteredPartner:
    return receiver(
        "fr-nsp",
        OTHER_LOCATIONS,
        country_code="FR",
        party_id="NSP",
        role="NSP",
        versions_url="https://other.test/ocpi/versions",
        outbound_token="other-token-c",
    )


@pytest.fixture
def cpo(db: None) -> RegisteredPartner:
    """A partner CPO (BE/BEC): its locations are copies we keep, never ours to push."""
    partner = make_registered("be-cpo", country_code="BE", party_id="BEC", role="CPO")
    PartnerEndpoint.objects.create(
        partner=partner.partner, identifier="locations", role="SENDER", url=LOCATIONS
    )
    return partner


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The drains really started (after a real commit): the arguments of deliver.apply_async."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


def own_location(location_id: str = "LOC1", **changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(load_example("location_example.json")))
    data.update(country_code="NL", party_id="ABC", id=location_id, **changes)
    return data


def ours(location_id: str = "LOC1", **changes: Any) -> Location:
    return services.put(
        ObjectPath("NL", "ABC", location_id), own_location(location_id, **changes), owner=None
    ).location


def document(location_id: str = "LOC1") -> dict[str, Any]:
    return services.document(Location.objects.get(partner=None, location_id=location_id))


def stamp() -> str:
    return format_datetime(now_utc())


def settle() -> None:
    """The deliveries of the setup are done: what follows makes new rows."""
    Delivery.objects.update(state=DeliveryState.SENT)


def make_due() -> None:
    Delivery.objects.filter(state=DeliveryState.PENDING).update(
        next_attempt_at=now_utc() - timedelta(seconds=1)
    )


def rows(partner: RegisteredPartner | None = None, **filters: Any) -> list[Delivery]:
    qs = Delivery.objects.filter(**filters).order_by("id")
    if partner is not None:
        qs = qs.filter(partner=partner.partner)
    return list(qs)


def pending(partner: RegisteredPartner | None = None) -> list[Delivery]:
    return rows(partner, state=DeliveryState.PENDING)


def scheduled(callbacks: list[Callable[[], Any]]) -> list[tuple[int, float]]:
    """(partner id, countdown) of each drain the captured on_commit callbacks ask for (a
    partner that has a drain queued already gets no second one when they run)."""
    out = []
    for callback in callbacks:
        if isinstance(callback, outbox.Wake):
            out.extend((partner_id, callback.countdown) for partner_id in callback.partner_ids)
    return out


def urls(fake: LocationsPartner) -> list[tuple[str, str]]:
    return [(r.method, r.url) for r in fake.pushes]


def hooked(fake: LocationsPartner, before: Callable[[httpx.Request], None]) -> httpx.BaseTransport:
    """The fake partner, with ``before`` run while each request is in flight."""

    def handler(request: httpx.Request) -> httpx.Response:
        before(request)
        return fake.handler(request)

    return httpx.MockTransport(handler)


def evse_status_seen_by(fake: LocationsPartner, uid: str = "3256") -> str | None:
    """The status of the EVSE in the partner's copy after applying what it received, in order."""
    status = None
    for request in fake.pushes:
        parts = request.path.split("/locations/", 1)[1].strip("/").split("/")
        if len(parts) == 3 and request.method == "PUT":
            found = [e for e in request.body.get("evses") or [] if e["uid"] == uid]
            status = found[0]["status"] if found else status
        elif len(parts) == 4 and parts[3] == uid and "status" in request.body:
            status = request.body["status"]
    return status


def close_to(value: datetime | None, expected: datetime, slack: float = 2.0) -> bool:
    return value is not None and abs((value - expected).total_seconds()) <= slack


# --- rows are written with the change ----------------------------------------------------------


def test_a_new_location_is_put_to_each_receiving_partner_only(
    emsp, nsp, cpo, django_capture_on_commit_callbacks
):
    no_endpoint = make_registered("no-endpoint", country_code="IT", party_id="NOE")
    gone = receiver("gone", country_code="ES", party_id="GON")
    gone.partner.state = PartnerState.UNREGISTERED
    gone.partner.save()
    invited = receiver("invited", country_code="PT", party_id="INV")
    invited.partner.state = PartnerState.INVITED
    invited.partner.save()

    with django_capture_on_commit_callbacks() as callbacks:
        location = ours()

    doc = services.document(location)
    written = rows()
    assert [r.partner_id for r in written] == [emsp.partner.pk, nsp.partner.pk]
    for row in written:
        assert (row.module, row.method, row.path, row.key) == (
            "locations",
            "PUT",
            "NL/ABC/LOC1",
            "NL/ABC/LOC1",
        )
        assert row.body == doc
        assert (row.state, row.attempts, row.changes) == (DeliveryState.PENDING, 0, 1)
        assert (row.from_country_code, row.from_party_id) == ("NL", "ABC")
        assert close_to(row.next_attempt_at, now_utc())
    assert [(r.to_country_code, r.to_party_id) for r in written] == [("DE", "XYZ"), ("FR", "NSP")]
    assert sorted(scheduled(callbacks)) == [(emsp.partner.pk, 0), (nsp.partner.pk, 0)]
    assert not Delivery.objects.filter(
        partner__in=[no_endpoint.partner, gone.partner, invited.partner, cpo.partner]
    ).exists()


def test_replacing_a_location_is_a_new_put_with_the_new_document(emsp):
    ours()
    settle()

    location = ours(name="Gent Noord")

    [row] = pending(emsp)
    assert (row.method, row.path) == ("PUT", "NL/ABC/LOC1")
    assert row.body["name"] == "Gent Noord"
    assert row.body == services.document(location)


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        (LOC, {"name": "Gent Centrum"}, {"name": "Gent Centrum"}),
        (EVSE, {"floor_level": "3"}, {"floor_level": "3"}),
        (CONNECTOR, {"max_amperage": 32}, {"max_amperage": 32}),
    ],
    ids=["location", "evse", "connector"],
)
def test_a_small_change_is_a_patch_of_that_object(emsp, path, data, expected):
    ours()
    settle()

    services.patch(path, {**data, "last_updated": stamp()}, owner=None)

    [row] = pending(emsp)
    doc = document()
    current = select(doc, path)
    assert current is not None
    assert (row.method, row.path, row.key) == ("PATCH", path.path, path.key)
    assert row.body == {**expected, "last_updated": current["last_updated"]}
    # The cascade: the location's last_updated is the changed object's.
    assert doc["last_updated"] == current["last_updated"]


def test_an_evse_status_is_patched_with_its_last_updated(emsp, django_capture_on_commit_callbacks):
    ours()
    settle()

    with django_capture_on_commit_callbacks() as callbacks:
        services.set_evse_status(EVSE, "CHARGING")

    [row] = pending(emsp)
    assert (row.method, row.path) == ("PATCH", "NL/ABC/LOC1/3256")
    evse = select(document(), EVSE)
    assert evse is not None
    assert row.body == {"status": "CHARGING", "last_updated": evse["last_updated"]}
    assert evse["last_updated"] > "2015-06-28T08:12:01Z"
    assert scheduled(callbacks) == [(emsp.partner.pk, 0)]


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [(EVSE, "physical_reference", "9"), (CONNECTOR, "max_amperage", 63)],
    ids=["evse", "connector"],
)
def test_putting_an_evse_or_connector_puts_that_object(emsp, path, field, value):
    ours()
    settle()
    body = select(own_location(), path)
    assert body is not None
    body[field] = value

    services.put(path, body, owner=None)

    [row] = pending(emsp)
    assert (row.method, row.path) == ("PUT", path.path)
    assert row.body == select(document(), path)
    assert row.body[field] == value
    assert row.body["last_updated"] > "2016"


def test_saved_in_admin_puts_the_whole_location(emsp):
    location = ours()
    settle()
    evse = location.evses.get(uid="3257")
    Evse.objects.filter(pk=evse.pk).update(status="OUTOFORDER")
    location.name = "Renamed in the admin"

    with transaction.atomic():
        services.saved_in_admin(location, evses=[evse.pk])

    [row] = pending(emsp)
    doc = document()
    assert (row.method, row.path) == ("PUT", "NL/ABC/LOC1")
    assert row.body == doc
    assert doc["name"] == "Renamed in the admin"
    assert doc["evses"][1]["status"] == "OUTOFORDER"


def _put(location: Location) -> None:
    services.put(LOC, own_location(name="Replaced"), owner=None)


def _patch(location: Location) -> None:
    services.patch(EVSE, {"floor_level": "7", "last_updated": stamp()}, owner=None)


def _status(location: Location) -> None:
    services.set_evse_status(EVSE, "CHARGING")


def _admin(location: Location) -> None:
    location.name = "Edited"
    services.saved_in_admin(location, evses=[location.evses.get(uid="3256").pk])


CHANGES = [
    pytest.param(_put, "PUT", "NL/ABC/LOC1", id="put"),
    pytest.param(_patch, "PATCH", "NL/ABC/LOC1/3256", id="patch"),
    pytest.param(_status, "PATCH", "NL/ABC/LOC1/3256", id="set_evse_status"),
    pytest.param(_admin, "PUT", "NL/ABC/LOC1", id="saved_in_admin"),
]


class Boom(Exception):
    pass


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("change", "method", "path"), CHANGES)
def test_rows_are_written_in_the_changes_transaction_and_sent_after_commit(
    emsp, started, change, method, path
):
    location = ours()
    assert started == [{"kwargs": {"partner_id": emsp.partner.pk}, "countdown": 0}]
    settle()
    started.clear()
    assert outbox.drain(emsp.partner.pk) == 0  # the drain queued runs: nothing left to send
    before = document()

    def change_then_fail() -> None:
        with transaction.atomic():
            change(location)
            assert [(r.method, r.path) for r in pending(emsp)] == [(method, path)]
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()

    assert pending() == []
    assert started == []
    assert document() == before  # the change itself was rolled back too

    location.refresh_from_db()
    with transaction.atomic():
        change(location)
        assert [(r.method, r.path) for r in pending(emsp)] == [(method, path)]
        assert started == []  # not before the commit

    assert started == [{"kwargs": {"partner_id": emsp.partner.pk}, "countdown": 0}]
    [row] = pending(emsp)
    assert document() != before
    if method == "PUT":
        assert row.body == document()


def test_a_location_that_is_not_shared_is_not_pushed(emsp, django_capture_on_commit_callbacks):
    location = ours()
    settle()
    Location.objects.filter(pk=location.pk).update(shared=False)
    location.refresh_from_db()

    with django_capture_on_commit_callbacks() as callbacks:
        for change, _, _ in (p.values for p in CHANGES):
            change(location)
        push.full_resend([emsp.partner.pk])

    assert pending() == []
    assert scheduled(callbacks) == []
    assert document()["name"] == "Edited"  # the changes were made, just not pushed


def test_partners_copies_are_never_pushed(emsp, cpo, django_capture_on_commit_callbacks):
    data = load_example("location_example.json")
    copy_path = ObjectPath("BE", "BEC", "LOC1", "3256")
    with django_capture_on_commit_callbacks() as callbacks:
        services.put(ObjectPath("BE", "BEC", "LOC1"), data, owner=cpo.partner.pk)
        services.patch(
            copy_path,
            {"status": "CHARGING", "last_updated": "2030-01-01T00:00:00Z"},
            owner=cpo.partner.pk,
        )
        location = Location.objects.get(partner=cpo.partner)
        push.location_put(location, services.document(location))
        assert push.full_resend([emsp.partner.pk]) == 0

    assert Location.objects.get(partner=cpo.partner).evses.get(uid="3256").status == "CHARGING"
    assert not Delivery.objects.exists()
    assert scheduled(callbacks) == []


def test_no_receiving_partner_no_rows_and_no_drain(cpo, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        ours()
        services.set_evse_status(EVSE, "CHARGING")

    assert not Delivery.objects.exists()
    assert scheduled(callbacks) == []


def test_the_receiving_party_is_the_partners_receiving_role(db):
    partner = receiver("two-roles", country_code="FR", party_id="CPX", role="CPO")
    PartnerRole.objects.create(
        partner=partner.partner, role="NSP", country_code="FR", party_id="NSX"
    )
    PartnerRole.objects.create(
        partner=partner.partner, role="EMSP", country_code="FR", party_id="EMX"
    )

    ours()

    [row] = rows()
    assert (row.to_country_code, row.to_party_id) == ("FR", "EMX")


# --- delivery ----------------------------------------------------------------------------------


def test_a_put_reaches_each_partner_with_its_token_and_routing_headers(emsp, nsp, fake):
    with correlation("corr-put-1"):
        ours()
    doc = document()

    assert outbox.drain(emsp.partner.pk) == 1
    assert outbox.drain(nsp.partner.pk) == 1

    assert urls(fake) == [
        ("PUT", "https://partner.test/ocpi/2.2.1/locations/NL/ABC/LOC1"),
        ("PUT", "https://other.test/ocpi/2.2.1/locations/NL/ABC/LOC1"),
    ]
    to_emsp, to_nsp = fake.pushes
    for request, token, to in (
        (to_emsp, "partner-token-c", "DE/XYZ"),
        (to_nsp, "other-token-c", "FR/NSP"),
    ):
        headers = request.headers
        assert headers["Authorization"] == "Token " + base64.b64encode(token.encode()).decode()
        assert headers["OCPI-from-country-code"] == "NL"
        assert headers["OCPI-from-party-id"] == "ABC"
        assert f"{headers['OCPI-to-country-code']}/{headers['OCPI-to-party-id']}" == to
        assert headers["X-Correlation-ID"] == "corr-put-1"
        assert headers["X-Request-ID"]
        assert headers["Content-Type"] == "application/json"
        assert request.body == doc
    assert to_emsp.headers["X-Request-ID"] != to_nsp.headers["X-Request-ID"]
    for row in rows():
        assert row.state == DeliveryState.SENT
        assert (row.http_status, row.ocpi_status, row.attempts, row.last_error) == (
            200,
            1000,
            1,
            "",
        )
        assert row.correlation_id == "corr-put-1"
        assert close_to(row.sent_at, now_utc())
    assert OutboxLease.objects.get(partner=emsp.partner).until is None


def test_patches_reach_the_evse_and_connector_urls(emsp, fake):
    ours()
    outbox.drain(emsp.partner.pk)
    with correlation("corr-status"):
        services.set_evse_status(EVSE, "BLOCKED")
    services.patch(CONNECTOR, {"max_amperage": 25, "last_updated": stamp()}, owner=None)
    patches = pending(emsp)

    assert outbox.drain(emsp.partner.pk) == 2

    assert urls(fake)[1:] == [
        ("PATCH", f"{LOCATIONS}/NL/ABC/LOC1/3256"),
        ("PATCH", f"{LOCATIONS}/NL/ABC/LOC1/3256/1"),
    ]
    status, connector = fake.pushes[1:]
    assert status.body == patches[0].body
    assert status.body["status"] == "BLOCKED"
    assert (
        connector.body
        == patches[1].body
        == {
            "max_amperage": 25,
            "last_updated": select(document(), CONNECTOR)["last_updated"],
        }
    )
    assert status.headers["X-Correlation-ID"] == "corr-status"
    # A change made outside any request still goes with a correlation id (a new one).
    assert patches[1].correlation_id == ""
    assert connector.headers["X-Correlation-ID"]
    assert connector.headers["X-Correlation-ID"] != "corr-status"
    for request in (status, connector):
        assert request.headers["OCPI-to-party-id"] == "XYZ"
        assert request.headers["OCPI-from-party-id"] == "ABC"


def test_rows_are_sent_oldest_first(emsp, fake):
    for location_id in ("LOC1", "LOC2", "LOC3"):
        ours(location_id)
    services.set_evse_status(EVSE, "CHARGING")  # folds into LOC1's pending PUT

    assert outbox.drain(emsp.partner.pk) == 3

    assert [url.rsplit("/", 1)[1] for _, url in urls(fake)] == ["LOC1", "LOC2", "LOC3"]
    assert fake.pushes[0].body == document("LOC1")
    assert fake.pushes[0].body["evses"][0]["status"] == "CHARGING"


# --- folding -----------------------------------------------------------------------------------


def test_a_status_burst_while_the_partner_is_down_goes_as_the_newest_state(emsp, fake):
    ours()
    outbox.drain(emsp.partner.pk)
    fake.answers = [httpx.ConnectError("connection refused")]
    services.set_evse_status(EVSE, "CHARGING")
    assert outbox.drain(emsp.partner.pk) == 0
    first = pending(emsp)[0].body

    for status in ("BLOCKED", "OUTOFORDER", "INOPERATIVE"):
        services.set_evse_status(EVSE, status)

    [row] = pending(emsp)
    assert (row.method, row.changes, row.attempts) == ("PATCH", 4, 1)
    evse = select(document(), EVSE)
    assert evse is not None
    assert row.body == {"status": "INOPERATIVE", "last_updated": evse["last_updated"]}
    assert parse_datetime(row.body["last_updated"]) > parse_datetime(first["last_updated"])

    make_due()
    assert outbox.drain(emsp.partner.pk) == 1

    assert len(fake.pushes) == 3  # the PUT, the refused attempt, the folded PATCH
    assert fake.pushes[-1].body == row.body
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENT


def test_a_pending_put_of_the_location_absorbs_later_changes(emsp, fake):
    fake.answers = [httpx.ConnectError("down")]
    ours()
    assert outbox.drain(emsp.partner.pk) == 0

    services.set_evse_status(EVSE, "CHARGING")
    services.set_evse_status(EVSE, "BLOCKED")
    services.patch(CONNECTOR, {"max_amperage": 25, "last_updated": stamp()}, owner=None)
    services.patch(LOC, {"name": "Gent Centrum", "last_updated": stamp()}, owner=None)

    [row] = rows(emsp)
    doc = document()
    assert (row.method, row.path, row.changes, row.attempts) == ("PUT", "NL/ABC/LOC1", 5, 1)
    assert row.body == doc
    assert doc["evses"][0]["status"] == "BLOCKED"
    assert doc["evses"][0]["connectors"][0]["max_amperage"] == 25
    assert doc["name"] == "Gent Centrum"

    make_due()
    assert outbox.drain(emsp.partner.pk) == 1
    assert [(r.method, r.body) for r in fake.pushes[1:]] == [("PUT", doc)]


def test_a_pending_patch_takes_new_fields_and_becomes_a_put_when_the_object_is_put(emsp):
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    services.patch(EVSE, {"floor_level": "4", "last_updated": stamp()}, owner=None)

    [row] = pending(emsp)
    evse = select(document(), EVSE)
    assert evse is not None
    assert row.method == "PATCH"
    assert row.body == {
        "status": "CHARGING",
        "floor_level": "4",
        "last_updated": evse["last_updated"],
    }

    body = select(own_location(), EVSE)
    assert body is not None
    services.put(EVSE, {**body, "status": "AVAILABLE"}, owner=None)

    [row] = pending(emsp)
    assert (row.method, row.path, row.changes) == ("PUT", "NL/ABC/LOC1/3256", 3)
    assert row.body == select(document(), EVSE)
    assert row.body["status"] == "AVAILABLE"
    assert row.body["floor_level"] == "-1"


def test_a_change_folds_into_every_pending_put_above_it(emsp):
    location = ours()
    settle()
    body = select(own_location(), EVSE)
    assert body is not None
    services.put(EVSE, body, owner=None)  # a pending PUT of the EVSE
    services.saved_in_admin(location)  # then a pending PUT of the whole location

    services.patch(CONNECTOR, {"max_amperage": 40, "last_updated": stamp()}, owner=None)

    evse_put, location_put = pending(emsp)
    doc = document()
    assert (evse_put.path, evse_put.changes) == ("NL/ABC/LOC1/3256", 2)
    assert (location_put.path, location_put.changes) == ("NL/ABC/LOC1", 2)
    assert evse_put.body == select(doc, EVSE)
    assert location_put.body == doc
    assert evse_put.body["connectors"][0]["max_amperage"] == 40


def test_only_the_same_object_of_the_same_partner_is_folded(emsp, nsp, fake):
    ours()
    outbox.drain(emsp.partner.pk)  # the emsp has the location; the nsp has not got it yet
    services.set_evse_status(EVSE, "CHARGING")
    services.set_evse_status(ObjectPath("NL", "ABC", "LOC1", "3257"), "AVAILABLE")
    services.patch(LOC, {"name": "Elsewhere", "last_updated": stamp()}, owner=None)
    services.set_evse_status(EVSE, "BLOCKED")

    assert [(r.method, r.path, r.changes) for r in pending(emsp)] == [
        ("PATCH", "NL/ABC/LOC1/3256", 2),
        ("PATCH", "NL/ABC/LOC1/3257", 1),
        ("PATCH", "NL/ABC/LOC1", 1),
    ]
    assert pending(emsp)[0].body["status"] == "BLOCKED"
    [nsp_row] = pending(nsp)
    assert (nsp_row.method, nsp_row.changes) == ("PUT", 5)
    assert nsp_row.body == document()


def test_a_change_while_its_row_is_in_flight_is_sent_after_it(emsp, fake):
    ours()
    outbox.drain(emsp.partner.pk)
    services.set_evse_status(EVSE, "CHARGING")
    changed: list[str] = []

    def change_once(request: httpx.Request) -> None:
        if not changed:
            changed.append(request.url.path)
            services.set_evse_status(EVSE, "BLOCKED")

    with use_transport(hooked(fake, change_once)):
        assert outbox.drain(emsp.partner.pk) == 2

    assert [r.body["status"] for r in fake.pushes[1:]] == ["CHARGING", "BLOCKED"]
    assert [r.state for r in rows(emsp)][1:] == [DeliveryState.SENT, DeliveryState.SENT]
    assert evse_status_seen_by(fake) == "BLOCKED"


@pytest.mark.parametrize("newest", ["status", "admin"])
def test_the_newest_state_wins_after_a_change_during_a_failed_send(emsp, fake, newest):
    """A change arrives while the location's PUT is in flight; the PUT then fails transiently.

    The change became a PATCH row behind the PUT. A later change is folded into the PUT only,
    so the PATCH (older state) would be sent last and leave the partner with a stale status.
    """
    location = ours()
    changed: list[str] = []

    def change_once(request: httpx.Request) -> None:
        if not changed:
            changed.append(request.url.path)
            fake.answers = [(503, envelope(status_code=3000, message="busy"))]
            services.set_evse_status(EVSE, "CHARGING")

    with use_transport(hooked(fake, change_once)):
        assert outbox.drain(emsp.partner.pk) == 0
    assert [(r.method, r.path) for r in pending(emsp)] == [
        ("PUT", "NL/ABC/LOC1"),
        ("PATCH", "NL/ABC/LOC1/3256"),
    ]

    if newest == "status":
        services.set_evse_status(EVSE, "BLOCKED")
    else:
        Evse.objects.filter(location=location, uid="3256").update(status="BLOCKED")
        location.refresh_from_db()
        services.saved_in_admin(location, evses=[location.evses.get(uid="3256").pk])
    make_due()
    outbox.drain(emsp.partner.pk)

    assert select(document(), EVSE)["status"] == "BLOCKED"
    assert evse_status_seen_by(fake) == "BLOCKED"


# --- failures ----------------------------------------------------------------------------------

UNAUTHORIZED = (401, envelope(status_code=2000, message="Unauthorized"))

TRANSIENT = [
    pytest.param([httpx.ConnectError("refused")], None, None, id="connection-error"),
    pytest.param([httpx.ReadTimeout("slow")], None, None, id="read-timeout"),
    pytest.param([httpx.ConnectTimeout("slow")], None, None, id="connect-timeout"),
    pytest.param([(500, envelope(status_code=3000))], 500, 3000, id="http-500"),
    pytest.param([(503, {"error": "down"})], 503, None, id="http-503"),
    pytest.param([(429, envelope(status_code=2000))], 429, 2000, id="http-429"),
    pytest.param([(200, envelope(status_code=3000))], 200, 3000, id="ocpi-3000"),
    pytest.param([(200, envelope(status_code=4002))], 200, 4002, id="hub-4002"),
    # The client tries the token unencoded once more: that is refused too (2 requests).
    pytest.param([UNAUTHORIZED], 401, 2000, id="http-401"),
]


@pytest.mark.parametrize(("answers", "http_status", "ocpi_status"), TRANSIENT)
def test_a_transient_failure_waits_with_backoff_and_holds_the_rows_behind(
    emsp, fake, django_capture_on_commit_callbacks, answers, http_status, ocpi_status
):
    ours("LOC1")
    ours("LOC2")
    fake.answers = list(answers)
    tries = 2 if http_status == 401 else 1

    before = now_utc()
    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.drain(emsp.partner.pk) == 0

    head, behind = rows(emsp)
    assert head.state == DeliveryState.PENDING
    assert head.attempts == 1
    assert (head.http_status, head.ocpi_status) == (http_status, ocpi_status)
    assert head.last_error
    assert before + timedelta(seconds=BACKOFF[0]) <= head.next_attempt_at
    assert head.next_attempt_at <= now_utc() + timedelta(seconds=BACKOFF[0])
    assert (behind.state, behind.attempts) == (DeliveryState.PENDING, 0)
    assert {url for _, url in urls(fake)} == {f"{LOCATIONS}/NL/ABC/LOC1"}  # head of line
    assert len(fake.pushes) == tries
    assert scheduled(callbacks) == [(emsp.partner.pk, BACKOFF[0])]
    assert OutboxLease.objects.get(partner=emsp.partner).until is None

    # Not due yet: nothing is sent, the drain comes back when the row is due.
    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.drain(emsp.partner.pk) == 0
    assert len(fake.pushes) == tries
    [(partner_id, countdown)] = scheduled(callbacks)
    assert partner_id == emsp.partner.pk
    assert 0 < countdown <= BACKOFF[0]

    make_due()
    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.drain(emsp.partner.pk) == 2

    head, behind = rows(emsp)
    assert (head.state, head.attempts, head.http_status, head.ocpi_status, head.last_error) == (
        DeliveryState.SENT,
        2,
        200,
        1000,
        "",
    )
    assert (behind.state, behind.attempts) == (DeliveryState.SENT, 1)
    assert [url.rsplit("/", 1)[1] for _, url in urls(fake)][-2:] == ["LOC1", "LOC2"]
    assert scheduled(callbacks) == []


def test_backoff_follows_the_configured_steps_and_stays_at_the_last(emsp, fake):
    ours()
    fake.answers = [httpx.ConnectError("down")] * 3
    waits = []
    for _ in range(3):
        make_due()
        before = now_utc()
        outbox.drain(emsp.partner.pk)
        [row] = pending(emsp)
        waits.append(round((row.next_attempt_at - before).total_seconds()))

    assert waits == [7, 11, 11]
    assert pending(emsp)[0].attempts == 3
    assert [outbox.backoff(n) for n in (0, 1, 2, 3, 9)] == [7.0, 7.0, 11.0, 11.0, 11.0]


PERMANENT = [
    pytest.param((200, envelope(status_code=2001, message="Bad evse")), 200, 2001, id="ocpi-2001"),
    pytest.param((400, envelope(status_code=2001)), 400, 2001, id="http-400"),
    pytest.param((404, envelope(status_code=2000)), 404, 2000, id="http-404"),
    pytest.param((200, ["not", "an", "envelope"]), 200, None, id="not-an-envelope"),
    pytest.param((302, envelope()), 302, None, id="redirect"),
    pytest.param((200, envelope(status_code=4001)), 200, 4001, id="hub-unknown-receiver"),
]


@pytest.mark.parametrize(("answer", "http_status", "ocpi_status"), PERMANENT)
def test_a_permanent_failure_is_kept_and_the_next_rows_still_go(
    emsp, fake, django_capture_on_commit_callbacks, answer, http_status, ocpi_status
):
    ours("LOC1")
    ours("LOC2")
    fake.answers = [answer]

    with django_capture_on_commit_callbacks() as callbacks:
        outbox.drain(emsp.partner.pk)

    failed, sent = rows(emsp)
    assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 1)
    assert (failed.http_status, failed.ocpi_status) == (http_status, ocpi_status)
    assert "PUT https://partner.test/ocpi/2.2.1/locations/NL/ABC/LOC1" in failed.last_error
    assert failed.sent_at is None
    assert (sent.state, sent.http_status, sent.ocpi_status) == (DeliveryState.SENT, 200, 1000)
    assert len(fake.pushes) == 2
    assert scheduled(callbacks) == []  # nothing left to wait for


def test_retry_puts_failed_and_cancelled_rows_back_in_the_queue(
    emsp, fake, django_capture_on_commit_callbacks
):
    ours("LOC1")
    ours("LOC2")
    ours("LOC3")
    fake.answers = [(200, envelope(status_code=2001, message="Bad evse"))]
    outbox.drain(emsp.partner.pk)
    Delivery.objects.filter(path="NL/ABC/LOC3").update(
        state=DeliveryState.CANCELLED, last_error="not sent: the partner is unregistered"
    )
    failed, sent, cancelled = rows(emsp)
    assert (failed.state, sent.state) == (DeliveryState.FAILED, DeliveryState.SENT)

    with django_capture_on_commit_callbacks() as callbacks:
        count = outbox.retry([failed, sent, cancelled])

    assert count == 2
    assert scheduled(callbacks) == [(emsp.partner.pk, 0)]
    failed.refresh_from_db()
    assert failed.state == DeliveryState.PENDING
    assert close_to(failed.next_attempt_at, now_utc())
    assert Delivery.objects.get(pk=sent.pk).state == DeliveryState.SENT

    assert outbox.drain(emsp.partner.pk) == 2
    assert {r.state for r in rows(emsp)} == {DeliveryState.SENT}
    assert sorted(url.rsplit("/", 1)[1] for _, url in urls(fake)[-2:]) == ["LOC1", "LOC3"]
    failed.refresh_from_db()
    assert (failed.attempts, failed.ocpi_status, failed.last_error) == (2, 1000, "")


def test_retry_ignores_rows_that_did_not_fail(emsp, django_capture_on_commit_callbacks):
    ours()
    [row] = rows(emsp)

    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.retry([row]) == 0

    assert scheduled(callbacks) == []
    assert Delivery.objects.get(pk=row.pk).attempts == 0


@pytest.mark.parametrize("state", [PartnerState.UNREGISTERED, PartnerState.FAILED])
def test_nothing_goes_to_a_partner_that_is_not_registered(emsp, fake, state):
    ours("LOC1")
    ours("LOC2")
    ours("LOC3")
    first, second, third = rows(emsp)
    Delivery.objects.filter(pk=first.pk).update(state=DeliveryState.SENT)
    Delivery.objects.filter(pk=second.pk).update(state=DeliveryState.SENDING)
    emsp.partner.state = state
    emsp.partner.save()

    assert outbox.drain(emsp.partner.pk) == 0

    assert fake.pushes == []
    assert Delivery.objects.get(pk=first.pk).state == DeliveryState.SENT
    for row in (second, third):
        row.refresh_from_db()
        assert row.state == DeliveryState.CANCELLED
        assert row.last_error == f"not sent: the partner is {state.label.lower()}"
    assert OutboxLease.objects.get(partner=emsp.partner).until is None
    # And no new rows are written for it.
    services.set_evse_status(EVSE, "BLOCKED")
    assert pending(emsp) == []


def test_a_partner_that_dropped_its_receiver_endpoint_gets_nothing(emsp, fake):
    ours()
    PartnerEndpoint.objects.filter(partner=emsp.partner, identifier="locations").delete()

    outbox.drain(emsp.partner.pk)

    [row] = rows(emsp)
    assert row.state == DeliveryState.CANCELLED
    assert row.last_error == "the partner has no locations RECEIVER endpoint"
    assert fake.pushes == []


# --- the lease and the sweep -------------------------------------------------------------------


def test_a_held_lease_keeps_a_second_drain_out(emsp, fake):
    ours()
    until = now_utc() + timedelta(seconds=60)
    OutboxLease.objects.create(partner=emsp.partner, until=until)

    assert outbox.drain(emsp.partner.pk) == 0

    assert fake.pushes == []
    assert pending(emsp)[0].attempts == 0
    assert OutboxLease.objects.get(partner=emsp.partner).until == until

    OutboxLease.objects.filter(partner=emsp.partner).update(until=now_utc() - timedelta(seconds=1))
    assert outbox.drain(emsp.partner.pk) == 1  # an expired lease is taken over
    assert OutboxLease.objects.get(partner=emsp.partner).until is None


def test_a_drain_started_while_another_is_sending_does_nothing(emsp, fake):
    ours("LOC1")
    ours("LOC2")
    nested: list[int] = []

    def drain_again(request: httpx.Request) -> None:
        lease = OutboxLease.objects.get(partner=emsp.partner)
        assert lease.held
        nested.append(outbox.drain(emsp.partner.pk))

    with use_transport(hooked(fake, drain_again)):
        assert outbox.drain(emsp.partner.pk) == 2

    assert nested == [0, 0]
    assert [url.rsplit("/", 1)[1] for _, url in urls(fake)] == ["LOC1", "LOC2"]


def test_sweep_wakes_partners_with_due_rows_only(emsp, nsp, django_capture_on_commit_callbacks):
    busy = receiver("busy", country_code="IT", party_id="BSY")
    idle = receiver("idle", country_code="ES", party_id="IDL")
    ours()
    Delivery.objects.filter(partner=nsp.partner).update(
        next_attempt_at=now_utc() + timedelta(minutes=5)
    )
    Delivery.objects.filter(partner=idle.partner).update(state=DeliveryState.SENT)
    OutboxLease.objects.create(partner=busy.partner, until=now_utc() + timedelta(seconds=60))
    OutboxLease.objects.create(partner=emsp.partner, until=None)

    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.sweep() == 1

    assert scheduled(callbacks) == [(emsp.partner.pk, 0)]


def test_sweep_restarts_a_drain_whose_worker_was_lost(
    emsp, fake, django_capture_on_commit_callbacks
):
    ours()
    [row] = rows(emsp)
    # A worker claimed the row and died: the row stays SENDING, its lease runs out.
    Delivery.objects.filter(pk=row.pk).update(state=DeliveryState.SENDING)
    OutboxLease.objects.create(partner=emsp.partner, until=now_utc() - timedelta(seconds=1))

    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.sweep() == 1

    assert scheduled(callbacks) == [(emsp.partner.pk, 0)]
    # Only the drain it started puts the row back, under the lease it takes.
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENDING
    assert outbox.drain(emsp.partner.pk) == 1
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENT


def test_sweep_leaves_a_row_being_sent_under_a_held_lease(emsp, django_capture_on_commit_callbacks):
    ours()
    [row] = rows(emsp)
    Delivery.objects.filter(pk=row.pk).update(state=DeliveryState.SENDING)
    OutboxLease.objects.create(partner=emsp.partner, until=now_utc() + timedelta(seconds=60))

    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.sweep() == 0

    assert scheduled(callbacks) == []
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENDING


def test_a_drain_cut_short_while_sending_is_picked_up_by_the_sweep(
    emsp, fake, django_capture_on_commit_callbacks
):
    """The task's soft time limit (or any unexpected error) fires while a row is in flight.

    drain's ``finally`` releases the lease, so the row is left SENDING under no lease: the
    sweep must treat it like a lost worker's row, or it is never sent.
    """
    ours()
    fake.answers = [SoftTimeLimitExceeded()]

    with pytest.raises(SoftTimeLimitExceeded):
        outbox.drain(emsp.partner.pk)
    assert OutboxLease.objects.get(partner=emsp.partner).until is None

    with django_capture_on_commit_callbacks() as callbacks:
        outbox.sweep()

    assert scheduled(callbacks) == [(emsp.partner.pk, 0)]
    assert outbox.drain(emsp.partner.pk) == 1
    assert rows(emsp)[0].state == DeliveryState.SENT


# --- full resend -------------------------------------------------------------------------------


def test_full_resend_puts_every_shared_location_to_the_given_partners(emsp, nsp, cpo, fake):
    ours("LOC1")
    ours("LOC2")
    hidden = ours("LOC3")
    Location.objects.filter(pk=hidden.pk).update(shared=False)
    services.put(
        ObjectPath("BE", "BEC", "LOC9"),
        {**load_example("location_example.json"), "id": "LOC9"},
        owner=cpo.partner.pk,
    )
    settle()

    assert push.full_resend([emsp.partner.pk]) == 2

    assert pending(nsp) == []
    assert [(r.method, r.path) for r in pending(emsp)] == [
        ("PUT", "NL/ABC/LOC1"),
        ("PUT", "NL/ABC/LOC2"),
    ]
    assert outbox.drain(emsp.partner.pk) == 2
    assert [(r.method, r.url) for r in fake.pushes] == [
        ("PUT", f"{LOCATIONS}/NL/ABC/LOC1"),
        ("PUT", f"{LOCATIONS}/NL/ABC/LOC2"),
    ]
    assert [r.body for r in fake.pushes] == [document("LOC1"), document("LOC2")]


def test_full_resend_brings_a_pending_put_up_to_date_instead_of_adding_one(emsp, fake):
    ours("LOC1")
    ours("LOC2")
    Delivery.objects.filter(path="NL/ABC/LOC2").update(state=DeliveryState.SENT)
    Location.objects.filter(location_id="LOC1").update(
        ocpi_json=json.dumps({**document(), "name": "Newer"})
    )

    assert push.full_resend([emsp.partner.pk]) == 1

    loc1, loc2 = pending(emsp)
    assert (loc1.path, loc1.changes, loc1.body["name"]) == ("NL/ABC/LOC1", 2, "Newer")
    assert (loc2.path, loc2.changes) == ("NL/ABC/LOC2", 1)


def test_full_resend_to_a_partner_without_a_receiver_is_nothing(db):
    ours()
    partner = make_registered("no-endpoint", country_code="IT", party_id="NOE")

    assert push.full_resend([partner.partner.pk]) == 0
    assert not Delivery.objects.exists()


def test_a_retried_row_sends_the_objects_current_state_not_its_old_body(emsp, fake):
    ours()
    outbox.drain(emsp.partner.pk)
    services.set_evse_status(EVSE, "CHARGING")
    fake.answers = [(200, envelope(status_code=2001, message="Unknown status"))]
    outbox.drain(emsp.partner.pk)  # CHARGING refused for good
    services.set_evse_status(EVSE, "BLOCKED")
    outbox.drain(emsp.partner.pk)  # BLOCKED arrives
    failed = Delivery.objects.get(state=DeliveryState.FAILED)

    assert outbox.retry([failed]) == 1
    outbox.drain(emsp.partner.pk)

    resent = fake.pushes[-1]
    assert (resent.method, resent.path) == ("PUT", "/ocpi/2.2.1/locations/NL/ABC/LOC1/3256")
    assert resent.body == select(document(), EVSE)
    assert resent.body["status"] == "BLOCKED"  # not the refused CHARGING: that would undo


def test_a_retried_row_of_a_location_no_longer_shared_is_cancelled(emsp, fake):
    ours()
    fake.answers = [(200, envelope(status_code=2001, message="Bad location"))]
    outbox.drain(emsp.partner.pk)
    Location.objects.filter(location_id="LOC1").update(shared=False)
    failed = Delivery.objects.get(state=DeliveryState.FAILED)

    assert outbox.retry([failed]) == 0

    failed.refresh_from_db()
    assert failed.state == DeliveryState.CANCELLED
    assert "no longer ours to send" in failed.last_error
    assert len(fake.pushes) == 1


@pytest.mark.parametrize(
    "answer",
    [httpx.ReadTimeout("timed out"), (500, {}), (400, {"status_code": 2001, "timestamp": "x"})],
    ids=["timeout", "http-500", "refused"],
)
def test_a_row_cancelled_while_in_flight_stays_cancelled_when_the_send_fails(emsp, fake, answer):
    """The partner goes OFFLINE (a ping run) while the row is being sent, then the send fails:
    the row must not come back as PENDING (or FAILED), or it would be replayed after the full
    resend of the partner's return."""
    from credentials import liveness
    from credentials.models import ConnectionStatus

    ours()
    fake.answers = [answer]

    def offline(request: httpx.Request) -> None:
        liveness.set_status(emsp.partner.pk, ConnectionStatus.OFFLINE, "3 consecutive pings failed")

    with use_transport(hooked(fake, offline)):
        outbox.drain(emsp.partner.pk)

    [row] = rows(emsp)
    assert row.state == DeliveryState.CANCELLED, row.last_error
    assert "OFFLINE" in row.last_error


def test_a_row_delivered_while_it_was_cancelled_is_sent(emsp, fake):
    from credentials import liveness
    from credentials.models import ConnectionStatus

    ours()

    def offline(request: httpx.Request) -> None:
        liveness.set_status(emsp.partner.pk, ConnectionStatus.OFFLINE, "3 consecutive pings failed")

    with use_transport(hooked(fake, offline)):
        outbox.drain(emsp.partner.pk)

    [row] = rows(emsp)
    assert row.state == DeliveryState.SENT
