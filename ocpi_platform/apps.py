from __future__ import annotations

from django.apps import AppConfig


class OcpiPlatformConfig(AppConfig):
    name = "ocpi_platform"
    verbose_name = "OCPI platform"

    def ready(self) -> None:
        from . import checks, task_checks  # noqa: F401  (registers the system checks)

        _ensure_broker_folders()


def _ensure_broker_folders() -> None:
    """The embedded broker (kombu filesystem transport) needs its folders to exist."""
    from pathlib import Path

    from django.conf import settings

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        folder = options.get(key)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
