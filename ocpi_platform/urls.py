from __future__ import annotations

from importlib import import_module
from typing import Any

from django.contrib import admin
from django.urls import URLResolver, include, path

from ocpi_platform.ocpi import registry

# Every OCPI module mounts its paths (``registry.mount`` in its AppConfig.ready), under one
# "ocpi" namespace: adding a module is adding an app, this file does not change.


def _mounted() -> list[URLResolver]:
    """One include per prefix holding every mounted module's patterns: a request is matched
    against one flat list (an include per module costs a failed sub-resolve, with its list of
    tried patterns, for every module before the right one)."""
    grouped: dict[str, list[Any]] = {}
    for prefix, urls in registry.url_modules():
        grouped.setdefault(prefix, []).extend(import_module(urls).urlpatterns)
    return [path(prefix, include(patterns)) for prefix, patterns in grouped.items()]


ocpi_patterns = _mounted()

urlpatterns = [
    path("ocpi/", include((ocpi_patterns, "ocpi"), namespace="ocpi")),
    path("admin/", admin.site.urls),
    path("", include("cockpit.urls")),
]

handler400 = "ocpi_platform.ocpi.envelope.handler400"
handler404 = "ocpi_platform.ocpi.envelope.handler404"
handler500 = "ocpi_platform.ocpi.envelope.handler500"
