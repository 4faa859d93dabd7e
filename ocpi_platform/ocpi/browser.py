"""Middleware that only the browser side (the admin) needs, skipped under /ocpi/.

OCPI requests carry a token, never a cookie: they have no session, no logged-in user, no flash
messages and no CSRF check (every OCPI view is exempt). Django's middleware for those would still
run on every partner request, the hot paths included (a list page, an EVSE status PATCH), so the
same classes are used with a shortcut: a request under /ocpi/ goes straight to the next layer.
Everything else (the admin, /healthz, /metrics) gets Django's behaviour unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseForbidden
from django.middleware.csrf import CsrfViewMiddleware

from .envelope import is_ocpi_path


class _NotForOcpi:
    get_response: Any

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_ocpi_path(request.path_info):
            return self.get_response(request)  # type: ignore[no-any-return]
        return super().__call__(request)  # type: ignore[misc, no-any-return]


class BrowserSessionMiddleware(_NotForOcpi, SessionMiddleware):
    pass


class BrowserCsrfViewMiddleware(_NotForOcpi, CsrfViewMiddleware):
    def process_view(
        self,
        request: HttpRequest,
        callback: Callable[..., HttpResponseBase],
        callback_args: tuple[Any, ...],
        callback_kwargs: dict[str, Any],
    ) -> HttpResponseForbidden | None:
        if is_ocpi_path(request.path_info):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class BrowserAuthenticationMiddleware(_NotForOcpi, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(_NotForOcpi, MessageMiddleware):
    pass
