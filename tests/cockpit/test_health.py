"""/healthz and /readyz: database, broker, beat and a worker, 503 naming what failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from cockpit import health, tasks
from cockpit.beat import StampingDatabaseScheduler
from cockpit.models import Heartbeat
from ocpi_platform.ocpi.types import now_utc

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_checking_anything(client: Client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ok_when_beat_and_a_worker_are_alive(client: Client):
    tasks.heartbeat()  # what a worker does when beat sends it
    health.stamp("beat")

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "beat", "worker"}


def test_readyz_names_a_stale_worker(client: Client, settings):
    settings.OCPI_READY_WORKER_SECONDS = 60
    health.stamp("beat")
    with time_machine.travel(now_utc() - timedelta(seconds=90)):
        tasks.heartbeat()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["worker"]
    assert "s ago" in response.json()["checks"]["worker"]["detail"]


def test_readyz_without_any_sign_of_life(client: Client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["beat", "worker"]


def test_readyz_names_an_unreachable_broker(client: Client, settings):
    health.stamp("beat")
    health.stamp("worker")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


def test_beat_stamps_its_heartbeat_as_it_ticks(monkeypatch):
    monkeypatch.setattr(
        "django_celery_beat.schedulers.DatabaseScheduler.tick", lambda self, *a, **k: 5.0
    )
    scheduler = StampingDatabaseScheduler.__new__(StampingDatabaseScheduler)

    assert scheduler.tick() == 5.0
    first = Heartbeat.objects.get(name="beat").at
    scheduler.tick()  # within STAMP_SECONDS: no second write
    assert Heartbeat.objects.get(name="beat").at == first


def test_the_heartbeat_is_in_beats_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["cockpit-heartbeat"]
    assert entry["task"] == "cockpit.tasks.heartbeat"
    assert settings.CELERY_BEAT_SCHEDULER == "cockpit.beat:StampingDatabaseScheduler"
