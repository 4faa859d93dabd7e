"""The drain's lease: short, renewed while sending, owned; a killed worker's lease is taken over.

A worker killed mid-delivery (SIGKILL) leaves its lease held and its row SENDING. Deliveries
must resume within 15 s of the worker coming back, with at most that one row sent twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection

from credentials.models import PartnerEndpoint
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import now_utc
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState, OutboxLease
from outbox.tasks import deliver
from tests.conftest import RegisteredPartner
from tests.fakes.partner import envelope
from tests.outbox.test_push import hooked, ours, pending, receiver, rows, scheduled

ROOT = Path(__file__).resolve().parents[2]


def lease(partner: RegisteredPartner) -> OutboxLease:
    return OutboxLease.objects.get(partner=partner.partner)


def killed_worker(partner: RegisteredPartner, *, renewed_ago: float = 0.0) -> Delivery:
    """What SIGKILL leaves behind: the row in flight SENDING, the lease held by a dead drain
    that last renewed it ``renewed_ago`` seconds ago."""
    [row] = pending(partner)
    Delivery.objects.filter(pk=row.pk).update(state=DeliveryState.SENDING)
    until = now_utc() + timedelta(seconds=outbox.lease_seconds() - renewed_ago)
    OutboxLease.objects.update_or_create(
        partner=partner.partner, defaults={"until": until, "owner": "dead-task"}
    )
    return row


def expire(partner: RegisteredPartner) -> None:
    """The dead drain's lease ran out (by the database's clock, which lease ends use)."""
    OutboxLease.objects.filter(partner=partner.partner).update(
        until=now_utc() - timedelta(seconds=0.5)
    )


def test_defaults_resume_deliveries_within_15_seconds_of_a_kill():
    """A dead drain's lease runs out within a lease; the next sweep then restarts the drain."""
    assert outbox.lease_seconds() + django_settings.OCPI_OUTBOX_SWEEP_SECONDS <= 15
    entry = django_settings.CELERY_BEAT_SCHEDULE["outbox-sweep"]
    assert entry["schedule"] == django_settings.OCPI_OUTBOX_SWEEP_SECONDS
    assert entry["options"]["expires"] < entry["schedule"]


def test_a_drain_holds_a_short_lease_while_it_sends(emsp, fake):
    ours("LOC1")
    ours("LOC2")
    seen: list[tuple[str, float]] = []

    def note(request: httpx.Request) -> None:
        held = lease(emsp)
        assert held.until is not None
        seen.append((held.owner, (held.until - now_utc()).total_seconds()))

    with use_transport(hooked(fake, note)):
        assert outbox.drain(emsp.partner.pk, owner="task-1") == 2

    assert [owner for owner, _ in seen] == ["task-1", "task-1"]
    assert all(0 < left <= outbox.lease_seconds() for _, left in seen)
    assert (lease(emsp).until, lease(emsp).owner) == (None, "")  # released


def test_a_killed_workers_row_is_resent_once_its_lease_ran_out_and_the_sweep_ran(
    emsp, fake, django_capture_on_commit_callbacks
):
    ours()
    row = killed_worker(emsp)

    # While the dead drain's lease still holds, nothing is sent (it might still be alive).
    assert outbox.drain(emsp.partner.pk) == 0
    assert outbox.sweep() == 0
    assert fake.pushes == []

    # One lease later (lease ends are the database's clock: the lease ran out) the first sweep
    # restarts it: deliveries resume within lease + sweep. The sweep itself changes no row.
    expire(emsp)
    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox.sweep() == 1
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENDING
    assert scheduled(callbacks) == [(emsp.partner.pk, 0)]
    assert outbox.drain(emsp.partner.pk) == 1  # its lease taken, it puts the row back and sends

    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENT
    assert len(fake.pushes) == 1  # the in-flight row, once more: the only possible duplicate


def test_new_changes_also_wait_only_for_the_dead_lease(emsp, fake):
    """Nothing, new changes included, was sent for 116 s: now at most one lease."""
    from locations import services
    from tests.outbox.test_push import EVSE

    ours()
    killed_worker(emsp)
    services.set_evse_status(EVSE, "CHARGING")
    expire(emsp)
    assert outbox.drain(emsp.partner.pk) == 2

    assert [(r.method, r.path.rsplit("/", 1)[1]) for r in fake.pushes] == [
        ("PUT", "LOC1"),
        ("PATCH", "3256"),
    ]


def test_a_dead_drains_row_is_put_back_by_a_drain_that_must_wait_for_a_retry_after(
    emsp, fake, monkeypatch, django_capture_on_commit_callbacks
):
    """The drain takes the lease with its first statement; told to wait (Retry-After), it puts
    the dead drain's row back before it frees the lease (else the row would stay SENDING with no
    lease to tell that its drain died), sends nothing, and the drain queued for later sends it."""
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: queued.append(kwargs))
    ours()
    row = killed_worker(emsp)
    expire(emsp)
    outbox.hold(emsp.partner.pk, 30)

    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.drain(emsp.partner.pk) == 0
    assert fake.pushes == []
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.PENDING
    assert (lease(emsp).until, lease(emsp).owner) == (None, "")
    assert [call["countdown"] for call in queued] == [pytest.approx(30, abs=2)]

    OutboxLease.objects.filter(partner=emsp.partner).update(not_before=None)
    assert outbox.drain(emsp.partner.pk) == 1
    assert [p.path.rsplit("/", 1)[1] for p in fake.pushes] == ["LOC1"]


