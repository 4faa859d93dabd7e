"""End-to-end: partner liveness with Celery beat pinging, over real HTTP.

Instance A hosts NL/AAA CPO, instance B hosts DE/BBB EMSP; both run Celery beat, which pings a
partner not seen for 2 s every second; 3 failed pings make it OFFLINE (``conftest.liveness_pair``).
On A the partner is called "B", on B it is called "A". The tests are scenarios that run in order
on one pair, each starting where the previous ended:

1. The two register, B gets A's locations; beat keeps both sides CONNECTED.
2. B goes down: after 3 failed pings A marks it OFFLINE and cancels what it had queued for B;
   changes made while B is OFFLINE queue nothing.
3. B is back: A marks it CONNECTED and sends it the current state of every location, as PUTs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from redis.exceptions import LockError

from .conftest import PING_FAILURES, PING_IDLE, PING_INTERVAL
from .harness import REDIS_HOST, REDIS_PORT, Instance, Pair, poll
from .test_locations import (
    CC,
    PID,
    copies,
    deliveries,
    difference,
    evse,
    import_locations,
    in_sync,
    own_documents,
    own_location,
    register,
    set_statuses,
)

pytestmark = pytest.mark.e2e

IDS = [f"LOC{n}" for n in range(1, 5)]
TIMEOUT = 30.0  # for anything that travels between the instances or waits for beat
# The Redis key of A's ping lock (ocpi_platform.locks: "ocpi:lock:" + liveness.PING_LOCK).
PING_LOCK_KEY = "ocpi:lock:partner-ping"
# The reason of the OFFLINE change, as liveness._record_ping words it.
OFFLINE_REASON = f"{PING_FAILURES} consecutive pings failed; last seen "
# The reasons of OFFLINE -> CONNECTED: B answers A's ping, or B's own ping reaches A.
BACK_REASONS = {"the partner answered the ping", "the partner called us"}
CANCELLED_REASON = (
    "not sent: the partner is OFFLINE; its current state is sent in full when it is back"
)

# What a scenario hands to the next one (they run in order on one pair).
shared: dict[str, Any] = {}


# --- helpers ------------------------------------------------------------------------------------


def partner(instance: Instance, name: str) -> dict[str, Any]:
    rows = instance.query("SELECT * FROM credentials_partner WHERE name = %s", [name])
    assert rows, f"{instance.name} has no partner {name!r}"
    return rows[0]


def status_changes(instance: Instance, name: str) -> list[dict[str, Any]]:
    """The partner's StatusChange rows, oldest first."""
    return instance.query(
        "SELECT c.id, c.created_at, c.old_status, c.new_status, c.reason "
        "FROM credentials_statuschange c JOIN credentials_partner p ON p.id = c.partner_id "
        "WHERE p.name = %s ORDER BY c.created_at, c.id",
        [name],
    )


def transitions(instance: Instance, name: str) -> list[tuple[str, str]]:
    return [(c["old_status"], c["new_status"]) for c in status_changes(instance, name)]


def db_now(instance: Instance) -> datetime:
    now: datetime = instance.query("SELECT now() AS now")[0]["now"]
    return now


def liveness(instance: Instance, name: str) -> str:
    """The liveness columns of a partner and its status changes (for failure messages)."""
    row = partner(instance, name)
    columns = ("status", "last_connection", "ping_failures", "last_ping_at", "last_ping_error")
    return (
        f"{instance.name}'s {name}: { {k: row[k] for k in columns} }\n"
        f"changes: {status_changes(instance, name)}\n{instance.logs('celery', 'beat', lines=15)}"
    )


@contextmanager
def ping_lock(instance: Instance) -> Iterator[None]:
    """Hold the instance's ping lock: its beat's ping runs are skipped meanwhile."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=instance.redis_db)
    lock = client.lock(PING_LOCK_KEY, timeout=120)
    try:
        assert lock.acquire(blocking=True, blocking_timeout=10), "the ping lock stays taken"
        try:
            yield
        finally:
            with suppress(LockError):
                lock.release()
    finally:
        client.close()


def schedule(instance: Instance) -> dict[str, tuple[str, int, str]]:
    """Beat's periodic tasks in the database: name -> (task, every, period)."""
    rows = instance.query(
        "SELECT t.name, t.task, t.enabled, i.every, i.period "
        "FROM django_celery_beat_periodictask t "
        "JOIN django_celery_beat_intervalschedule i ON i.id = t.interval_id"
    )
    return {r["name"]: (r["task"], r["every"], r["period"]) for r in rows if r["enabled"]}


# --- 1: registered, beat keeps them CONNECTED ---------------------------------------------------


