"""Short locks for periodic work that must run once at a time (two beats, several workers).

``OCPI_LOCK_URL`` names a Redis server: the lock is a Redis key with an expiry (redis-py's
``Lock``), so a process that dies cannot hold it for longer than ``ttl``. Without a Redis URL
(the embedded setup, one machine) an exclusive ``flock`` on a file in ``OCPI_DATA_DIR`` does
the same between the processes of that machine, and goes away with its holder.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path

import redis
from django.conf import settings
from redis.exceptions import LockError

logger = logging.getLogger(__name__)

PREFIX = "ocpi:lock:"


class Held:
    """The holder's handle: ``extend`` pushes the expiry back while long work goes on."""

    def __init__(self, lock: redis.lock.Lock | None, ttl: float) -> None:
        self._lock = lock
        self._ttl = ttl

    def extend(self) -> None:
        if self._lock is not None:
            with suppress(LockError):
                self._lock.extend(self._ttl, replace_ttl=True)


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _uses_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


@contextmanager
def single_run(name: str, ttl: float) -> Iterator[Held | None]:
    """Hold the lock ``name`` for the block, or yield None at once when someone else holds it."""
    url = settings.OCPI_LOCK_URL
    if _uses_redis(url):
        lock = _redis(url).lock(PREFIX + name, timeout=ttl, blocking=False)
        if not lock.acquire():
            yield None
            return
        try:
            yield Held(lock, ttl)
        finally:
            with suppress(LockError):  # expired meanwhile: nothing to release
                lock.release()
        return
    folder = Path(settings.DATA_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            yield Held(None, ttl)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
