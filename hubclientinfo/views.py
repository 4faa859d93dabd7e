"""HubClientInfo endpoints (spec mod_hub_client_info); the rules live in ``services``.

A configuration module: no routing headers are read or sent.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response

from ocpi_platform.ocpi.envelope import ocpi_response, pushed_object
from ocpi_platform.ocpi.errors import NotFound
from ocpi_platform.ocpi.fields import check_url_ids
from ocpi_platform.ocpi.pagination import page_headers, page_request
from ocpi_platform.ocpi.permissions import principal_of
from ocpi_platform.ocpi.views import OcpiView

from . import services


@cache
def _url_id_rules() -> dict[str, Any]:
    """The URL's party follows the rules of the ClientInfo's own fields."""
    fields = services.ClientInfoSerializer().fields
    return {"country_code": fields["country_code"], "party_id": fields["party_id"]}


def _check_party(country_code: str, party_id: str) -> None:
    check_url_ids({"country_code": country_code, "party_id": party_id}, _url_id_rules())


class ReceiverView(OcpiView):
    """GET and PUT of the ClientInfo of one party behind the calling hub."""

    def get(self, request: Request, country_code: str, party_id: str) -> Response:
        principal = principal_of(request)
        services.require_hub(principal)
        _check_party(country_code, party_id)
        return ocpi_response(services.get(principal.partner_id, country_code, party_id))

    def put(self, request: Request, country_code: str, party_id: str) -> Response:
        principal = principal_of(request)
        services.require_hub(principal)
        _check_party(country_code, party_id)
        outcome = services.put(
            principal.partner_id,
            country_code,
            party_id,
            pushed_object(request, "one ClientInfo object"),
        )
        return ocpi_response(message=outcome.message, http_status=201 if outcome.created else 200)


class ReceiverRootView(OcpiView):
    """The endpoint itself: ClientInfo objects live under /{country_code}/{party_id}."""

    def get(self, request: Request) -> Response:
        raise NotFound("Address a ClientInfo as .../hubclientinfo/{country_code}/{party_id}.")

    put = get


class SenderListView(OcpiView):
    """GET the ClientInfo of our connections (we are the hub), paginated."""

    def get(self, request: Request) -> HttpResponse:
        principal = principal_of(request)
        page = page_request(request)
        total, rows = services.page(page, caller_id=principal.partner_id)
        return ocpi_response(rows, headers=page_headers(request, page, total=total))
