"""End-to-end: a worker killed in the middle of a delivery does not block the partner's outbox.

A (NL/AAA CPO, with beat, default outbox settings) pushes to B (DE/BBB EMSP). B's web server is
frozen (SIGSTOP) so that A's delivery hangs in flight; A's worker is then killed (SIGKILL, as an
OOM kill or a crashed host would) while the row is SENDING and its drain holds the partner's
lease. B is thawed, A makes one more change, and the worker comes back: both changes must reach
B within 15 s of the worker being ready, the one that was in flight sent at most twice.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Spec, _run_pair
from .harness import Instance, Pair, poll
from .test_locations import CC, PID, copies, deliveries, evse, import_locations, own_location
from .test_locations import register as register_pair

pytestmark = pytest.mark.e2e

RESUME_WITHIN = 15.0  # seconds after the worker is back (the hardening issue's bound)
# Redis databases of this pair (the others use 7, 8 and 11 to 15).
REDIS_DBS = (5, 6)


@pytest.fixture(scope="module")
def recovery_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # No pings during the test: a frozen B must not be marked OFFLINE (that cancels rows).
    quiet = {"OCPI_PING_IDLE_SECONDS": "3600"}
    yield from _run_pair(
        tmp_path_factory,
        [
            Spec("A", "NL:AAA:CPO", "Alpha Charging", REDIS_DBS[0], quiet, beat=True),
            Spec("B", "DE:BBB:EMSP", "Beta Mobility", REDIS_DBS[1], quiet),
        ],
    )


def evse_status(b: Instance, location_id: str, uid: str) -> str | None:
    document = copies(b).get(location_id)
    return evse(document, uid)["status"] if document else None


def requests_to(b: Instance, path: str) -> int:
    """How many requests for ``path`` B's web server logged (its access log)."""
    log = (b.dir / "gunicorn.log").read_text(errors="replace")
    return len(re.findall(rf'"(?:PUT|PATCH) {re.escape(path)}/? HTTP', log))


def test_killed_worker_does_not_block_the_partner(recovery_pair: Pair) -> None:
    a, b = recovery_pair.a, recovery_pair.b
    import_locations(a, [own_location("LOC1")], "recovery.json")
    register_pair(a, b)
    poll(lambda: "LOC1" in copies(b), timeout=20, what="the registration pushes LOC1 to B")
    # B may hold LOC1 from its own pull while A's push is still in flight (a slow answer on a
    # loaded machine is retried): freeze B only once every earlier delivery is done.
    poll(
        lambda: all(row["state"] == "SENT" for row in deliveries(a)),
        timeout=30,
        what=lambda: f"A's registration pushes SENT: {[r['state'] for r in deliveries(a)]}",
    )
    first = deliveries(a)[-1]["id"]

    b.signal("gunicorn", signal.SIGSTOP)  # B accepts connections but answers nothing
    try:
        a.shell(
            "from locations import services\nfrom locations.paths import ObjectPath\n"
            f"services.set_evse_status(ObjectPath({CC!r}, {PID!r}, 'LOC1', '3256'), 'CHARGING')\n"
        )

        def in_flight() -> list[dict[str, Any]]:
            return [row for row in deliveries(a, after=first) if row["state"] == "SENDING"]

        poll(in_flight, timeout=30, what="A's delivery of the status change is in flight")
        a.kill("celery")
    finally:
        b.signal("gunicorn", signal.SIGCONT)

    # A change made while no worker runs: its task waits in the broker.
    a.shell(
        "from locations import services\nfrom locations.paths import ObjectPath\n"
        f"services.set_evse_status(ObjectPath({CC!r}, {PID!r}, 'LOC1', '3257'), 'BLOCKED')\n"
    )
    a.spawn_worker()
    a.wait_ready()
    back = time.monotonic()

    poll(
        lambda: (
            evse_status(b, "LOC1", "3256") == "CHARGING"
            and evse_status(b, "LOC1", "3257") == "BLOCKED"
        ),
        timeout=RESUME_WITHIN,
        what=lambda: f"both changes at B; A's rows: {deliveries(a, after=first)}",
    )
    resumed = time.monotonic() - back
    rows = deliveries(a, after=first)
    assert all(row["state"] == "SENT" for row in rows), rows
    base = "/ocpi/2.2.1/receiver/locations/NL/AAA/LOC1"
    assert requests_to(b, f"{base}/3256") <= 2, "the in-flight message was sent more than twice"
    assert requests_to(b, f"{base}/3257") == 1
    print(f"deliveries resumed {resumed:.1f} s after the worker was back")
