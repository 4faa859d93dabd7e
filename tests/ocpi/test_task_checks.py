"""The system check that keeps every Celery task and countdown below the visibility timeout."""

from __future__ import annotations

import pytest
from django.core import checks

from locations import tasks
from ocpi_platform import task_checks
from ocpi_platform.ocpi import client

REDIS = "redis://127.0.0.1:6379/0"


def problems() -> list[tuple[str, str]]:
    return [(p.id, p.msg) for p in task_checks.check_task_limits(None)]  # type: ignore[misc]


def test_it_is_registered():
    assert task_checks.check_task_limits in checks.registry.registry.get_checks()


def test_the_project_settings_on_redis_pass(settings):
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

    assert problems() == []


def test_redis_without_options_has_kombus_default_of_an_hour(settings):
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

    assert task_checks.visibility_timeout() == 3600.0
    settings.CELERY_BROKER_URL = "filesystem://"
    assert task_checks.visibility_timeout() is None
    settings.CELERY_BROKER_URL = "memory://"
    assert task_checks.visibility_timeout() is None


def test_a_task_that_may_outlive_the_visibility_timeout_is_an_error(settings, monkeypatch):
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    monkeypatch.setattr(tasks.pull_locations, "time_limit", 3660)  # as it was

    found = problems()

    assert found == [
        (
            "ocpi.E020",
            "Celery task locations.tasks.pull_locations may run 3660 s, not below the broker's "
            "visibility timeout (3600 s): a run that long is delivered a second time while it "
            "runs (late acks).",
        )
    ]


def test_a_task_without_any_time_limit_is_an_error(settings, monkeypatch):
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_TASK_TIME_LIMIT = None
    monkeypatch.setattr(tasks.push_all_locations, "time_limit", None)

    assert (
        "ocpi.E020",
        "Celery task locations.tasks.push_all_locations has no time limit: it may run past the "
        "broker's visibility timeout (3600 s) and be delivered a second time.",
    ) in problems()


def test_a_shorter_visibility_timeout_names_each_task_over_it(settings):
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 700}

    over = {msg.split()[2] for code, msg in problems() if code == "ocpi.E020"}

    assert "locations.tasks.pull_locations" in over  # 3060 s
    assert "credentials.tasks.ping_idle_partners" in over  # 1860 s
    assert "outbox.tasks.sweep" not in over  # the global 150 s
    assert not any(name.startswith("celery.") for name in over)


@pytest.mark.parametrize("what", ["backoff", "retry-after"])
def test_a_countdown_not_below_the_visibility_timeout_is_an_error(settings, monkeypatch, what):
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    if what == "backoff":
        settings.OCPI_OUTBOX_BACKOFF = (5.0, 60.0, 3600.0)
        expected = "The largest OCPI_OUTBOX_BACKOFF is 3600 s"
    else:
        monkeypatch.setattr(client, "RETRY_AFTER_MAX_SECONDS", 3600.0)  # as it was
        expected = "The longest Retry-After honoured (client.RETRY_AFTER_MAX_SECONDS) is 3600 s"

    found = problems()

    assert [code for code, _ in found] == ["ocpi.E021"]
    assert found[0][1].startswith(expected)


def test_a_broker_without_visibility_timeout_is_not_checked(settings, monkeypatch):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": "broker/in"}
    monkeypatch.setattr(tasks.pull_locations, "time_limit", 99999)

    assert problems() == []
