"""The Celery app: configured from Django settings (``CELERY_*``), tasks found in the apps."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocpi_platform.settings")

app = Celery("ocpi_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect(weak=False)
def _close_old_connections(**kwargs: Any) -> None:
    """Before each task, as Django does before each request: drop a database connection that is
    broken or older than CONN_MAX_AGE (the connection is kept across tasks otherwise, see
    CELERY_DB_REUSE_MAX)."""
    from django.db import close_old_connections, connection

    task = kwargs.get("task")
    if getattr(getattr(task, "request", None), "is_eager", False) or connection.in_atomic_block:
        return  # run in-process (apply(), tests): the caller's connection and transaction
    close_old_connections()


@worker_process_init.connect(weak=False)
def _settle(**kwargs: Any) -> None:
    """Each worker process, once it has loaded the tasks: freeze what is loaded, so that full
    garbage collections do not walk it in the middle of a drain (``ocpi_platform.warm``)."""
    from ocpi_platform import warm

    warm.settle()
