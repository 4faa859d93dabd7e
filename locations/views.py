"""Locations endpoints (spec mod_locations): the sender interface (ours) and the receiver one.

Views only translate HTTP: the rules live in ``services``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response

from ocpi_platform.ocpi.envelope import ocpi_response, pushed_object, raw_data_response
from ocpi_platform.ocpi.errors import NotFound
from ocpi_platform.ocpi.fields import check_url_ids
from ocpi_platform.ocpi.headers import RoutingHeaders
from ocpi_platform.ocpi.pagination import page_headers, page_request
from ocpi_platform.ocpi.parties import Party
from ocpi_platform.ocpi.permissions import principal_of
from ocpi_platform.ocpi.types import Role
from ocpi_platform.ocpi.views import OcpiView

from . import listing, schema, services
from .paths import ObjectPath, receiver_path


@cache
def _url_id_rules() -> dict[str, Any]:
    """The URL's ids follow the rules of the same ids in a pushed body (schema)."""
    location = schema.LocationSerializer().fields
    return {
        "country_code": location["country_code"],
        "party_id": location["party_id"],
        "location_id": location["id"],
        "evse_uid": schema.EvseSerializer().fields["uid"],
        "connector_id": schema.ConnectorSerializer().fields["id"],
    }


def _routing(request: Request) -> dict[str, str]:
    """A response carries the request's routing headers, swapped (functional modules)."""
    return RoutingHeaders.from_request(request).swapped().as_headers()


def _addressed_party(request: Request) -> Party | None:
    routing = RoutingHeaders.from_request(request)
    if routing.to_country_code and routing.to_party_id:
        return Party(routing.to_country_code, routing.to_party_id, Role.CPO)
    return None


class SenderListView(OcpiView):
    """GET our shared locations, paginated (offset, limit, date_from, date_to)."""

    def get(self, request: Request) -> HttpResponse:
        page = page_request(request)
        to = _addressed_party(request)  # a platform hosting several parties lists one
        total, rows = listing.page(page, (to.country_code, to.party_id) if to else None)
        headers = {**page_headers(request, page, total=total), **_routing(request)}
        return raw_data_response("[" + ",".join(rows) + "]", headers=headers)


class SenderObjectView(OcpiView):
    """GET one of our locations, EVSEs or connectors by id."""

    def get(
        self,
        request: Request,
        location_id: str,
        evse_uid: str | None = None,
        connector_id: str | None = None,
    ) -> Response:
        ids = {"location_id": location_id, "evse_uid": evse_uid, "connector_id": connector_id}
        check_url_ids(ids, _url_id_rules())
        found = services.sender_object(
            location_id, evse_uid, connector_id, party=_addressed_party(request)
        )
        return ocpi_response(found, headers=_routing(request))


class ReceiverView(OcpiView):
    """GET, PUT, PATCH of a partner's location, EVSE or connector (client owned objects)."""

    def _path(self, request: Request, **kwargs: str | None) -> tuple[ObjectPath, int]:
        principal = principal_of(request)
        path = receiver_path(request.META, request.path, kwargs)
        if path is None:
            raise NotFound(
                "No location, EVSE or connector has this path: it is {country_code}/{party_id}/"
                "{location_id}[/{evse_uid}[/{connector_id}]], each id one (encoded) segment."
            )
        check_url_ids(
            {
                "country_code": path.country_code,
                "party_id": path.party_id,
                "location_id": path.location_id,
                "evse_uid": path.evse_uid,
                "connector_id": path.connector_id,
            },
            _url_id_rules(),
        )
        if not principal.owns(path.country_code, path.party_id):
            raise NotFound(
                f"{path.country_code}/{path.party_id} is not one of your parties "
                "(the roles of your credentials)."
            )
        return path, principal.partner_id

    def get(self, request: Request, **kwargs: str | None) -> Response:
        path, owner = self._path(request, **kwargs)
        found = services.get_object(path, owner=owner)
        return ocpi_response(found, headers=_routing(request))

    def put(self, request: Request, **kwargs: str | None) -> Response:
        path, owner = self._path(request, **kwargs)
        outcome = services.put(path, pushed_object(request), owner=owner)
        return ocpi_response(
            message=outcome.message,
            http_status=201 if outcome.created else 200,
            headers=_routing(request),
        )

    def patch(self, request: Request, **kwargs: str | None) -> Response:
        path, owner = self._path(request, **kwargs)
        outcome = services.patch(path, pushed_object(request), owner=owner)
        return ocpi_response(message=outcome.message, headers=_routing(request))


class ReceiverRootView(OcpiView):
    """The receiver endpoint itself: objects live under /{country_code}/{party_id}/{id}."""
