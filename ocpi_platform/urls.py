from __future__ import annotations

from importlib import import_module
from typing import Any

from django.contrib import admin
from django.urls import URLResolver, include, path
from django.urls.resolvers import ResolverMatch, RoutePattern

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
    # The longest prefix first: a module's path never goes through a failed include of the
    # shorter prefix ("" holds /ocpi/versions and the version details, matched when it fails).
    ordered = sorted(grouped.items(), key=lambda item: -len(item[0]))
    return [path(prefix, include(patterns)) for prefix, patterns in ordered]


ocpi_patterns = _mounted()


class RememberingResolver(URLResolver):
    """The /ocpi/ resolver, which remembers what each path resolved to (paths repeat: a
    partner pulls the same list pages and PATCHes the same EVSEs). The resolver above builds a
    new match from it for every request. At most ``KEPT`` paths; a path that resolves to
    nothing is not kept."""

    KEPT = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resolved: dict[str, ResolverMatch] = {}

    def resolve(self, path: Any) -> ResolverMatch:
        key = str(path)
        found = self._resolved.get(key)
        if found is None:
            found = super().resolve(key)
            # The patterns tried before the match serve only a debug 404 page. Kept, they
            # were a dozen lists per path, thousands of long-lived objects that every full
            # garbage collection walks (a pause of tens of ms in the middle of requests).
            found.tried = None
            if len(self._resolved) >= self.KEPT:
                self._resolved.clear()
            self._resolved[key] = found
        return found


urlpatterns = [
    RememberingResolver(RoutePattern("ocpi/"), ocpi_patterns, app_name="ocpi", namespace="ocpi"),
    path("admin/", admin.site.urls),
    path("", include("cockpit.urls")),
]

handler400 = "ocpi_platform.ocpi.envelope.handler400"
handler404 = "ocpi_platform.ocpi.envelope.handler404"
handler500 = "ocpi_platform.ocpi.envelope.handler500"
