"""Liveness of partners: the status machine, "seen", pings, the ping lock and what follows.

Outbound calls go to an ``httpx.MockTransport`` (``Versions``) through ``use_transport``; the
locks run on a real Redis (db 10, flushed by the ``redis_lock`` fixture) or on a file lock in
``tmp_path``. The seen throttle's clock is ``liveness.time``, replaced by ``Clock`` where a test
moves it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from credentials import handshake, liveness
from credentials import tasks as credential_tasks
from credentials.models import ConnectionStatus, Partner, PartnerState, StatusChange
from credentials.signals import partner_status_changed
from locations import push
from locations import tasks as location_tasks
from ocpi_platform import locks
from ocpi_platform.locks import single_run
from ocpi_platform.ocpi.client import PartnerUnavailable, use_transport
from ocpi_platform.ocpi.types import format_datetime, now_utc
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from tests.conftest import RegisteredPartner, make_registered, partner_offer
from tests.fakes.partner import envelope
from tests.outbox.test_push import document, ours, pending, receiver, rows

pytestmark = pytest.mark.django_db

VERSIONS_URL = "https://partner.test/ocpi/versions"
CREDENTIALS = "/ocpi/2.2.1/credentials"
REDIS_URL = "redis://127.0.0.1:6379/10"
VERSION_LIST = [{"version": "2.2.1", "url": "https://partner.test/ocpi/2.2.1"}]

CONNECTED = ConnectionStatus.CONNECTED
OFFLINE = ConnectionStatus.OFFLINE
PLANNED = ConnectionStatus.PLANNED
SUSPENDED = ConnectionStatus.SUSPENDED


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _liveness_settings(settings: Any, tmp_path: Any) -> None:
    """Known limits; locks on files in this test's own folder unless a test picks Redis."""
    settings.OCPI_PING_FAILURES = 3
    settings.OCPI_PING_IDLE_SECONDS = 300
    settings.OCPI_SEEN_THROTTLE_SECONDS = 30
    settings.OCPI_LOCK_URL = ""
    settings.DATA_DIR = tmp_path


@pytest.fixture
def redis_lock(settings: Any) -> Iterator[redis.Redis]:
    """Locks on the real Redis, database 10 (emptied before and after)."""
    settings.OCPI_LOCK_URL = REDIS_URL
    server = redis.Redis.from_url(REDIS_URL)
    server.flushdb()
    yield server
    server.flushdb()
    server.close()


@dataclass
class Versions:
    """A partner platform's versions endpoint: records requests, answers as scripted.

    ``answers`` are used one per request (an Exception is raised, a Response returned); when
    none is left, every request gets a valid versions list.
    """

    answers: list[httpx.Response | Exception | Callable[[httpx.Request], Any]] = field(
        default_factory=list
    )
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            if callable(answer):
                answer = answer(request)
            return answer
        return httpx.Response(200, json=envelope(VERSION_LIST))

    @property
    def hosts(self) -> list[str]:
        return [r.url.host for r in self.requests]


@pytest.fixture
def versions() -> Iterator[Versions]:
    fake = Versions()
    with use_transport(httpx.MockTransport(fake.handler)):
        yield fake


class Clock:
    """Stands in for the ``time`` module of liveness: a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(liveness, "time", fake)
    return fake


@pytest.fixture
def heard() -> Iterator[list[tuple[int, str, str]]]:
    """(partner id, old, new) of every partner_status_changed signal sent during the test."""
    calls: list[tuple[int, str, str]] = []

    def listener(sender: Any, *, partner: Partner, old: str, new: str, **kwargs: Any) -> None:
        calls.append((partner.pk, old, new))

    partner_status_changed.connect(listener, weak=False, dispatch_uid="test-liveness")
    yield calls
    partner_status_changed.disconnect(dispatch_uid="test-liveness")


@pytest.fixture(autouse=True)
def recovers(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every recover_partner.delay (no task leaves the process)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(credential_tasks.recover_partner, "delay", lambda **kw: calls.append(kw))
    return calls


@pytest.fixture
def resends(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every push_all_locations.delay really started."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(location_tasks.push_all_locations, "delay", lambda **kw: calls.append(kw))
    return calls


@pytest.fixture
def emsp(db: None) -> RegisteredPartner:
    """A registered eMSP with a locations RECEIVER endpoint (receives our pushes)."""
    return receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")


def fresh(partner: Partner | RegisteredPartner) -> Partner:
    pk = partner.partner.pk if isinstance(partner, RegisteredPartner) else partner.pk
    return Partner.objects.get(pk=pk)


def force(partner: Partner | RegisteredPartner, **values: Any) -> None:
    """Set up the partner's row directly, bypassing the status machine (test setup only)."""
    pk = partner.partner.pk if isinstance(partner, RegisteredPartner) else partner.pk
    Partner.objects.filter(pk=pk).update(**values)


