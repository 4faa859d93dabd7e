"""The admin's middleware (session, user, messages, CSRF) is skipped for OCPI requests only."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from ocpi_platform.ocpi.browser import (
    BrowserAuthenticationMiddleware,
    BrowserCsrfViewMiddleware,
    BrowserMessageMiddleware,
    BrowserSessionMiddleware,
)

CHAIN = (
    BrowserSessionMiddleware,
    BrowserCsrfViewMiddleware,
    BrowserAuthenticationMiddleware,
    BrowserMessageMiddleware,
)


def run_chain(request: HttpRequest) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def view(req: HttpRequest) -> HttpResponse:
        seen.update(
            session=hasattr(req, "session"),
            user="user" in req.__dict__ or hasattr(req, "user"),
            messages=hasattr(req, "_messages"),
            csrf=req.META.get("CSRF_COOKIE") is not None,
        )
        return HttpResponse("ok")

    handler: Any = view
    for middleware in reversed(CHAIN):
        handler = middleware(handler)
    seen["response"] = handler(request)
    return seen


@pytest.mark.parametrize("path", ["/ocpi/versions", "/ocpi/2.2.1/sender/tokens", "/ocpi"])
def test_an_ocpi_request_gets_no_session_user_messages_or_csrf(path):
    request = RequestFactory().get(path, HTTP_COOKIE="sessionid=abc")
    seen = run_chain(request)

    assert seen == {**seen, "session": False, "user": False, "messages": False, "csrf": False}
    assert "Cookie" not in seen["response"].get("Vary", "")


@pytest.mark.django_db
def test_the_admin_keeps_session_user_and_messages():
    request = RequestFactory().get("/admin/")
    seen = run_chain(request)

    assert seen["session"]
    assert seen["user"]
    assert seen["messages"]


def test_csrf_still_guards_a_form_post_outside_ocpi():
    request = RequestFactory().post("/admin/login/", {"username": "x"})
    middleware = BrowserCsrfViewMiddleware(lambda r: HttpResponse("ok"))

    def form_view(r: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    refused = middleware.process_view(request, form_view, (), {})
    assert refused is not None
    assert refused.status_code == 403
    ocpi = RequestFactory().post("/ocpi/2.2.1/tokens/NL/ABC/1", {"x": "y"})
    assert middleware.process_view(ocpi, form_view, (), {}) is None
