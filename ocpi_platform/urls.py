from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from ocpi_platform.ocpi import registry

# Every OCPI module mounts its paths (``registry.mount`` in its AppConfig.ready), under one
# "ocpi" namespace: adding a module is adding an app, this file does not change.
ocpi_patterns = [path(prefix, include(urls)) for prefix, urls in registry.url_modules()]

urlpatterns = [
    path("ocpi/", include((ocpi_patterns, "ocpi"), namespace="ocpi")),
    path("admin/", admin.site.urls),
    path("", include("cockpit.urls")),
]

handler400 = "ocpi_platform.ocpi.envelope.handler400"
handler404 = "ocpi_platform.ocpi.envelope.handler404"
handler500 = "ocpi_platform.ocpi.envelope.handler500"
