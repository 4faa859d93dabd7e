"""Fixtures of the end-to-end tests: two platform instances run as real processes.

Instance A hosts NL/AAA CPO, instance B hosts DE/BBB EMSP. Both are started once per module
(fresh databases, migrated), and every test starts from a clean slate: no partners on either side,
both instances running. No process and no database survives the session, even when a test fails.

``locations_pair`` is the same pair with settings for the locations tests (short outbox backoff,
small pages on A, its own Redis databases); its tests run in order on one pair, without reset.
``liveness_pair`` likewise, with Celery beat running on both instances and short ping settings.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from typing import NamedTuple

import pytest

from .harness import Instance, Pair

_live: list[Instance] = []


class Spec(NamedTuple):
    name: str
    parties: str
    business_name: str
    redis_db: int
    env: Mapping[str, str] = {}
    beat: bool = False  # also run Celery beat (periodic tasks: outbox sweep, partner pings)


def _destroy(instance: Instance) -> None:
    try:
        instance.stop()
    finally:
        instance.drop_database()
        with suppress(ValueError):
            _live.remove(instance)


@atexit.register
def _destroy_leftovers() -> None:
    """Last resort when the fixture finalizers could not run (e.g. an interrupted session)."""
    for instance in list(_live):
        with suppress(Exception):
            _destroy(instance)


def _run_pair(tmp_path_factory: pytest.TempPathFactory, specs: Sequence[Spec]) -> Iterator[Pair]:
    """Create, migrate and start both instances; destroy them afterwards, whatever happened."""
    instances = []
    for spec in specs:
        instance = Instance(
            spec.name,
            parties=spec.parties,
            business_name=spec.business_name,
            redis_db=spec.redis_db,
            workdir=tmp_path_factory.mktemp(f"e2e-{spec.name.lower()}"),
            env=spec.env,
            beat=spec.beat,
        )
        _live.append(instance)
        instances.append(instance)
    try:
        for instance in instances:
            instance.create_database()
        migrations = [(i, i.migrate_process()) for i in instances]
        for instance, proc in migrations:
            instance.check_migrated(proc)
        for instance in instances:
            instance.spawn()
        for instance in instances:
            instance.wait_ready()
        yield Pair(*instances)
    finally:
        # Also when the start failed half-way: no process and no database is left behind.
        errors = []
        for instance in instances:
            try:
                _destroy(instance)
            except Exception as exc:  # clean up the other instance too
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield from _run_pair(
        tmp_path_factory,
        [
            Spec("A", "NL:AAA:CPO", "Alpha Charging", 11),
            Spec("B", "DE:BBB:EMSP", "Beta Mobility", 12),
        ],
    )


@pytest.fixture
def fresh(pair: Pair) -> Pair:
    """Both instances running, no partner on either side."""
    for instance in (pair.a, pair.b):
        if not instance.running:
            instance.stop()  # reap whatever is left of a crashed or stopped instance
            instance.start()
        instance.reset()
    return pair


# Seconds the outbox waits after the 1st, 2nd, ... failure (the default starts at 5 s).
LOCATIONS_BACKOFF = "0.5,1,1,2"
# Page size of A's sender list: 12 locations come in 3 pages.
LOCATIONS_PAGE_LIMIT = 5


@pytest.fixture(scope="module")
def locations_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A (NL/AAA CPO) and B (DE/BBB EMSP), not registered, for the locations scenarios."""
    yield from _run_pair(
        tmp_path_factory,
        [
            Spec(
                "A",
                "NL:AAA:CPO",
                "Alpha Charging",
                13,
                {
                    "OCPI_OUTBOX_BACKOFF": LOCATIONS_BACKOFF,
                    "OCPI_PAGE_LIMIT": str(LOCATIONS_PAGE_LIMIT),
                },
            ),
            Spec(
                "B", "DE:BBB:EMSP", "Beta Mobility", 14, {"OCPI_OUTBOX_BACKOFF": LOCATIONS_BACKOFF}
            ),
        ],
    )


@pytest.fixture(scope="module")
def tariffs_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A (NL/AAA CPO) and B (DE/BBB EMSP), not registered, for the tariffs scenarios."""
    env = {"OCPI_OUTBOX_BACKOFF": LOCATIONS_BACKOFF, "OCPI_PAGE_LIMIT": str(LOCATIONS_PAGE_LIMIT)}
    yield from _run_pair(
        tmp_path_factory,
        [
            Spec("A", "NL:AAA:CPO", "Alpha Charging", TARIFFS_REDIS_DBS[0], env),
            Spec("B", "DE:BBB:EMSP", "Beta Mobility", TARIFFS_REDIS_DBS[1], env),
        ],
    )


# Redis databases of the tariffs pair (the broker of each instance).
TARIFFS_REDIS_DBS = (9, 10)


# Liveness: beat pings a partner unseen for 2 s, every second; 3 failed pings make it OFFLINE.
PING_INTERVAL = 1.0
PING_IDLE = 2.0
PING_FAILURES = 3
LIVENESS_ENV = {
    "OCPI_PING_INTERVAL_SECONDS": str(PING_INTERVAL),
    "OCPI_PING_IDLE_SECONDS": str(PING_IDLE),
    "OCPI_PING_FAILURES": str(PING_FAILURES),
    "OCPI_PING_TIMEOUT_SECONDS": "2",
    "OCPI_HTTP_CONNECT_TIMEOUT": "1",
    "OCPI_SEEN_THROTTLE_SECONDS": "0.5",
    "OCPI_OUTBOX_BACKOFF": "1,1,2",
    "OCPI_OUTBOX_SWEEP_SECONDS": "1",
}
# Redis databases of the liveness pair (the broker, and the ping lock: OCPI_LOCK_URL defaults to
# the broker). The other pairs use 11 to 14, the benchmark 15.
LIVENESS_REDIS_DBS = (7, 8)


@pytest.fixture(scope="module")
def liveness_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A (NL/AAA CPO) and B (DE/BBB EMSP), not registered, both with Celery beat."""
    db_a, db_b = LIVENESS_REDIS_DBS
    yield from _run_pair(
        tmp_path_factory,
        [
            Spec("A", "NL:AAA:CPO", "Alpha Charging", db_a, LIVENESS_ENV, beat=True),
            Spec("B", "DE:BBB:EMSP", "Beta Mobility", db_b, LIVENESS_ENV, beat=True),
        ],
    )