def changes(partner: Partner | RegisteredPartner) -> list[tuple[str, str, str]]:
    """(old, new, reason) of the partner's recorded status changes, oldest first."""
    pk = partner.partner.pk if isinstance(partner, RegisteredPartner) else partner.pk
    return list(
        StatusChange.objects.filter(partner_id=pk)
        .order_by("created_at", "id")
        .values_list("old_status", "new_status", "reason")
    )


def close_to_now(value: datetime | None, slack: float = 5.0) -> bool:
    return value is not None and abs((now_utc() - value).total_seconds()) <= slack


def seen_writes(queries: CaptureQueriesContext) -> list[str]:
    """The UPDATEs of credentials_partner that write last_connection."""
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "credentials_partner"') and "last_connection" in q["sql"]
    ]


def partner_updates(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "credentials_partner"')
    ]


def b64(token: str) -> str:
    return base64.b64encode(token.encode()).decode()


def failing(status: int = 500) -> httpx.Response:
    return httpx.Response(status, json=envelope(status_code=3000, message="down"))


# --- the status machine ------------------------------------------------------------------------


def test_change_status_records_the_change_and_tells_the_other_modules(registered, heard):
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=registered.partner.pk)
        assert liveness.change_status(partner, OFFLINE, "went away", at=at) is True

    partner = fresh(registered)
    assert (partner.status, partner.status_since) == (OFFLINE, at)
    [change] = StatusChange.objects.filter(partner=partner)
    assert (change.old_status, change.new_status, change.reason) == (
        CONNECTED,
        OFFLINE,
        "went away",
    )
    assert change.created_at == at
    assert heard == [(partner.pk, CONNECTED, OFFLINE)]


def test_change_status_without_a_moment_stamps_now(registered, heard):
    assert liveness.set_status(registered.partner.pk, SUSPENDED, "operator") is True

    partner = fresh(registered)
    assert partner.status == SUSPENDED
    assert close_to_now(partner.status_since)
    assert changes(registered) == [(CONNECTED, SUSPENDED, "operator")]
    assert heard == [(partner.pk, CONNECTED, SUSPENDED)]


def test_change_status_to_the_same_status_records_nothing(registered, heard):
    since = datetime(2029, 5, 6, tzinfo=UTC)
    force(registered, status_since=since)

    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=registered.partner.pk)
        assert liveness.change_status(partner, CONNECTED, "again") is False

    assert (fresh(registered).status, fresh(registered).status_since) == (CONNECTED, since)
    assert changes(registered) == []
    assert heard == []


def test_registration_leaves_the_partner_connected_with_a_recorded_change(
    api, invited, fake_partner
):
    fake_partner.accepted_tokens = {"partner-token-b"}
    assert fresh(invited.partner).status == PLANNED

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    assert reply.code == 1000, reply.message
    partner = fresh(invited.partner)
    assert (partner.state, partner.status) == (PartnerState.REGISTERED, CONNECTED)
    assert close_to_now(partner.status_since)
    assert close_to_now(partner.last_connection)
    assert [(old, new) for old, new, _ in changes(partner)] == [(PLANNED, CONNECTED)]


def test_a_partner_suspended_while_invited_is_not_connected_by_registering(
    api, invited, fake_partner, resends
):
    fake_partner.accepted_tokens = {"partner-token-b"}
    assert liveness.suspend(invited.partner, "operator: not yet")

    reply = api.post(CREDENTIALS, token=invited.token_a, body=partner_offer())

    # Either the registration is refused, or the partner is registered and stays SUSPENDED.
    partner = fresh(invited.partner)
    assert reply.code != 1000 or partner.status == SUSPENDED
    assert SUSPENDED not in [old for old, new, _ in changes(partner) if new == CONNECTED]


