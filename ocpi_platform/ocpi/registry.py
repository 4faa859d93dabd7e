"""Module registry: each app declares the OCPI endpoints it serves.

The version details endpoint lists what is registered (and enabled for our parties), so adding a
module means adding an app that registers its endpoints in ``AppConfig.ready()``.

The registry is also what is *served*: a URL of the ``ocpi`` namespace belongs to the endpoint
whose ``url_name`` it is, or starts with that name and a ``-`` (``ocpi:locations-receiver`` owns
``ocpi:locations-receiver-object``). The inbound middleware answers 404 for a URL whose endpoint
is not enabled, or that no endpoint claims (only the versions list and the version details are
served without one): exactly the interfaces the version details list are served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.urls import reverse

from .types import InterfaceRole

VERSION = "2.2.1"
SUPPORTED_VERSIONS: tuple[str, ...] = (VERSION,)


class ModuleId(StrEnum):
    """The module identifiers of OCPI 2.2.1 (version details ``endpoints[].identifier``)."""

    CDRS = "cdrs"
    CHARGING_PROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUB_CLIENT_INFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


@dataclass(frozen=True)
class ModuleEndpoint:
    identifier: ModuleId
    role: InterfaceRole
    url_name: str
    enabled: Callable[[], bool] = lambda: True

    def url(self) -> str:
        """The advertised URL, ending in '/': a peer that appends an object path without a
        separator (``{url}NL/ABC/LOC1``) still reaches it, and doubled slashes are served too."""
        url = public_url(reverse(self.url_name))
        return url if url.endswith("/") else url + "/"

    def serves(self, view_name: str) -> bool:
        return view_name == self.url_name or view_name.startswith(self.url_name + "-")


_endpoints: dict[tuple[str, InterfaceRole], ModuleEndpoint] = {}

# Served without a registered endpoint: the way in to the version details.
ENTRY_POINTS = frozenset({"ocpi:versions", "ocpi:version-details"})
# Configuration modules: never routed, routing headers are not used (transport › Message Routing).
CONFIGURATION_MODULES = frozenset({"versions", "credentials", "hubclientinfo"})


# The URL modules the apps mount under /ocpi/ (prefix, dotted path), in registration order.
_url_modules: list[tuple[str, str]] = []


def register(endpoint: ModuleEndpoint) -> None:
    _endpoints[(endpoint.identifier, endpoint.role)] = endpoint


def mount(urls: str, *, prefix: str = f"{VERSION}/") -> None:
    """Serve the URL patterns of the module ``urls`` (dotted path) under ``/ocpi/{prefix}``: an
    app declares its routes here, in ``AppConfig.ready()``; ``ocpi_platform.urls`` includes
    every mounted module (no manual include)."""
    if (prefix, urls) not in _url_modules:
        _url_modules.append((prefix, urls))


def url_modules() -> list[tuple[str, str]]:
    return list(_url_modules)


def endpoints() -> list[ModuleEndpoint]:
    return [e for e in _endpoints.values() if e.enabled()]


def endpoint_serving(view_name: str) -> ModuleEndpoint | None:
    """The registered endpoint (enabled or not) a URL name of the ``ocpi`` namespace belongs to."""
    claims = [e for e in _endpoints.values() if e.serves(view_name)]
    return max(claims, key=lambda e: len(e.url_name), default=None)


def endpoint_of(request: Any) -> ModuleEndpoint | None:
    """The endpoint a request was routed to (set by the inbound middleware), if any."""
    endpoint = getattr(request, "ocpi_endpoint", None)
    return endpoint if isinstance(endpoint, ModuleEndpoint) else None


def public_url(path: str) -> str:
    return f"{settings.OCPI_PUBLIC_URL}{path}"


def versions_url() -> str:
    return public_url(reverse("ocpi:versions"))


def version_details_url() -> str:
    return public_url(reverse("ocpi:version-details"))
