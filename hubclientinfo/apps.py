from __future__ import annotations

from django.apps import AppConfig


class HubclientinfoConfig(AppConfig):
    name = "hubclientinfo"
    verbose_name = "OCPI hubclientinfo"