def test_unregistering_makes_the_partner_offline_and_a_new_invitation_planned(api, registered):
    reply = api.delete(CREDENTIALS, token=registered.inbound_token)
    assert reply.code == 1000, reply.message
    assert fresh(registered).status == OFFLINE

    handshake.invite_partner(name=registered.partner.name)

    partner = fresh(registered)
    assert (partner.state, partner.status) == (PartnerState.INVITED, PLANNED)
    [(old1, new1, reason1), (old2, new2, reason2)] = changes(registered)
    assert (old1, new1) == (CONNECTED, OFFLINE)
    assert "unregistered" in reason1
    assert (old2, new2) == (OFFLINE, PLANNED)
    assert "invited" in reason2


def test_suspend_and_resume_a_registered_partner(registered, heard):
    assert liveness.suspend(registered.partner, "maintenance") is True
    assert fresh(registered).status == SUSPENDED
    assert liveness.suspend(registered.partner, "twice") is False

    assert liveness.resume(registered.partner, "back") is True

    assert fresh(registered).status == CONNECTED
    assert changes(registered) == [
        (CONNECTED, SUSPENDED, "maintenance"),
        (SUSPENDED, CONNECTED, "back"),
    ]
    pk = registered.partner.pk
    assert heard == [(pk, CONNECTED, SUSPENDED), (pk, SUSPENDED, CONNECTED)]


@pytest.mark.parametrize("status", [CONNECTED, OFFLINE])
def test_resume_of_a_partner_that_is_not_suspended_does_nothing(registered, heard, status):
    force(registered, status=status)

    assert liveness.resume(registered.partner, "resume") is False

    assert fresh(registered).status == status
    assert changes(registered) == []
    assert heard == []


@pytest.mark.parametrize(
    ("state", "expected"),
    [(PartnerState.UNREGISTERED, OFFLINE), (PartnerState.INVITED, PLANNED)],
)
def test_resume_of_a_partner_that_is_not_registered_follows_its_state(registered, state, expected):
    force(registered, state=state, status=SUSPENDED)

    assert liveness.resume(registered.partner, "resume") is True

    assert fresh(registered).status == expected


# --- seen ----------------------------------------------------------------------------------------


def test_many_requests_write_seen_once_per_throttle_period(api, registered, clock):
    old = now_utc() - timedelta(hours=1)
    force(registered, last_connection=old, ping_failures=2, last_ping_error="timed out")

    with CaptureQueriesContext(connection) as first:
        for _ in range(5):
            assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000
    partner = fresh(registered)
    assert len(seen_writes(first)) == 1
    assert close_to_now(partner.last_connection)
    assert (partner.ping_failures, partner.last_ping_error) == (0, "")  # alive: no stale error
    written = partner.last_connection

    clock.now += 29
    with CaptureQueriesContext(connection) as within:
        for _ in range(3):
            assert api.get("/ocpi/2.2.1", token=registered.inbound_token).code == 1000
    assert seen_writes(within) == []
    assert fresh(registered).last_connection == written

    clock.now += 2  # 31 s after the write
    with CaptureQueriesContext(connection) as after:
        for _ in range(3):
            assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000
    assert len(seen_writes(after)) == 1
    assert fresh(registered).last_connection > written
    assert fresh(registered).status == CONNECTED
    assert changes(registered) == []


def test_without_a_throttle_every_request_writes_seen(api, registered, settings):
    settings.OCPI_SEEN_THROTTLE_SECONDS = 0

    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000

    assert len(seen_writes(queries)) == 3


def test_the_throttle_is_per_partner(api, registered):
    other = make_registered("other", party_id="OTH", versions_url="https://oth.test/ocpi/versions")

    with CaptureQueriesContext(connection) as queries:
        for _ in range(2):
            api.get("/ocpi/versions", token=registered.inbound_token)
            api.get("/ocpi/versions", token=other.inbound_token)

    assert len(seen_writes(queries)) == 2
    assert close_to_now(fresh(registered).last_connection)
    assert close_to_now(fresh(other).last_connection)


