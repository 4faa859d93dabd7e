"""Module registry: each app declares the OCPI endpoints it serves.

The version details endpoint lists what is registered (and enabled for our parties), so adding a
module means adding an app that registers its endpoints in ``AppConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from .types import InterfaceRole

VERSION = "2.2.1"
SUPPORTED_VERSIONS: tuple[str, ...] = (VERSION,)


@dataclass(frozen=True)
class ModuleEndpoint:
    identifier: str
    role: InterfaceRole
    url_name: str
    enabled: Callable[[], bool] = lambda: True

    def url(self) -> str:
        return public_url(reverse(self.url_name))


_endpoints: dict[tuple[str, InterfaceRole], ModuleEndpoint] = {}


def register(endpoint: ModuleEndpoint) -> None:
    _endpoints[(endpoint.identifier, endpoint.role)] = endpoint


def endpoints() -> list[ModuleEndpoint]:
    return [e for e in _endpoints.values() if e.enabled()]


def public_url(path: str) -> str:
    return f"{settings.OCPI_PUBLIC_URL}{path}"


def versions_url() -> str:
    return public_url(reverse("ocpi:versions"))


def version_details_url() -> str:
    return public_url(reverse("ocpi:version-details"))
