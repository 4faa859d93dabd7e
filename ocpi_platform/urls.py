from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

# Every OCPI module mounts its paths here, under one "ocpi" namespace.
ocpi_patterns = [
    path("", include("credentials.urls")),
    path("2.2.1/", include("locations.urls")),
    path("2.2.1/", include("hubclientinfo.urls")),
]

urlpatterns = [
    path("ocpi/", include((ocpi_patterns, "ocpi"), namespace="ocpi")),
    path("admin/", admin.site.urls),
]

handler400 = "ocpi_platform.ocpi.envelope.handler400"
handler404 = "ocpi_platform.ocpi.envelope.handler404"
handler500 = "ocpi_platform.ocpi.envelope.handler500"