def test_a_request_from_an_offline_partner_makes_it_connected(
    api, registered, heard, recovers, django_capture_on_commit_callbacks
):
    """The request writes "seen" only; the status change (and what follows) is a task."""
    force(registered, status=OFFLINE, last_connection=None, ping_failures=4, last_ping_error="x")

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        reply = api.get("/ocpi/versions", token=registered.inbound_token)

    assert reply.code == 1000
    partner = fresh(registered)
    assert (partner.status, partner.ping_failures, partner.last_ping_error) == (OFFLINE, 0, "")
    assert close_to_now(partner.last_connection)
    assert changes(registered) == []
    assert heard == []
    # Only "seen" writes: the CONNECTED fast path (no row) and the one for a partner not connected.
    assert partner_updates(queries) == seen_writes(queries)
    assert len(seen_writes(queries)) == 2
    assert not [q for q in queries.captured_queries if "credentials_statuschange" in q["sql"]]
    assert recovers == [{"partner_id": partner.pk, "how": "the partner called us"}]

    assert credential_tasks.recover_partner(**recovers[0]) is True  # the worker runs it

    partner = fresh(registered)
    assert partner.status == CONNECTED
    assert changes(registered) == [(OFFLINE, CONNECTED, "the partner called us")]
    assert heard == [(partner.pk, OFFLINE, CONNECTED)]
    # Run twice (a duplicate message, a second web process): nothing more happens.
    assert credential_tasks.recover_partner(**recovers[0]) is False
    assert len(changes(registered)) == 1


def test_a_suspended_partner_is_served_and_seen_but_stays_suspended(api, registered, heard):
    force(registered, status=SUSPENDED, last_connection=None)

    reply = api.get("/ocpi/versions", token=registered.inbound_token)

    assert reply.code == 1000
    partner = fresh(registered)
    assert partner.status == SUSPENDED
    assert close_to_now(partner.last_connection)
    assert changes(registered) == []
    assert heard == []


def test_token_a_requests_of_an_invited_partner_do_not_mark_seen(api, invited, heard):
    with CaptureQueriesContext(connection) as queries:
        for _ in range(2):
            assert api.get("/ocpi/versions", token=invited.token_a).code == 1000

    assert partner_updates(queries) == []
    partner = fresh(invited.partner)
    assert (partner.status, partner.last_connection) == (PLANNED, None)
    assert heard == []


def test_a_successful_call_to_an_offline_partner_brings_it_back(registered, versions):
    force(registered, status=OFFLINE)
    versions.answers = [failing(503)]

    with liveness.client_for(fresh(registered)) as client:
        with pytest.raises(PartnerUnavailable, match="HTTP 503"):
            client.get(VERSIONS_URL)
        assert fresh(registered).status == OFFLINE
        client.get(VERSIONS_URL)

    assert fresh(registered).status == CONNECTED
    assert changes(registered) == [(OFFLINE, CONNECTED, liveness.ANSWERED)]


# --- ping ----------------------------------------------------------------------------------------


def test_a_ping_gets_the_versions_url_with_our_token(registered, versions):
    result = liveness.ping(fresh(registered))

    assert result.ok
    [request] = versions.requests
    assert (request.method, str(request.url)) == ("GET", VERSIONS_URL)
    assert request.headers["Authorization"] == f"Token {b64(registered.outbound_token)}"
    assert request.headers["Authorization"] == "Token cGFydG5lci10b2tlbi1j"


def test_a_successful_ping_resets_failures_and_brings_an_offline_partner_back(
    registered, versions, heard
):
    force(
        registered,
        status=OFFLINE,
        ping_failures=5,
        last_ping_error="old trouble",
        last_connection=now_utc() - timedelta(days=1),
    )

    result = liveness.ping(fresh(registered))

    assert (result.ok, result.status, result.changed, result.failures, result.reason) == (
        True,
        CONNECTED,
        True,
        0,
        "",
    )
    assert result.partner == registered.partner.name
    partner = fresh(registered)
    assert (partner.status, partner.ping_failures, partner.last_ping_error) == (CONNECTED, 0, "")
    assert close_to_now(partner.last_connection)
    assert close_to_now(partner.last_ping_at)
    assert changes(registered) == [(OFFLINE, CONNECTED, "the partner answered the ping")]
    assert heard == [(partner.pk, OFFLINE, CONNECTED)]