def test_the_task_redelivered_by_the_broker_takes_over_its_own_lease_at_once(emsp, fake):
    """acks_late + reject_on_worker_lost: the killed task comes back with the same id."""
    ours()
    row = killed_worker(emsp)
    OutboxLease.objects.filter(partner=emsp.partner).update(owner="task-7")

    assert deliver.apply(kwargs={"partner_id": emsp.partner.pk}, task_id="other").get() == 0
    assert fake.pushes == []
    assert deliver.apply(kwargs={"partner_id": emsp.partner.pk}, task_id="task-7").get() == 1

    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENT
    assert len(fake.pushes) == 1
    assert lease(emsp).until is None


def test_a_drain_whose_lease_was_taken_over_stops_and_leaves_the_new_lease(
    emsp, fake, django_capture_on_commit_callbacks, settings
):
    """Presumed dead (no renewal for a lease), it comes back: another drain owns the partner.

    A drain renews its lease with each batch, and before a row once a third of the lease has
    passed since (the heartbeat too, while a request runs): it finds the lease taken then."""
    settings.OCPI_OUTBOX_LEASE_SECONDS = 1.0
    ours("LOC1")
    ours("LOC2")
    until = now_utc() + timedelta(seconds=60)

    def taken_over(request: httpx.Request) -> None:
        OutboxLease.objects.filter(partner=emsp.partner).update(owner="new-owner", until=until)
        time.sleep(outbox.lease_seconds() / 3 + 0.05)  # no renewal meanwhile that it knows of

    with (
        use_transport(hooked(fake, taken_over)),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        assert outbox.drain(emsp.partner.pk, owner="old-owner") == 1

    assert [r.state for r in rows(emsp)] == [DeliveryState.SENT, DeliveryState.PENDING]
    assert len(fake.pushes) == 1
    assert (lease(emsp).owner, lease(emsp).until) == ("new-owner", until)  # not released
    assert scheduled(callbacks) == []  # the new owner drains the rest


@pytest.fixture
def fake():
    from tests.fakes.locations_partner import LocationsPartner

    partner = LocationsPartner(accepted_tokens={"partner-token-c"})
    with use_transport(partner.transport()):
        yield partner


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


# --- real concurrency: a heartbeat thread, a worker process killed mid-request -----------------


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_lease_while_a_slow_request_runs(settings, fake):
    """A request longer than the lease (a slow partner) must not let another drain in."""
    settings.OCPI_OUTBOX_LEASE_SECONDS = 1.0
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    ours()
    during: list[Any] = []

    def slow(request: httpx.Request) -> None:
        if during:
            return  # the nested drain's own request, if it got in
        time.sleep(1.6)  # longer than the lease: only the heartbeat keeps it
        during.append(lease(emsp).until > now_utc())
        during.append(outbox.drain(emsp.partner.pk))  # a second drain is kept out

    with use_transport(hooked(fake, slow)):
        assert outbox.drain(emsp.partner.pk) == 1

    assert during == [True, 0]
    assert len(fake.pushes) == 1


class _Partner(BaseHTTPRequestHandler):
    """A locations receiver on loopback; the first push hangs (the worker dies meanwhile)."""

    got: list[str]
    first_arrived: threading.Event
    release: threading.Event

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.got.append(f"{self.command} {self.path}")
        if len(self.got) == 1:
            self.first_arrived.set()
            self.release.wait(20)
        body = json.dumps(envelope()).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the caller is gone

    do_PATCH = do_PUT

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[tuple[str, type[_Partner]]]:
    handler = type(
        "Handler",
        (_Partner,),
        {"got": [], "first_arrived": threading.Event(), "release": threading.Event()},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ocpi/2.2.1/locations", handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_request_blocks_the_partner_for_one_lease_only(
    settings, loopback, started
):
    url, partner_side = loopback
    lease_seconds = 2.0
    settings.OCPI_OUTBOX_LEASE_SECONDS = lease_seconds
    # A loopback instance may call plain http on loopback (the outbound URL policy).
    settings.OCPI_PUBLIC_URL = "http://127.0.0.1:8000"
    emsp = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    PartnerEndpoint.objects.filter(partner=emsp.partner, identifier="locations").update(url=url)
    ours()
    [row] = rows(emsp)
    started.clear()  # the drain the change itself started (nobody runs it)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "OCPI_OUTBOX_LEASE_SECONDS": str(lease_seconds),
        "OCPI_IGNORE_DOTENV": "1",
    }
    code = "import sys, django; django.setup(); from outbox import services; "
    code += "from django.conf import settings; settings.OCPI_PUBLIC_URL = 'http://127.0.0.1:8000'; "
    code += "services.drain(int(sys.argv[1]))"
    worker = subprocess.Popen([sys.executable, "-c", code, str(emsp.partner.pk)], cwd=ROOT, env=env)
    try:
        assert partner_side.first_arrived.wait(30), "the worker never sent"
        time.sleep(lease_seconds * 0.8)  # the worker's heartbeat renews its lease meanwhile
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed = time.monotonic()
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENDING
    assert lease(emsp).until > now_utc()  # held by the dead worker

    # The beat sweep runs (every OCPI_OUTBOX_SWEEP_SECONDS) until it restarts the drain.
    while not outbox.sweep():
        assert time.monotonic() - killed < lease_seconds + 1, "the dead lease still blocks"
        time.sleep(0.1)
    assert [call["kwargs"]["partner_id"] for call in started] == [emsp.partner.pk]
    partner_side.release.set()
    assert outbox.drain(emsp.partner.pk) == 1

    assert time.monotonic() - killed < lease_seconds + 1
    assert Delivery.objects.get(pk=row.pk).state == DeliveryState.SENT
    # The row in flight when the worker died went twice; nothing else did.
    assert partner_side.got == ["PUT /ocpi/2.2.1/locations/NL/ABC/LOC1"] * 2
