"""A partner's ``Retry-After`` (429, 503) is the earliest next push to that partner.

BACKOFF is (7, 11) in these tests: a ``Retry-After`` later than the backoff wins, an earlier one
does not shorten it. Time is moved with time-machine; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.utils import format_datetime as http_date

import httpx
import pytest
import time_machine

from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import now_utc
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState, OutboxLease
from tests.fakes.locations_partner import LocationsPartner
from tests.fakes.partner import envelope
from tests.outbox.test_push import BACKOFF, close_to, ours, rows, scheduled


@pytest.fixture(autouse=True)
def _backoff(settings) -> None:
    settings.OCPI_OUTBOX_BACKOFF = BACKOFF


class Throttling:
    """The fake partner, answering the first requests with ``status`` and ``Retry-After``."""

    def __init__(self, fake: LocationsPartner, retry_after: list[str], status: int = 429) -> None:
        self.fake, self.retry_after, self.status = fake, list(retry_after), status
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.retry_after:
            return httpx.Response(
                self.status,
                json=envelope(status_code=2000, message="slow down"),
                headers={"Retry-After": self.retry_after.pop(0)},
            )
        return self.fake.handler(request)


@pytest.fixture
def partner() -> LocationsPartner:
    return LocationsPartner(accepted_tokens={"partner-token-c"})


@contextmanager
def throttled(fake: LocationsPartner, *values: str, status: int = 429) -> Iterator[Throttling]:
    throttling = Throttling(fake, list(values), status)
    with use_transport(httpx.MockTransport(throttling.handler)):
        yield throttling


@pytest.fixture
def throttle_8(partner: LocationsPartner) -> Iterator[Throttling]:
    with throttled(partner, "8") as throttling:
        yield throttling


def test_a_429_with_retry_after_8_is_not_retried_before_8_seconds(
    emsp, throttle_8, django_capture_on_commit_callbacks
):
    ours("LOC1")
    ours("LOC2")
    start = now_utc()
    with (
        time_machine.travel(start, tick=False),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        assert outbox.drain(emsp.partner.pk) == 0

    head, _behind = rows(emsp)
    assert head.state == DeliveryState.PENDING
    assert head.http_status == 429
    assert head.next_attempt_at == start + timedelta(seconds=8)  # not the 7 s backoff
    assert scheduled(callbacks) == [(emsp.partner.pk, 8.0)]
    assert OutboxLease.objects.get(partner=emsp.partner).not_before == start + timedelta(seconds=8)
    assert len(throttle_8.requests) == 1

    # 7.9 s later: the backoff is over, the Retry-After is not. Nothing goes, the sweep waits.
    with time_machine.travel(start + timedelta(seconds=7.9), tick=False):
        with django_capture_on_commit_callbacks() as callbacks:
            assert outbox.sweep() == 0
            assert outbox.drain(emsp.partner.pk) == 0
        [(partner_id, countdown)] = scheduled(callbacks)
        assert partner_id == emsp.partner.pk
        assert countdown == pytest.approx(0.1)
    assert len(throttle_8.requests) == 1

    with time_machine.travel(start + timedelta(seconds=8.1), tick=False):
        with django_capture_on_commit_callbacks() as callbacks:
            assert outbox.sweep() == 1
        assert outbox.drain(emsp.partner.pk) == 2
    assert [r.state for r in rows(emsp)] == [DeliveryState.SENT, DeliveryState.SENT]
    assert len(throttle_8.requests) == 3


def test_nothing_goes_to_the_partner_before_its_retry_after_not_even_a_retried_row(
    emsp, partner, django_capture_on_commit_callbacks
):
    """The operator retries an older failed row meanwhile: it waits for the partner too."""
    ours("LOC1")
    ours("LOC2")
    partner.answers = [(200, envelope(status_code=2001, message="bad"))]
    with use_transport(partner.transport()):
        outbox.drain(emsp.partner.pk)  # LOC1 refused, LOC2 sent
    ours("LOC3")
    start = now_utc()
    with time_machine.travel(start, tick=False), throttled(partner, "30") as throttling:
        outbox.drain(emsp.partner.pk)  # LOC3: 429, Retry-After 30
        failed = Delivery.objects.get(state=DeliveryState.FAILED)
        assert outbox.retry([failed]) == 1
        assert outbox.drain(emsp.partner.pk) == 0
        assert len(throttling.requests) == 1

    later = start + timedelta(seconds=30.5)
    with time_machine.travel(later, tick=False), use_transport(partner.transport()):
        assert outbox.drain(emsp.partner.pk) == 2
    assert {r.state for r in rows(emsp)} == {DeliveryState.SENT}


@pytest.mark.parametrize(
    ("status", "value", "wait"),
    [
        pytest.param(429, "in-20s-http-date", 20.0, id="http-date"),
        pytest.param(503, "30", 30.0, id="503-seconds"),
        pytest.param(429, "2", BACKOFF[0], id="shorter-than-the-backoff"),
    ],
)
def test_retry_after_as_seconds_or_http_date_is_the_earliest_next_attempt(
    emsp, partner, django_capture_on_commit_callbacks, status, value, wait
):
    ours()
    start = (now_utc() + timedelta(seconds=1)).replace(microsecond=0)
    if value == "in-20s-http-date":
        value = http_date(start + timedelta(seconds=20), usegmt=True)
    with (
        time_machine.travel(start, tick=False),
        throttled(partner, value, status=status),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        outbox.drain(emsp.partner.pk)

    [row] = rows(emsp)
    assert row.http_status == status
    assert close_to(row.next_attempt_at, start + timedelta(seconds=wait), slack=0.01)
    [(_, countdown)] = scheduled(callbacks)
    assert countdown == pytest.approx(wait)


def test_without_retry_after_the_backoff_alone_decides(emsp, partner):
    ours()
    partner.answers = [(429, envelope(status_code=2000))]
    start = now_utc()
    with time_machine.travel(start, tick=False), use_transport(partner.transport()):
        outbox.drain(emsp.partner.pk)

    [row] = rows(emsp)
    assert row.next_attempt_at == start + timedelta(seconds=BACKOFF[0])
    assert OutboxLease.objects.get(partner=emsp.partner).not_before is None