def test_a_successful_ping_of_a_connected_partner_changes_no_status(registered, versions):
    force(registered, last_connection=now_utc() - timedelta(hours=1), ping_failures=1)

    result = liveness.ping(fresh(registered))

    assert (result.ok, result.changed, result.status) == (True, False, CONNECTED)
    assert fresh(registered).ping_failures == 0
    assert close_to_now(fresh(registered).last_connection)
    assert changes(registered) == []


def _redirect(request: httpx.Request) -> httpx.Response:
    return httpx.Response(302, headers={"Location": "https://elsewhere.test/ocpi/versions"})


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out", request=request)


def _connect_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("connect timed out", request=request)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        pytest.param(
            httpx.Response(
                200,
                content=b"<html><body>Welcome</body></html>",
                headers={"Content-Type": "text/html"},
            ),
            ["envelope", "text/html"],
            id="html-page",
        ),
        pytest.param(
            httpx.Response(401, json=envelope(status_code=2000, message="Unauthorized")),
            ["401"],
            id="http-401",
        ),
        pytest.param(_timeout, ["timed out"], id="read-timeout"),
        pytest.param(_connect_timeout, ["timed out"], id="connect-timeout"),
        pytest.param(_redirect, ["redirect", "302", "elsewhere.test"], id="redirect"),
        pytest.param(
            httpx.Response(200, json=envelope({"version": "2.2.1"})),
            ["list of versions", "dict"],
            id="data-not-a-list",
        ),
        pytest.param(httpx.Response(500, text="boom"), ["HTTP 500"], id="http-500"),
        pytest.param(
            httpx.Response(200, json=envelope(status_code=3001, message="busy")),
            ["3001"],
            id="ocpi-3001",
        ),
    ],
)
def test_a_failed_ping_is_counted_with_what_happened(registered, versions, answer, words):
    seen = now_utc() - timedelta(hours=1)
    force(registered, last_connection=seen)
    versions.answers = [answer]

    result = liveness.ping(fresh(registered))

    assert (result.ok, result.failures, result.status, result.changed) == (
        False,
        1,
        CONNECTED,
        False,
    )
    for word in words:
        assert word in result.reason
    assert VERSIONS_URL in result.reason
    partner = fresh(registered)
    assert (partner.ping_failures, partner.last_ping_error) == (1, result.reason)
    assert partner.last_connection == seen
    assert close_to_now(partner.last_ping_at)
    assert len(versions.requests) == 1  # no retry with another token form, no redirect followed
    assert changes(registered) == []


def test_a_partner_without_a_versions_url_fails_its_ping(registered, versions):
    force(registered, versions_url="")

    result = liveness.ping(fresh(registered))

    assert not result.ok
    assert "versions URL" in result.reason
    assert versions.requests == []
    assert fresh(registered).ping_failures == 1


def test_consecutive_failures_make_a_connected_partner_offline_at_the_limit(
    registered, versions, heard
):
    seen = datetime(2030, 3, 4, 5, 6, 7, tzinfo=UTC)
    force(registered, last_connection=seen)
    versions.answers = [failing(500), failing(500), _redirect, failing(502)]

    first = liveness.ping(fresh(registered))
    second = liveness.ping(fresh(registered))
    assert [(r.status, r.failures, r.changed) for r in (first, second)] == [
        (CONNECTED, 1, False),
        (CONNECTED, 2, False),
    ]
    assert fresh(registered).status == CONNECTED
    assert changes(registered) == []

    third = liveness.ping(fresh(registered))

    assert (third.status, third.failures, third.changed) == (OFFLINE, 3, True)
    partner = fresh(registered)
    assert (partner.status, partner.ping_failures) == (OFFLINE, 3)
    assert partner.status_since == partner.last_ping_at
    [(old, new, reason)] = changes(registered)
    assert (old, new) == (CONNECTED, OFFLINE)
    assert "3 consecutive pings failed" in reason
    assert third.reason in reason
    assert "redirect" in reason
    assert format_datetime(seen) in reason
    assert heard == [(partner.pk, CONNECTED, OFFLINE)]

    fourth = liveness.ping(fresh(registered))

    assert (fourth.status, fourth.failures, fourth.changed) == (OFFLINE, 4, False)
    assert len(changes(registered)) == 1


