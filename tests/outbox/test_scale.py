"""The outbox at scale: one queued drain per partner, cheap empty drains, pooled clients, batches.

- A change queues a drain only for the partners that have none queued
  (``OutboxLease.scheduled_at``): a burst of changes queues one task per partner.
- A drain with nothing to send costs one statement and builds no HTTP client.
- One client per partner and process is reused between drains, and replaced (the old one
  closed) when the partner's token or endpoint URL changes; the URL policy still holds.
- Rows are taken in batches and stored SENT per batch, in order, also with drains running
  concurrently (real threads, real transactions).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.db import connections

from credentials import liveness, tokens
from credentials.models import PartnerEndpoint
from locations import services
from locations.models import Evse
from locations.paths import ObjectPath
from ocpi_platform.ocpi import client as ocpi_client
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import now_utc
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState, OutboxLease
from outbox.tasks import deliver
from tests.fakes.locations_partner import LocationsPartner
from tests.fakes.partner import envelope
from tests.outbox.test_push import EVSE, evse_status_seen_by, ours, receiver, settle

OTHER_EVSE = ObjectPath("NL", "ABC", "LOC1", "3257")


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[ocpi_client.OcpiClient]:
    """Every outbound client built from now on."""
    made: list[ocpi_client.OcpiClient] = []
    original = liveness.client_for

    def counting(*args: Any, **kwargs: Any) -> ocpi_client.OcpiClient:
        client = original(*args, **kwargs)
        made.append(client)
        return client

    monkeypatch.setattr(liveness, "client_for", counting)
    liveness.clients.close_all()
    yield made
    liveness.clients.close_all()


def drained(partner_id: int) -> None:
    """The drain queued for the partner runs (it clears the partner's flag)."""
    outbox.drain(partner_id)


def in_another_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a thread of its own (its own database connection, its own
    transactions), and wait for it."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)


def assert_patches_in_order(fake: LocationsPartner, *evses: ObjectPath) -> None:
    """Each EVSE's status as the partner has it is ours, and no PATCH of it reached the
    partner after a newer one."""
    for evse in evses:
        ours_now = Evse.objects.get(uid=evse.evse_uid, location__partner=None).status
        assert evse_status_seen_by(fake, evse.evse_uid) == ours_now
        stamps = [
            p.body["last_updated"]
            for p in fake.pushes
            if p.method == "PATCH" and p.path.endswith("/" + evse.evse_uid)
        ]
        assert stamps == sorted(stamps), "a PATCH reached the partner after a newer one"


# --- one queued drain per partner --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_changes_queues_one_drain_per_partner(started):
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    nsp = receiver("fr-nsp", country_code="FR", party_id="NSP", role="NSP")
    ours()
    for status in ["CHARGING", "BLOCKED", "AVAILABLE", "CHARGING", "OUTOFORDER"] * 4:
        services.set_evse_status(EVSE, status)

    assert sorted(call["kwargs"]["partner_id"] for call in started) == sorted(
        [emsp.partner.pk, nsp.partner.pk]
    )
    assert all(call["countdown"] == 0 for call in started)
    assert OutboxLease.objects.filter(scheduled_at__isnull=False).count() == 2

    # The drain runs (here with nothing reachable to send to: it clears the flag first); the
    # next change queues one drain again.
    started.clear()
    OutboxLease.objects.update(scheduled_at=None)
    services.set_evse_status(EVSE, "AVAILABLE")
    services.set_evse_status(EVSE, "BLOCKED")
    assert len(started) == 2


@pytest.mark.django_db(transaction=True)
def test_a_drain_clears_the_flag_so_the_next_change_queues_a_drain(started, fake):
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    assert len(started) == 1
    with use_transport(fake.transport()):
        assert outbox.drain(emsp.partner.pk) == 1
    assert OutboxLease.objects.get(partner=emsp.partner).scheduled_at is None

    services.set_evse_status(EVSE, "CHARGING")
    services.set_evse_status(EVSE, "BLOCKED")
    assert len(started) == 2


@pytest.mark.django_db(transaction=True)
def test_a_change_while_the_lease_is_held_is_sent_by_the_drain_holding_it(started, fake):
    """The task queued by a change finds the lease held and returns; the ``recheck`` mark it
    leaves tells the drain holding the lease to go on when it releases the lease."""
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    changed: list[int] = []

    def during(request: httpx.Request) -> None:
        if changed:
            return
        changed.append(1)

        def change_and_queued_drain() -> None:
            services.set_evse_status(EVSE, "BLOCKED")
            with use_transport(fake.transport()):
                changed.append(outbox.drain(emsp.partner.pk))  # the lease is held: 0

        in_another_thread(change_and_queued_drain)

    with use_transport(httpx.MockTransport(lambda r: (during(r), fake.handler(r))[1])):
        assert outbox.drain(emsp.partner.pk) == 2
    assert changed == [1, 0]

    assert [p.body["status"] for p in fake.pushes] == ["CHARGING", "BLOCKED"]
    assert Delivery.objects.open().count() == 0
    assert OutboxLease.objects.get(partner=emsp.partner).scheduled_at is None


@pytest.mark.django_db(transaction=True)
def test_a_lease_let_go_without_its_release_still_gets_drains(started, fake):
    """A ``recheck`` mark on a lease with no holder (``until`` NULL; an error's release used
    to leave one) keeps neither changes nor the sweep from queueing drains: the test is false
    there, not SQL's unknown."""
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    OutboxLease.objects.filter(partner=emsp.partner).update(
        recheck=True, until=None, owner="", scheduled_at=None
    )
    started.clear()

    assert outbox.wake([emsp.partner.pk]) == [emsp.partner.pk]
    OutboxLease.objects.filter(partner=emsp.partner).update(scheduled_at=None)
    assert outbox.sweep() == 1
    assert len(started) == 2


def test_the_sweep_queues_again_only_when_the_queued_drain_is_overdue(
    emsp, django_capture_on_commit_callbacks, started, settings
):
    settings.OCPI_OUTBOX_WAKE_STALE_SECONDS = 30
    ours()
    OutboxLease.objects.update_or_create(
        partner=emsp.partner, defaults={"scheduled_at": now_utc() - timedelta(seconds=5)}
    )
    with django_capture_on_commit_callbacks(execute=True):
        outbox.sweep()
    assert started == []  # a drain is queued, due 5 s ago: not lost yet

    OutboxLease.objects.update(scheduled_at=now_utc() - timedelta(seconds=31))
    with django_capture_on_commit_callbacks(execute=True):
        outbox.sweep()
    assert [call["kwargs"]["partner_id"] for call in started] == [emsp.partner.pk]
    assert OutboxLease.objects.get(partner=emsp.partner).scheduled_at > now_utc() - timedelta(
        seconds=5
    )


# --- an empty drain ----------------------------------------------------------------------------


def test_a_drain_with_nothing_to_send_costs_one_statement_and_no_client(
    emsp, fake, built, django_assert_max_num_queries
):
    ours()
    assert outbox.drain(emsp.partner.pk) == 1
    built.clear()

    with django_assert_max_num_queries(1):
        assert outbox.drain(emsp.partner.pk) == 0
    assert built == []
    assert OutboxLease.objects.get(partner=emsp.partner).until is None  # no lease taken


def test_a_drain_of_one_row_costs_few_statements(emsp, fake, django_assert_max_num_queries):
    ours()
    assert outbox.drain(emsp.partner.pk) == 1  # the client is built and the partner seen
    services.set_evse_status(EVSE, "CHARGING")

    # open (taking the lease), one batch, its SENT, release.
    with django_assert_max_num_queries(4):
        assert outbox.drain(emsp.partner.pk) == 1
    assert evse_status_seen_by(fake) == "CHARGING"


# --- pooled clients ----------------------------------------------------------------------------


def test_a_pooled_client_is_reused_between_drains(emsp, fake, built):
    ours()
    outbox.drain(emsp.partner.pk)
    services.set_evse_status(EVSE, "CHARGING")
    outbox.drain(emsp.partner.pk)
    services.set_evse_status(EVSE, "BLOCKED")
    outbox.drain(emsp.partner.pk)

    assert len(built) == 1
    assert len(fake.pushes) == 3
    assert not built[0]._http.is_closed


@pytest.mark.parametrize("what", ["token", "url"])
def test_a_pooled_client_is_closed_and_replaced_when_the_token_or_url_changes(
    emsp, fake, built, what
):
    ours()
    outbox.drain(emsp.partner.pk)
    [first] = built
    if what == "token":
        partner = emsp.partner
        partner.refresh_from_db()
        tokens.set_outbound_token(partner, "other-token-c")
        partner.save()
    else:
        PartnerEndpoint.objects.filter(partner=emsp.partner, identifier="locations").update(
            url="https://partner.test/ocpi/2.2.1/locations-moved"
        )
    services.set_evse_status(EVSE, "CHARGING")
    outbox.drain(emsp.partner.pk)

    assert len(built) == 2
    assert first._http.is_closed
    assert not built[1]._http.is_closed
    last = fake.requests[-1]
    if what == "token":
        assert last.headers["authorization"] == "Token b3RoZXItdG9rZW4tYw=="
    else:
        assert "/locations-moved/" in last.url


def test_a_pooled_client_keeps_the_outbound_url_policy(emsp, fake, built):
    ours()
    outbox.drain(emsp.partner.pk)
    PartnerEndpoint.objects.filter(partner=emsp.partner, identifier="locations").update(
        url="https://10.1.2.3/ocpi/2.2.1/locations"
    )
    services.set_evse_status(EVSE, "CHARGING")
    outbox.drain(emsp.partner.pk)

    row = Delivery.objects.filter(method="PATCH").get()
    assert row.state == DeliveryState.FAILED
    assert "outbound URL policy" in row.last_error
    assert len(fake.pushes) == 1  # the refused call was never sent


def test_a_client_whose_call_was_cut_short_is_not_reused(emsp, fake, built):
    from celery.exceptions import SoftTimeLimitExceeded

    ours()
    fake.answers = [SoftTimeLimitExceeded()]
    with pytest.raises(SoftTimeLimitExceeded):
        outbox.drain(emsp.partner.pk)
    assert built[0]._http.is_closed
    outbox.drain(emsp.partner.pk)
    assert len(built) == 2


# --- batches -----------------------------------------------------------------------------------


def test_rows_are_taken_in_batches_in_order(emsp, fake, settings):
    settings.OCPI_OUTBOX_BATCH = 3
    for number in range(1, 9):
        ours(f"LOC{number}")
    assert outbox.drain(emsp.partner.pk) == 8
    assert [p.path.rsplit("/", 1)[1] for p in fake.pushes] == [f"LOC{n}" for n in range(1, 9)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_a_drain_whose_time_is_up_leaves_the_rest_to_its_next_run(started, fake, settings):
    """After OCPI_OUTBOX_DRAIN_SECONDS a drain stops, whatever its passes: the other partners'
    drains go first, and its next run sends the rest."""
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    settings.OCPI_OUTBOX_BATCH = 2
    settings.OCPI_OUTBOX_DRAIN_SECONDS = 0
    for number in range(1, 6):
        ours(f"LOC{number}")
    started.clear()
    OutboxLease.objects.update(scheduled_at=None)  # the drain the changes queued has run

    with use_transport(fake.transport()):
        assert outbox.drain(emsp.partner.pk) == 2  # one batch
    assert started == [{"kwargs": {"partner_id": emsp.partner.pk}, "countdown": 0.0}]
    assert Delivery.objects.open().count() == 3

    settings.OCPI_OUTBOX_DRAIN_SECONDS = 5
    with use_transport(fake.transport()):
        assert outbox.drain(emsp.partner.pk) == 3
    assert [p.path.rsplit("/", 1)[1] for p in fake.pushes] == [f"LOC{n}" for n in range(1, 6)]


def test_a_transient_failure_in_a_batch_stores_what_went_and_holds_the_rest(emsp, fake):
    for number in range(1, 5):
        ours(f"LOC{number}")
    fake.answers = [
        (200, envelope()),
        (503, {}),
    ]  # the first goes, the second fails: the rest waits
    assert outbox.drain(emsp.partner.pk) == 1

    states = list(Delivery.objects.order_by("id").values_list("state", "attempts"))
    assert states == [
        (DeliveryState.SENT, 1),
        (DeliveryState.PENDING, 1),
        (DeliveryState.PENDING, 0),
        (DeliveryState.PENDING, 0),
    ]
    assert Delivery.objects.filter(claim__isnull=False, state=DeliveryState.SENDING).count() == 0


# --- concurrency: drains racing each other and changes ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_order_per_object_is_kept_under_concurrent_drains(started):
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    fake = LocationsPartner(accepted_tokens={"partner-token-c"})
    ours()
    stop = threading.Event()
    errors: list[BaseException] = []

    def drains() -> None:
        try:
            with use_transport(fake.transport()):
                while not stop.is_set():
                    outbox.drain(emsp.partner.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=drains) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        statuses = ["CHARGING", "BLOCKED", "AVAILABLE", "OUTOFORDER", "INOPERATIVE"]
        for number in range(30):
            services.set_evse_status(EVSE, statuses[number % 5])
            services.set_evse_status(OTHER_EVSE, statuses[(number + 2) % 5])
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    with use_transport(fake.transport()):
        outbox.drain(emsp.partner.pk)

    assert Delivery.objects.open().count() == 0
    assert_patches_in_order(fake, EVSE, OTHER_EVSE)


@pytest.mark.django_db(transaction=True)
def test_changes_while_a_partner_waits_out_a_backoff_queue_no_drain(started, fake):
    """The drain queued for the end of the backoff sends them (the rows wait behind the head)."""
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    started.clear()
    fake.answers = [(503, {})]
    with use_transport(fake.transport()):
        assert outbox.drain(emsp.partner.pk) == 0
    [later] = started
    assert later["countdown"] > 0
    started.clear()

    for status in ["CHARGING", "BLOCKED", "AVAILABLE"] * 3:
        services.set_evse_status(EVSE, status)
    assert started == []
    with use_transport(fake.transport()):
        assert outbox.drain(emsp.partner.pk) == 0  # a drain that starts early waits too
    assert started == []
    assert OutboxLease.objects.get(partner=emsp.partner).scheduled_at > now_utc()


def test_a_wake_of_many_partners_publishes_one_task_per_group(db, monkeypatch, settings):
    from outbox.tasks import deliver_many

    settings.OCPI_OUTBOX_WAKE_GROUP = 5
    groups: list[dict[str, Any]] = []
    singles: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver_many, "apply_async", lambda **kwargs: groups.append(kwargs))
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: singles.append(kwargs))
    ids = [receiver(f"p{n}", country_code="DE", party_id=f"P{n:02d}").partner.pk for n in range(12)]

    assert outbox.wake(ids) == sorted(ids)
    assert singles == []
    assert len(groups) == 3
    assert sorted(i for g in groups for i in g["kwargs"]["partner_ids"]) == sorted(ids)
    assert outbox.wake(ids) == []  # all queued already
    assert outbox.wake(ids[:2]) == []
    OutboxLease.objects.filter(partner_id=ids[0]).update(scheduled_at=None)
    assert outbox.wake(ids) == [ids[0]]
    assert singles == [{"kwargs": {"partner_id": ids[0]}, "countdown": 0.0}]


