"""Races around the drain's lease, with real concurrent transactions on PostgreSQL.

- A drain whose lease lapsed while its request was in flight (a missed heartbeat) has its row
  put back by the drain that takes the lease over; a newer change then folds into that row. The
  first request's reply must not mark the row SENT: the partner only got the older body.
- The sweep must never put back the row of a drain that took the lease between two of its
  statements: it only starts drains; the drain that takes the lease puts back a dead one's rows.
- The heartbeat thread reconnects after its database connection broke.
- Lease ends are the database's clock: a worker whose clock runs ahead does not take over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine
from django.db import connection, connections

from locations import services
from locations.models import Evse
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import now_utc
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState, OutboxLease
from outbox.tasks import deliver
from tests.conftest import RegisteredPartner
from tests.fakes.locations_partner import LocationsPartner
from tests.outbox.test_push import EVSE, evse_status_seen_by, hooked, ours, receiver, rows


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in another thread, on its own database connection (another transaction)."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return out[0] if out else None


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def fake() -> LocationsPartner:
    return LocationsPartner(accepted_tokens={"partner-token-c"})


def charging() -> tuple[RegisteredPartner, Delivery]:
    """A partner that has our location; one PATCH (status CHARGING) is pending for it."""
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    Delivery.objects.update(state=DeliveryState.SENT)
    services.set_evse_status(EVSE, "CHARGING")
    [row] = Delivery.objects.filter(state=DeliveryState.PENDING)
    return emsp, row


def our_status() -> str:
    return Evse.objects.get(uid="3256", location__partner=None).status


@pytest.mark.django_db(transaction=True)
def test_a_change_folded_into_a_row_put_back_while_in_flight_is_sent(started, fake):
    emsp, row = charging()
    seen_in_flight: list[str] = []

    def lease_lapses(request: httpx.Request) -> None:
        if seen_in_flight:
            return
        # Drain A's heartbeat missed its beats: its lease lapsed while the PATCH is in flight.
        OutboxLease.objects.filter(partner=emsp.partner).update(
            until=now_utc() - timedelta(seconds=1)
        )
        # Drain B (started by the sweep) takes the lease over and puts the row back...
        assert in_thread(lambda: outbox._claim(emsp.partner.pk, "B"))
        seen_in_flight.append(Delivery.objects.get(pk=row.pk).state)
        # ... and a newer change folds into it before A's reply arrives.
        in_thread(lambda: services.set_evse_status(EVSE, "BLOCKED"))

    with use_transport(hooked(fake, lease_lapses)):
        outbox.drain(emsp.partner.pk, owner="A")  # its reply: 200; then it sees it lost the lease
        assert seen_in_flight == [DeliveryState.PENDING]
        assert Delivery.objects.get(pk=row.pk).state == DeliveryState.PENDING  # not SENT
        outbox.drain(emsp.partner.pk, owner="B")  # B goes on

    assert [(p.method, p.body["status"]) for p in fake.pushes] == [
        ("PATCH", "CHARGING"),
        ("PATCH", "BLOCKED"),  # the folded change, sent again with the newest state
    ]
    assert evse_status_seen_by(fake) == our_status() == "BLOCKED"
    assert [r.state for r in rows(emsp, pk=row.pk)] == [DeliveryState.SENT]


@pytest.mark.django_db(transaction=True)
def test_a_reply_to_a_row_taken_again_by_another_drain_leaves_that_drains_send_alone(fake):
    """A's lease lapsed; B put the row back and is sending it itself when A's (failed) reply
    comes: A must not store its outcome (PENDING with a backoff) over B's send in flight."""
    emsp, row = charging()
    b_in_flight, a_done = threading.Event(), threading.Event()
    states: list[str] = []

    def two_drains(request: httpx.Request) -> None:
        if threading.current_thread().name == "drain-B":
            b_in_flight.set()
            assert a_done.wait(20)  # B's reply comes after A's
            return
        OutboxLease.objects.filter(partner=emsp.partner).update(
            until=now_utc() - timedelta(seconds=1)
        )
        drain_b.start()
        assert b_in_flight.wait(20)
        fake.answers = [(503, {})]  # A's request fails transiently

    transport = hooked(fake, two_drains)

    def run_b() -> None:
        try:
            with use_transport(transport):  # a context variable: set it in this thread too
                outbox.drain(emsp.partner.pk, owner="B")
        finally:
            connections.close_all()

    drain_b = threading.Thread(target=run_b, name="drain-B")
    with use_transport(transport):
        outbox.drain(emsp.partner.pk, owner="A")
        states.append(Delivery.objects.get(pk=row.pk).state)
        a_done.set()
        drain_b.join(30)

    assert states == [DeliveryState.SENDING]  # still B's send, not A's backoff
    after = Delivery.objects.get(pk=row.pk)
    assert (after.state, after.attempts, after.last_error) == (DeliveryState.SENT, 1, "")