def test_the_failure_limit_is_a_setting(registered, versions, settings):
    settings.OCPI_PING_FAILURES = 1
    versions.answers = [failing(500)]

    result = liveness.ping(fresh(registered))

    assert (result.status, result.changed) == (OFFLINE, True)


def test_a_success_in_between_resets_the_count(registered, versions):
    ok = httpx.Response(200, json=envelope(VERSION_LIST))
    versions.answers = [failing(), failing(), ok, failing(), failing()]

    results = [liveness.ping(fresh(registered)) for _ in range(5)]

    assert [r.failures for r in results] == [1, 2, 0, 1, 2]
    assert fresh(registered).status == CONNECTED
    assert changes(registered) == []

    versions.answers = [failing()]
    assert liveness.ping(fresh(registered)).status == OFFLINE


def test_a_request_from_the_partner_in_between_resets_the_count(api, registered, versions):
    versions.answers = [failing(), failing(), failing()]
    liveness.ping(fresh(registered))
    liveness.ping(fresh(registered))

    assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000
    result = liveness.ping(fresh(registered))

    assert (result.failures, result.status) == (1, CONNECTED)


# --- idle partners -------------------------------------------------------------------------------


@dataclass
class Population:
    stale: RegisteredPartner
    never: RegisteredPartner
    offline: RegisteredPartner
    recent: RegisteredPartner
    suspended: RegisteredPartner
    invited: RegisteredPartner
    unregistered: RegisteredPartner

    @property
    def idle(self) -> set[str]:
        return {"stale", "never", "offline"}


@pytest.fixture
def population(db: None) -> Population:
    now = now_utc()

    def partner(name: str, party: str, **values: Any) -> RegisteredPartner:
        made = make_registered(
            name, party_id=party, versions_url=f"https://{name}.test/ocpi/versions"
        )
        force(made, **values)
        return made

    return Population(
        stale=partner("stale", "STA", last_connection=now - timedelta(seconds=301)),
        never=partner("never", "NEV", last_connection=None),
        offline=partner("offline", "OFF", status=OFFLINE, last_connection=now - timedelta(hours=1)),
        recent=partner("recent", "REC", last_connection=now - timedelta(seconds=290)),
        suspended=partner("suspended", "SUS", status=SUSPENDED, last_connection=None),
        invited=partner("invited", "INV", state=PartnerState.INVITED, last_connection=None),
        unregistered=partner(
            "unregistered",
            "UNR",
            state=PartnerState.UNREGISTERED,
            status=OFFLINE,
            last_connection=None,
        ),
    )


def test_idle_partners_are_registered_not_suspended_and_not_seen_recently(population):
    found = [p.name for p in liveness.idle()]

    assert set(found) == population.idle
    assert found.index("offline") < found.index("stale")  # the longest unseen first


def test_never_seen_partners_come_first_among_the_idle(population):
    found = [p.name for p in liveness.idle()]

    assert found == ["never", "offline", "stale"]


def test_the_idle_time_is_a_setting(population, settings):
    settings.OCPI_PING_IDLE_SECONDS = 3600 * 2

    assert {p.name for p in liveness.idle()} == {"never"}


def test_ping_idle_pings_only_the_idle_partners(population, versions):
    results = liveness.ping_idle()

    assert results is not None
    assert {r.partner for r in results} == population.idle
    assert sorted(versions.hosts) == sorted(f"{name}.test" for name in population.idle)
    assert all(r.ok for r in results)
    assert fresh(population.offline).status == CONNECTED
    for name in ("recent", "suspended", "invited", "unregistered"):
        assert fresh(getattr(population, name)).last_ping_at is None
    # Pinged now, so seen now: the next run has nobody to ping.
    assert liveness.ping_idle() == []
    assert len(versions.requests) == 3


# --- the ping lock -------------------------------------------------------------------------------


def test_redis_lock_second_holder_gets_none_until_released(redis_lock):
    with single_run("x", ttl=30) as first:
        assert first is not None
        with single_run("x", ttl=30) as second:
            assert second is None
        with single_run("y", ttl=30) as other:
            assert other is not None  # another name is another lock

    with single_run("x", ttl=30) as again:
        assert again is not None


