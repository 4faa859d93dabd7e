"""Real concurrent transactions on PostgreSQL for the compare-and-set tests.

``race`` runs calls in threads (each with its own database connection, closed at the end),
released together at a barrier. ``holding`` keeps a row locked in another connection until the
racers are all waiting for a lock, so that every round has both writers queued on the same row:
the interleaving where a stamp read before the lock wait would be stale.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections, transaction


def _close() -> None:
    for conn in connections.all(initialized_only=True):
        conn.close()


def waiting_for_locks() -> int:
    """Backends of this database waiting for a lock (row, tuple or transaction)."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    assert row is not None
    count: int = row[0]
    return count


def _wait_for_waiters(count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while waiting_for_locks() < count and time.monotonic() < deadline:
        time.sleep(0.002)


@contextmanager
def holding(lock: Callable[[], Any], waiters: int, *, commit: bool = True) -> Iterator[None]:
    """Run ``lock`` in a transaction of its own thread and keep it open until ``waiters``
    backends wait for a lock (or 5 s passed); then commit it (or roll it back)."""
    locked = threading.Event()
    release = threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                lock()
                locked.set()
                release.wait(30)
                if not commit:
                    transaction.set_rollback(True)
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)
            locked.set()
        finally:
            _close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join(30)
    if failure:
        raise failure[0]


def race(*calls: Callable[[], Any], hold: Callable[[], Any] | None = None,
         commit: bool = True) -> list[Any]:  # fmt: skip
    """Run ``calls`` at once, each in its own thread and connection; their results (or the
    exception each raised), in the order of ``calls``. With ``hold``, a third transaction runs
    it first and ends only once every call waits for a lock."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls) + 1)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(30)
            results[index] = call()
        except BaseException as exc:
            results[index] = exc
        finally:
            _close()

    order = list(enumerate(calls))
    random.shuffle(order)
    threads = [threading.Thread(target=run, args=item) for item in order]

    def start() -> None:
        for thread in threads:
            thread.start()
        barrier.wait(30)

    if hold is None:
        start()
    else:
        with holding(hold, len(calls), commit=commit):
            start()
            _wait_for_waiters(len(calls))
    for thread in threads:
        thread.join(60)
    assert connection.vendor == "postgresql"
    return results