def test_registered_partners_stay_connected(liveness_pair: Pair) -> None:
    a, b = liveness_pair.a, liveness_pair.b

    # Beat wrote the schedule of the settings into each database when it started.
    for instance in (a, b):
        entries = schedule(instance)
        assert entries.get("partner-ping") == (
            "credentials.tasks.ping_idle_partners",
            int(PING_INTERVAL),
            "seconds",
        ), entries
        assert entries.get("outbox-sweep") == ("outbox.tasks.sweep", 1, "seconds"), entries

    import_locations(a, [own_location(i) for i in IDS], "locations.json")
    register(b, a)  # B invites, A registers with it
    registered = db_now(a)
    poll(lambda: in_sync(a, b), timeout=TIMEOUT, what=lambda: difference(a, b))
    poll(
        lambda: (r := deliveries(a)) and all(d["state"] == "SENT" for d in r),
        timeout=TIMEOUT,
        what=lambda: f"A's deliveries SENT: {deliveries(a)}",
    )

    # The registration made both sides CONNECTED, and they stay so: beat's pings keep refreshing
    # last_connection well past the idle time (a successful ping refreshes both sides: the pinged
    # one sees a call from its partner), and no ping fails.
    def alive() -> bool:
        rows = [partner(a, "B"), partner(b, "A")]
        for row in rows:
            assert row["status"] == "CONNECTED", rows
            assert (row["ping_failures"], row["last_ping_error"]) == (0, ""), rows
        pinged = any(r["last_ping_at"] and r["last_ping_at"] > registered for r in rows)
        late = registered + timedelta(seconds=2 * PING_IDLE)
        return pinged and all(r["last_connection"] > late for r in rows)

    poll(
        alive,
        timeout=TIMEOUT,
        what=lambda: f"pinged and seen lately\n{liveness(a, 'B')}\n{liveness(b, 'A')}",
    )
    for instance, name in ((a, "B"), (b, "A")):
        changes = status_changes(instance, name)
        assert [(c["old_status"], c["new_status"], c["reason"]) for c in changes] == [
            ("PLANNED", "CONNECTED", "registered")
        ], changes


# --- 2: B goes down -----------------------------------------------------------------------------


def test_partner_down_goes_offline_after_failed_pings(liveness_pair: Pair) -> None:
    a, b = liveness_pair.a, liveness_pair.b
    before = deliveries(a)[-1]["id"]

    # While A's ping lock is held, its ping runs are skipped: B is down, A queues changes for it
    # and fails to deliver them, but only pings make B OFFLINE.
    with ping_lock(a):
        b.stop()
        set_statuses(a, [("LOC2", "3256", "CHARGING"), ("LOC3", "3257", "BLOCKED")])

        def retried() -> list[dict[str, Any]] | None:
            rows = deliveries(a, after=before)
            if len(rows) == 2 and all(r["state"] == "PENDING" for r in rows):
                return rows if rows[0]["attempts"] >= 2 else None
            return None

        queued = poll(
            retried,
            timeout=TIMEOUT,
            what=lambda: f"retried PENDING rows: {deliveries(a, after=before)}\n{a.logs('celery')}",
        )
        assert [(r["key"], r["method"]) for r in queued] == [
            (f"{CC}/{PID}/LOC2/3256", "PATCH"),
            (f"{CC}/{PID}/LOC3/3257", "PATCH"),
        ], queued
        assert queued[0]["last_error"], queued
        assert all(r["http_status"] is None for r in queued), queued
        # Unseen for longer than the idle time, yet no ping ran: B is still CONNECTED.
        poll(
            lambda: (
                db_now(a) - partner(a, "B")["last_connection"]
                > timedelta(seconds=PING_IDLE + PING_INTERVAL)
            ),
            timeout=TIMEOUT,
            what=lambda: liveness(a, "B"),
        )
        row = partner(a, "B")
        assert (row["status"], row["ping_failures"]) == ("CONNECTED", 0), liveness(a, "B")
        assert transitions(a, "B") == [("PLANNED", "CONNECTED")], liveness(a, "B")
    released = db_now(a)

    # Now beat's pings reach A's worker: one failure after the other, then OFFLINE.
    seen: list[tuple[str, int]] = []

    def offline() -> dict[str, Any] | None:
        row = partner(a, "B")
        seen.append((row["status"], row["ping_failures"]))
        return row if row["status"] == "OFFLINE" else None

    row = poll(offline, timeout=TIMEOUT, what=lambda: liveness(a, "B"))
    assert row["ping_failures"] >= PING_FAILURES, liveness(a, "B")
    assert row["last_ping_error"], liveness(a, "B")
    assert row["last_ping_at"] > released, liveness(a, "B")
    # While CONNECTED, B had fewer failed pings than the limit; polled every 0.1 s, the 1 s
    # between two pings shows some of them.
    connected = [failures for status, failures in seen if status == "CONNECTED"]
    assert all(f < PING_FAILURES for f in connected), seen
    assert any(0 < f < PING_FAILURES for f in connected), seen

    changes = status_changes(a, "B")
    assert [(c["old_status"], c["new_status"]) for c in changes] == [
        ("PLANNED", "CONNECTED"),
        ("CONNECTED", "OFFLINE"),
    ], changes
    change = changes[-1]
    assert change["reason"].startswith(OFFLINE_REASON), change
    assert "Last: " in change["reason"], change
    assert change["created_at"] > released, change
    assert row["status_since"] == change["created_at"], (row, change)
    # The first ping went out once B had been unseen for the idle time, two more followed.
    assert change["created_at"] - row["last_connection"] >= timedelta(seconds=PING_IDLE), (
        row,
        change,
    )

    # What A had queued for B is cancelled, not kept for later.
    rows = poll(
        lambda: (
            (r := deliveries(a, after=before)) and all(d["state"] == "CANCELLED" for d in r) and r
        ),
        timeout=TIMEOUT,
        what=lambda: f"rows CANCELLED: {deliveries(a, after=before)}",
    )
    assert [r["id"] for r in rows] == [r["id"] for r in queued], rows
    assert {r["last_error"] for r in rows} == {CANCELLED_REASON}, rows
    assert all(r["http_status"] is None for r in rows), rows

    # Changes while B is OFFLINE queue nothing for it.
    set_statuses(a, [("LOC1", "3256", "OUTOFORDER"), ("LOC2", "3256", "AVAILABLE")])
    new = own_location("LOC5")
    import_locations(a, [new], "new-location.json")
    assert deliveries(a, after=rows[-1]["id"]) == []
    listed = a.partners()["B"]  # the operator's view
    assert listed["status"] == "OFFLINE", listed
    assert listed["ping_failures"] >= PING_FAILURES, listed
    assert listed["last_ping_error"], listed
    shared.update(cancelled=[r["id"] for r in rows], offline_at=change["created_at"])