def test_a_group_task_drains_each_partner_even_when_one_fails(emsp, fake, monkeypatch):
    from outbox.tasks import deliver_many

    nsp = receiver("fr-nsp", country_code="FR", party_id="NSP", role="NSP")
    ours()
    real = outbox.drain

    def drain(partner_id: int, *, owner: str | None = None) -> int:
        if partner_id == emsp.partner.pk:
            raise RuntimeError("a bug")
        return real(partner_id, owner=owner)

    monkeypatch.setattr(outbox, "drain", drain)
    ids = [emsp.partner.pk, nsp.partner.pk]
    assert deliver_many.apply(kwargs={"partner_ids": ids}).get() == 1
    assert Delivery.objects.get(partner=nsp.partner).state == DeliveryState.SENT


@pytest.mark.django_db(transaction=True)
def test_a_drain_does_not_chase_changes_one_by_one(started, fake):
    """Changes keep coming while it sends: after a few passes it queues its next run (behind the
    other partners' drains) instead of going on."""
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    statuses = iter(["BLOCKED", "AVAILABLE", "OUTOFORDER", "CHARGING", "BLOCKED"] * 2)

    def change_during(request: httpx.Request) -> None:
        in_another_thread(lambda: services.set_evse_status(EVSE, next(statuses)))

    started.clear()
    with use_transport(httpx.MockTransport(lambda r: (change_during(r), fake.handler(r))[1])):
        assert outbox.drain(emsp.partner.pk) == outbox.IN_PLACE_PASSES
    # The first change queued a drain (its task has not run); the later ones and the drain
    # that ran out of passes queued none: that queued drain is its next run.
    assert started == [{"kwargs": {"partner_id": emsp.partner.pk}, "countdown": 0.0}]
    assert OutboxLease.objects.get(partner=emsp.partner).scheduled_at is not None
    assert Delivery.objects.open().count() == 1  # for the next run
    with use_transport(fake.transport()):
        assert outbox.drain(emsp.partner.pk) == 1
    assert evse_status_seen_by(fake) == Evse.objects.get(uid="3256", location__partner=None).status


