"""The base of every OCPI endpoint: DRF's APIView without its per-request set-up work.

For every request DRF makes new instances of the view's renderer, parser, authentication and
permission classes and builds the ``Allow`` header by looking up each HTTP method on the view. On
the hot paths (a real-time authorization, an EVSE status PATCH, a list page) that is a tenth of
the request. Ours are stateless, so ``OcpiView`` makes each set once per combination of classes
and each ``Allow`` once per view class; everything else, and the order of the checks, is DRF's.
Throttle instances keep per-request state in DRF and are still made per request.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.views import APIView


@cache
def _instances(classes: tuple[type, ...]) -> tuple[Any, ...]:
    return tuple(cls() for cls in classes)


@cache
def _allowed(view_class: type) -> tuple[str, ...]:
    names: list[str] = getattr(view_class, "http_method_names", [])
    return tuple(m.upper() for m in names if hasattr(view_class, m))


class OcpiView(APIView):
    """An APIView whose policy objects are made once (they must not keep per-request state)."""

    def get_renderers(self) -> list[BaseRenderer]:
        return list(_instances(tuple(self.renderer_classes)))

    def get_parsers(self) -> list[BaseParser]:
        return list(_instances(tuple(self.parser_classes)))

    def get_authenticators(self) -> list[BaseAuthentication]:
        return list(_instances(tuple(self.authentication_classes)))

    def get_permissions(self) -> list[BasePermission]:
        return list(_instances(tuple(self.permission_classes)))

    def _allowed_methods(self) -> list[str]:
        view_class: type = type(self)
        return list(_allowed(view_class))