# --- 3: B is back ---------------------------------------------------------------------------------


def test_partner_back_gets_current_state(liveness_pair: Pair) -> None:
    a, b = liveness_pair.a, liveness_pair.b
    assert shared, "runs after test_partner_down_goes_offline_after_failed_pings"
    before = deliveries(a)[-1]["id"]
    assert partner(a, "B")["status"] == "OFFLINE"

    restarted = db_now(a)
    b.start()

    row = poll(
        lambda: (r := partner(a, "B"))["status"] == "CONNECTED" and r,
        timeout=TIMEOUT,
        what=lambda: liveness(a, "B"),
    )
    changes = status_changes(a, "B")
    assert [(c["old_status"], c["new_status"]) for c in changes] == [
        ("PLANNED", "CONNECTED"),
        ("CONNECTED", "OFFLINE"),
        ("OFFLINE", "CONNECTED"),
    ], changes
    back = changes[-1]
    assert back["reason"] in BACK_REASONS, back
    assert back["created_at"] > restarted, back
    assert row["last_connection"] >= back["created_at"], (row, back)
    assert row["ping_failures"] == 0, row

    # B gets the current state of every location, those changed while it was down included.
    poll(lambda: in_sync(a, b), timeout=TIMEOUT, what=lambda: difference(a, b))
    theirs = copies(b)
    assert sorted(theirs) == sorted([*IDS, "LOC5"]), sorted(theirs)
    assert evse(theirs["LOC1"], "3256")["status"] == "OUTOFORDER"
    assert evse(theirs["LOC2"], "3256")["status"] == "AVAILABLE"
    assert evse(theirs["LOC3"], "3257")["status"] == "BLOCKED"
    assert theirs["LOC5"] == own_location("LOC5")

    # As one PUT of each location (push_all_locations), not as a replay of what was missed.
    ours = own_documents(a)
    rows = poll(
        lambda: (
            (r := deliveries(a, after=before))
            and len(r) == len(ours)
            and all(d["state"] == "SENT" for d in r)
            and r
        ),
        timeout=TIMEOUT,
        what=lambda: f"{len(ours)} PUTs SENT: {deliveries(a, after=before)}",
    )
    assert {r["method"] for r in rows} == {"PUT"}, rows
    assert sorted(r["key"] for r in rows) == sorted(f"{CC}/{PID}/{i}" for i in ours), rows
    assert {r["ocpi_status"] for r in rows} == {1000}, rows
    assert {r["key"].split("/")[-1]: r["body"] for r in rows} == ours
    cancelled = a.query(
        "SELECT id, state, attempts, http_status FROM outbox_delivery WHERE id = ANY(%s) "
        "ORDER BY id",
        [shared["cancelled"]],
    )
    assert {r["state"] for r in cancelled} == {"CANCELLED"}, cancelled
    assert all(r["http_status"] is None for r in cancelled), cancelled

    # The operator's view on A.
    listed = a.partners()["B"]
    assert listed["status"] == "CONNECTED", listed
    assert listed["last_connection"], listed
    assert (listed["ping_failures"], listed["last_ping_error"]) == (0, None), listed
    last = datetime.fromisoformat(listed["last_connection"].replace("Z", "+00:00"))
    assert last >= back["created_at"].replace(microsecond=0), (listed, back)
    # B never saw A go: it was down itself, and A answers its pings.
    assert partner(b, "A")["status"] == "CONNECTED", liveness(b, "A")
    assert transitions(b, "A") == [("PLANNED", "CONNECTED")], liveness(b, "A")
