"""Fixtures of the end-to-end tests: two platform instances run as real processes.

Instance A hosts NL/AAA CPO, instance B hosts DE/BBB EMSP. Both are started once per module
(fresh databases, migrated), and every test starts from a clean slate: no partners on either side,
both instances running. No process and no database survives the session, even when a test fails.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import suppress

import pytest

from .harness import Instance, Pair

_live: list[Instance] = []


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


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    specs = [
        ("A", "NL:AAA:CPO", "Alpha Charging", 11),
        ("B", "DE:BBB:EMSP", "Beta Mobility", 12),
    ]
    instances = []
    for name, parties, business, redis_db in specs:
        instance = Instance(
            name,
            parties=parties,
            business_name=business,
            redis_db=redis_db,
            workdir=tmp_path_factory.mktemp(f"e2e-{name.lower()}"),
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


@pytest.fixture
def fresh(pair: Pair) -> Pair:
    """Both instances running, no partner on either side."""
    for instance in (pair.a, pair.b):
        if not instance.running:
            instance.stop()  # reap whatever is left of a crashed or stopped instance
            instance.start()
        instance.reset()
    return pair