def test_redis_lock_expires_after_its_ttl_and_the_late_holder_frees_only_its_own(redis_lock):
    with ExitStack() as first_block:
        first = first_block.enter_context(single_run("x", ttl=0.5))
        assert first is not None
        time.sleep(0.7)
        second_block = ExitStack()
        second = second_block.enter_context(single_run("x", ttl=30))
        assert second is not None  # the first one's lock expired
    # The first holder left after its lock expired: the second one still holds it.
    with single_run("x", ttl=30) as third:
        assert third is None
    second_block.close()
    with single_run("x", ttl=30) as fourth:
        assert fourth is not None


def test_redis_lock_extend_pushes_the_expiry_back(redis_lock):
    with single_run("x", ttl=1) as held:
        assert held is not None
        time.sleep(0.3)
        held.extend()
        assert redis_lock.pttl(locks.PREFIX + "x") > 800


def test_file_lock_second_holder_gets_none_until_released(settings, tmp_path):
    assert settings.OCPI_LOCK_URL == ""
    with single_run("x", ttl=30) as first:
        assert first is not None
        with single_run("x", ttl=30) as second:
            assert second is None
        with single_run("y", ttl=30) as other:
            assert other is not None
    assert (tmp_path / "locks").is_dir()

    with single_run("x", ttl=30) as again:
        assert again is not None


@pytest.mark.parametrize("backend", ["redis", "file"])
def test_ping_idle_does_nothing_while_another_run_holds_the_lock(
    request, population, versions, backend
):
    if backend == "redis":
        request.getfixturevalue("redis_lock")

    with single_run(liveness.PING_LOCK, ttl=30) as held:
        assert held is not None
        assert liveness.ping_idle() is None
    assert versions.requests == []
    assert not Partner.objects.filter(last_ping_at__isnull=False).exists()

    results = liveness.ping_idle()

    assert results is not None
    assert {r.partner for r in results} == population.idle
    # The run released its lock.
    with single_run(liveness.PING_LOCK, ttl=30) as after:
        assert after is not None


def test_a_long_ping_run_extends_its_lock(redis_lock, population, monkeypatch):
    """A run that outlives its ttl keeps the lock: each ping pushes the expiry back."""
    monkeypatch.setattr(liveness, "lock_seconds", lambda: 0.4)
    held_during: list[bool] = []

    def slow(request: httpx.Request) -> httpx.Response:
        with single_run(liveness.PING_LOCK, ttl=30) as other:
            held_during.append(other is None)
        time.sleep(0.25)
        return httpx.Response(200, json=envelope(VERSION_LIST))

    with use_transport(httpx.MockTransport(slow)):
        results = liveness.ping_idle()

    assert results is not None
    assert len(results) == 3
    assert held_during == [True, True, True]  # the third ping starts 0.5 s in, after the ttl


# --- consequences --------------------------------------------------------------------------------


def test_going_offline_after_failed_pings_cancels_open_rows(emsp, versions):
    ours("LOC1")
    ours("LOC2")
    assert len(pending(emsp)) == 2
    versions.answers = [failing(), failing(), failing()]

    for _ in range(3):
        liveness.ping(fresh(emsp))

    assert fresh(emsp).status == OFFLINE
    assert pending(emsp) == []
    cancelled = rows(emsp, state=DeliveryState.CANCELLED)
    assert len(cancelled) == 2
    assert all("OFFLINE" in row.last_error for row in cancelled)


def test_suspending_cancels_open_rows(emsp):
    ours()

    liveness.suspend(emsp.partner, "operator")

    [row] = rows(emsp)
    assert row.state == DeliveryState.CANCELLED
    assert "SUSPENDED" in row.last_error


@pytest.mark.parametrize("status", [OFFLINE, SUSPENDED])
def test_no_row_for_an_offline_or_suspended_partner(emsp, status):
    other = receiver(
        "fr-nsp",
        "https://other.test/ocpi/2.2.1/locations/",
        country_code="FR",
        party_id="NSP",
        role="NSP",
        versions_url="https://other.test/ocpi/versions",
    )
    liveness.set_status(emsp.partner.pk, status, "test")

    ours()

    assert rows(emsp) == []
    assert len(pending(other)) == 1  # the change did make rows, for the reachable partner
    assert [t.partner_id for t in push.targets()] == [other.partner.pk]


