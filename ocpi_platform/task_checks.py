"""System check: no Celery task outlives the broker's visibility timeout.

Tasks are acknowledged late (``CELERY_TASK_ACKS_LATE``). A broker with a visibility timeout
(Redis, SQS) hands a message that is not acknowledged within it to another worker: a task still
running then, or one held back by a ``countdown`` (Redis keeps it unacknowledged while it
waits), runs twice. So every task's time limit, the largest outbox backoff and the longest
``Retry-After`` we honour (both are countdowns) must stay below the visibility timeout.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, register

from .ocpi import client

# kombu's visibility timeouts when CELERY_BROKER_TRANSPORT_OPTIONS sets none (seconds).
DEFAULT_VISIBILITY_TIMEOUTS = {"redis": 3600.0, "rediss": 3600.0, "sentinel": 3600.0, "sqs": 1800.0}


def visibility_timeout() -> float | None:
    """The broker's visibility timeout in seconds; None when it has none (filesystem, memory)."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    if options.get("visibility_timeout") is not None:
        return float(options["visibility_timeout"])
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or "").split(";")[0].strip()
    return DEFAULT_VISIBILITY_TIMEOUTS.get(url.split("://")[0].lower()) if "://" in url else None


def _import_tasks() -> None:
    """Register every app's tasks, as the worker's autodiscovery does (``<app>.tasks``)."""
    for config in apps.get_app_configs():
        name = f"{config.name}.tasks"
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(name)


@register()
def check_task_limits(app_configs: Any, **kwargs: Any) -> list[Error]:
    timeout = visibility_timeout()
    if timeout is None:
        return []
    from .celery import app

    _import_tasks()
    fix = "Lower it, or raise CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']."
    problems: list[Error] = []
    for name, task in sorted(app.tasks.items()):
        if name.startswith("celery."):
            continue
        limit = task.time_limit
        if limit is None:
            limit = getattr(settings, "CELERY_TASK_TIME_LIMIT", None)
        if limit is None:
            problems.append(
                Error(
                    f"Celery task {name} has no time limit: it may run past the broker's "
                    f"visibility timeout ({timeout:g} s) and be delivered a second time.",
                    hint="Give it a time_limit, or set CELERY_TASK_TIME_LIMIT.",
                    id="ocpi.E020",
                )
            )
        elif float(limit) >= timeout:
            problems.append(
                Error(
                    f"Celery task {name} may run {float(limit):g} s, not below the broker's "
                    f"visibility timeout ({timeout:g} s): a run that long is delivered a second "
                    "time while it runs (late acks).",
                    hint=fix,
                    id="ocpi.E020",
                )
            )
    countdowns = {
        "The largest OCPI_OUTBOX_BACKOFF": max(settings.OCPI_OUTBOX_BACKOFF, default=0.0),
        "The longest Retry-After honoured (client.RETRY_AFTER_MAX_SECONDS)": (
            client.RETRY_AFTER_MAX_SECONDS
        ),
    }
    for what, seconds in countdowns.items():
        if float(seconds) >= timeout:
            problems.append(
                Error(
                    f"{what} is {float(seconds):g} s, not below the broker's visibility timeout "
                    f"({timeout:g} s): a task sent with that countdown is delivered twice.",
                    hint=fix,
                    id="ocpi.E021",
                )
            )
    return problems