@pytest.mark.django_db(transaction=True)
def test_a_drain_that_finds_the_lease_held_leaves_the_changes_to_the_holder(started, fake):
    """The queued drain that finds the lease held marks it ``recheck``: changes meanwhile
    queue no drain, and the holder sends them when it releases the lease."""
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    settle()
    services.set_evse_status(EVSE, "CHARGING")
    seen: list[Any] = []

    def during(request: httpx.Request) -> None:
        if seen:
            return
        seen.append("first request")

        def changes_and_their_drain() -> None:
            started.clear()
            services.set_evse_status(EVSE, "BLOCKED")  # queues a drain: the flag was clear
            seen.append(len(started))
            with use_transport(fake.transport()):
                seen.append(outbox.drain(emsp.partner.pk))  # held: 0, marks it
            lease = OutboxLease.objects.get(partner=emsp.partner)
            seen.append((lease.recheck, lease.scheduled_at))
            services.set_evse_status(EVSE, "AVAILABLE")
            services.set_evse_status(OTHER_EVSE, "BLOCKED")
            seen.append(len(started))  # no drain queued for these

        in_another_thread(changes_and_their_drain)

    with use_transport(httpx.MockTransport(lambda r: (during(r), fake.handler(r))[1])):
        # CHARGING, then AVAILABLE (BLOCKED, not sent yet, is folded into it) and OTHER_EVSE.
        assert outbox.drain(emsp.partner.pk) == 3
    assert seen == ["first request", 1, 0, (True, None), 1]
    assert evse_status_seen_by(fake) == "AVAILABLE"
    assert evse_status_seen_by(fake, OTHER_EVSE.evse_uid) == "BLOCKED"
    lease = OutboxLease.objects.get(partner=emsp.partner)
    assert (lease.recheck, lease.scheduled_at, lease.until) == (False, None, None)
    assert Delivery.objects.open().count() == 0

    # Once the lease is released, a change queues a drain again.
    services.set_evse_status(EVSE, "CHARGING")
    assert len(started) == 2