class _PauseAfterFirstQuery:
    """Holds a thread's first database statement's result until ``go_on`` is set."""

    def __init__(self) -> None:
        self.paused, self.go_on = threading.Event(), threading.Event()

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if not self.paused.is_set():
            self.paused.set()
            self.go_on.wait(20)  # preempted, or a slow network between two statements
        return result


@pytest.mark.django_db(transaction=True)
def test_the_sweep_never_puts_back_the_row_of_a_drain_that_took_the_lease_meanwhile(started, fake):
    emsp, row = charging()
    pause = _PauseAfterFirstQuery()

    def sweep_slowly() -> None:
        try:
            with connection.execute_wrapper(pause):
                outbox.sweep()
        finally:
            connections.close_all()

    sweeper = threading.Thread(target=sweep_slowly)
    sweeper.start()
    assert pause.paused.wait(20)  # the sweep read the leases: none held
    state_in_flight: list[str] = []

    def in_flight(request: httpx.Request) -> None:
        if state_in_flight:
            return
        pause.go_on.set()  # the sweep goes on while our drain holds the lease
        sweeper.join(20)
        state_in_flight.append(Delivery.objects.get(pk=row.pk).state)
        in_thread(lambda: services.set_evse_status(EVSE, "BLOCKED"))

    with use_transport(hooked(fake, in_flight)):
        outbox.drain(emsp.partner.pk, owner="A")  # a live drain: its lease held all along

    assert state_in_flight == [DeliveryState.SENDING]
    assert evse_status_seen_by(fake) == our_status() == "BLOCKED"
    assert Delivery.objects.open().count() == 0


@pytest.mark.django_db(transaction=True)
def test_rows_left_sending_without_any_lease_are_put_back_by_the_drain_the_sweep_starts(
    started, fake
):
    emsp, row = charging()
    Delivery.objects.filter(pk=row.pk).update(state=DeliveryState.SENDING)
    OutboxLease.objects.filter(partner=emsp.partner).delete()  # never held (or lost)
    started.clear()

    assert outbox.sweep() == 1
    assert [call["kwargs"]["partner_id"] for call in started] == [emsp.partner.pk]
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENDING  # the sweep wrote none
    with use_transport(fake.transport()):
        assert outbox.drain(emsp.partner.pk) == 1
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENT


def _other_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_reconnects_after_its_connection_broke(settings, caplog):
    settings.OCPI_OUTBOX_LEASE_SECONDS = 1.0  # a beat every 1/3 s
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    assert outbox._claim(emsp.partner.pk, "A")
    before = set(_other_backends())
    caplog.set_level(logging.WARNING, logger="outbox.services")
    with outbox._Heartbeat(emsp.partner.pk, "A"):
        deadline = time.monotonic() + 5
        while not (heartbeat := set(_other_backends()) - before):
            assert time.monotonic() < deadline, "the heartbeat never connected"
            time.sleep(0.05)
        with connection.cursor() as cursor:
            for pid in heartbeat:  # the heartbeat thread's backend dies (restart, failover)
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        time.sleep(2.5)  # several beats; the lease is 1 s
        until = OutboxLease.objects.get(partner=emsp.partner).until
        assert until is not None
        assert until > now_utc(), "lease lapsed: no beat reconnected"
    assert any("not renewed" in r.getMessage() for r in caplog.records)  # it did break


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_clock_runs_ahead_does_not_take_a_live_lease_over(started, fake):
    emsp, _row = charging()
    assert outbox._claim(emsp.partner.pk, "A")  # drain A holds the lease (9 s)

    with (
        time_machine.travel(now_utc() + timedelta(seconds=60), tick=False),  # B's clock
        use_transport(fake.transport()),
    ):
        assert outbox.drain(emsp.partner.pk, owner="B") == 0
        assert outbox.sweep() == 0
    assert OutboxLease.objects.get(partner=emsp.partner).owner == "A"
    assert fake.pushes == []