def _back_by_request(api: Any, emsp: RegisteredPartner, versions: Versions) -> None:
    assert api.get("/ocpi/versions", token=emsp.inbound_token).code == 1000
    assert fresh(emsp).status == OFFLINE  # the request only wrote "seen"
    assert liveness.recover(emsp.partner.pk)  # the task it enqueued, run by the worker


def _back_by_ping(api: Any, emsp: RegisteredPartner, versions: Versions) -> None:
    assert liveness.ping(fresh(emsp)).changed


def _back_by_resume(api: Any, emsp: RegisteredPartner, versions: Versions) -> None:
    assert liveness.resume(emsp.partner, "operator")


@pytest.mark.parametrize(
    ("status", "back"),
    [
        pytest.param(OFFLINE, _back_by_request, id="offline-request"),
        pytest.param(OFFLINE, _back_by_ping, id="offline-ping"),
        pytest.param(SUSPENDED, _back_by_resume, id="suspended-resume"),
    ],
)
def test_back_to_connected_queues_a_full_resend_after_commit(
    api, emsp, versions, resends, django_capture_on_commit_callbacks, status, back
):
    ours("LOC1")
    ours("LOC2")
    liveness.set_status(emsp.partner.pk, status, "away")
    ours("LOC1", name="Changed while away")
    assert pending(emsp) == []

    with django_capture_on_commit_callbacks() as callbacks:
        back(api, emsp, versions)
        assert resends == []  # not before the commit

    assert fresh(emsp).status == CONNECTED
    for callback in callbacks:
        callback()
    assert resends == [{"partner_id": emsp.partner.pk}]

    assert push.full_resend([emsp.partner.pk]) == 2

    written = pending(emsp)
    assert sorted((r.method, r.path) for r in written) == [
        ("PUT", "NL/ABC/LOC1"),
        ("PUT", "NL/ABC/LOC2"),
    ]
    by_path = {r.path: r for r in written}
    assert by_path["NL/ABC/LOC1"].body == document("LOC1")
    assert by_path["NL/ABC/LOC1"].body["name"] == "Changed while away"
    assert by_path["NL/ABC/LOC2"].body == document("LOC2")


@pytest.mark.parametrize(
    ("first", "second"),
    [(OFFLINE, SUSPENDED), (SUSPENDED, OFFLINE), (PLANNED, CONNECTED)],
)
def test_other_changes_queue_no_resend(
    emsp, resends, django_capture_on_commit_callbacks, first, second
):
    ours()
    liveness.set_status(emsp.partner.pk, first, "one")

    with django_capture_on_commit_callbacks(execute=True):
        liveness.set_status(emsp.partner.pk, second, "two")

    assert resends == []


def test_a_suspended_partner_is_not_pinged_and_drain_sends_it_nothing(emsp, versions):
    ours()
    [row] = pending(emsp)
    # Suspended by an operator after the row was written, before its drain ran.
    force(emsp, status=SUSPENDED, last_connection=now_utc() - timedelta(days=1))

    assert liveness.ping_idle() == []
    assert outbox.drain(emsp.partner.pk) == 0

    assert versions.requests == []
    row = Delivery.objects.get(pk=row.pk)
    assert row.state == DeliveryState.CANCELLED
    assert "SUSPENDED" in row.last_error
    assert fresh(emsp).last_ping_at is None


@pytest.mark.django_db(transaction=True)
def test_a_broker_down_does_not_fail_the_return_of_a_partner(monkeypatch, caplog):
    """The resend is queued after commit, robustly: the status change stands, the error logged."""
    partner = receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")
    force(partner, status=ConnectionStatus.OFFLINE)

    def broker_down(**kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(location_tasks.push_all_locations, "delay", broker_down)
    assert liveness.set_status(partner.partner.pk, ConnectionStatus.CONNECTED, "operator")

    assert fresh(partner).status == ConnectionStatus.CONNECTED
    assert "enqueue_push_all_locations" in caplog.text
