from __future__ import annotations

from django.apps import AppConfig


class TariffsConfig(AppConfig):
    name = "tariffs"
    verbose_name = "OCPI tariffs"
