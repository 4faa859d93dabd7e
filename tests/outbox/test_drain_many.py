"""``deliver_many`` drains its partners concurrently (``services.drain_many``, the process's drain
threads), with real threads and real transactions on PostgreSQL:

- different partners are sent to at the same time; each partner's rows still go one at a time,
  in order, under its lease, also when two tasks drain the same partners at once;
- one partner's failure does not keep the others from their drain;
- the drains carry the caller's context (the tests' transport seam, the correlation id).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ocpi_platform.ocpi.client import use_transport
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from outbox.tasks import deliver, deliver_many
from tests.concurrency import race
from tests.fakes.locations_partner import LocationsPartner
from tests.outbox.test_push import ours, receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _threads(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[None]:
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: None)
    monkeypatch.setattr(deliver_many, "apply_async", lambda **kwargs: None)
    settings.OCPI_OUTBOX_DRAIN_THREADS = 4
    yield
    outbox.stop_drain_threads()  # their database connections are closed


def partners(count: int) -> list[int]:
    return [
        receiver(
            f"p{n}",
            url=f"https://p{n}.test/ocpi/2.2.1/locations",
            country_code="DE",
            party_id=f"P{n:02d}",
        ).partner.pk
        for n in range(count)
    ]


class Meeting(httpx.BaseTransport):
    """Holds the first request to each of ``hosts`` until all of them are in flight at once:
    with drains one after the other, the barrier breaks (after 5 s) and the drains fail."""

    def __init__(self, inner: httpx.BaseTransport, hosts: int) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(hosts, timeout=5)
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            first = request.url.host not in self.seen
            self.seen.add(request.url.host)
        if first:
            self.barrier.wait()
        return self.inner.handle_request(request)


def locations_seen(fake: LocationsPartner, host: str) -> list[str]:
    return [p.path.rsplit("/", 1)[1] for p in fake.pushes if httpx.URL(p.url).host == host]


def test_partners_are_drained_at_the_same_time():
    ids = partners(3)
    ours("LOC1")
    fake = LocationsPartner(accepted_tokens={"partner-token-c"})
    meeting = Meeting(fake.transport(), hosts=3)
    with use_transport(meeting):
        assert deliver_many.apply(kwargs={"partner_ids": ids}).get() == 3
    assert not meeting.barrier.broken
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}


def test_each_partners_rows_go_in_order_while_partners_run_concurrently(settings):
    settings.OCPI_OUTBOX_BATCH = 3
    ids = partners(3)
    for number in range(1, 9):
        ours(f"LOC{number}")
    fake = LocationsPartner(accepted_tokens={"partner-token-c"})
    with use_transport(Meeting(fake.transport(), hosts=3)):
        assert outbox.drain_many(ids, owner="task") == 24
    for n in range(3):
        assert locations_seen(fake, f"p{n}.test") == [f"LOC{k}" for k in range(1, 9)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}


def test_two_tasks_draining_the_same_partners_send_each_row_once_in_order(settings):
    settings.OCPI_OUTBOX_BATCH = 2
    ids = partners(3)
    for number in range(1, 7):
        ours(f"LOC{number}")
    fake = LocationsPartner(accepted_tokens={"partner-token-c"})

    def task(name: str) -> Any:
        def run() -> int:
            with use_transport(fake.transport()):
                return outbox.drain_many(ids, owner=name)

        return run

    first, second = race(task("a"), task("b"))
    assert first + second == 18, (first, second)
    for n in range(3):
        assert locations_seen(fake, f"p{n}.test") == [f"LOC{k}" for k in range(1, 7)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}


def test_one_partners_failure_does_not_keep_the_others_from_their_drain(monkeypatch, caplog):
    ids = partners(3)
    ours("LOC1")
    real = outbox.drain

    def drain(partner_id: int, *, owner: str | None = None) -> int:
        if partner_id == ids[1]:
            raise RuntimeError("a bug")
        return real(partner_id, owner=owner)

    monkeypatch.setattr(outbox, "drain", drain)
    fake = LocationsPartner(accepted_tokens={"partner-token-c"})
    with use_transport(fake.transport()):
        assert outbox.drain_many(ids, owner="task") == 2
    states = dict(Delivery.objects.values_list("partner_id", "state"))
    assert states == {
        ids[0]: DeliveryState.SENT,
        ids[1]: DeliveryState.PENDING,
        ids[2]: DeliveryState.SENT,
    }
    assert f"Outbox drain of partner {ids[1]} failed" in caplog.text


def test_the_drain_threads_keep_their_connection_and_are_replaced_for_a_new_size(settings):
    ids = partners(2)
    ours("LOC1")
    fake = LocationsPartner(accepted_tokens={"partner-token-c"})
    with use_transport(fake.transport()):
        outbox.drain_many(ids, owner="a")
        threads = outbox._drain_threads()
        ours("LOC2")
        outbox.drain_many(ids, owner="b")
        assert outbox._drain_threads() is threads
        settings.OCPI_OUTBOX_DRAIN_THREADS = 2
        ours("LOC3")
        assert outbox.drain_many(ids, owner="c") == 2
        assert outbox._drain_threads() is not threads
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 6