@pytest.mark.django_db(transaction=True)
def test_queued_drains_and_changes_racing_a_holder_lose_nothing(monkeypatch, fake):
    """Real threads and transactions: changes come in while workers run every drain that is
    queued, as soon as it is queued. Every row is sent, in order per object, and the drains
    queued stay far fewer than the changes."""
    queued: list[int] = []
    tasks: queue.Queue[int | None] = queue.Queue()

    def publish(**kwargs: Any) -> None:
        queued.append(kwargs["kwargs"]["partner_id"])
        tasks.put(kwargs["kwargs"]["partner_id"])

    monkeypatch.setattr(deliver, "apply_async", publish)
    receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    settle()  # the drain ours() queued runs first and finds nothing
    slow = httpx.MockTransport(lambda r: (time.sleep(0.02), fake.handler(r))[1])
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with use_transport(slow):
                while (partner_id := tasks.get()) is not None:
                    outbox.drain(partner_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=worker) for _ in range(3)]
    for thread in workers:
        thread.start()
    statuses = ["CHARGING", "BLOCKED", "AVAILABLE", "OUTOFORDER", "INOPERATIVE"]
    try:
        for number in range(60):
            services.set_evse_status(EVSE, statuses[number % 5])
            services.set_evse_status(OTHER_EVSE, statuses[(number + 2) % 5])
        deadline = time.monotonic() + 30
        while Delivery.objects.open().exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for _ in workers:
            tasks.put(None)
        for thread in workers:
            thread.join(30)
    assert errors == []
    assert Delivery.objects.open().count() == 0, "rows left behind with no drain queued"
    assert_patches_in_order(fake, EVSE, OTHER_EVSE)
    assert len(queued) < 60, f"{len(queued)} drains queued for 120 changes"
