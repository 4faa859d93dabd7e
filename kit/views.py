"""The sender and receiver endpoints of a declared module (views bound to its spec).

Views only translate HTTP: the rules live in ``kit.services``. Methods a module does not allow
are answered 405 with the OCPI envelope (DRF's MethodNotAllowed, mapped by the handler).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response

from ocpi_platform.ocpi.envelope import ocpi_response, pushed_object, raw_data_response
from ocpi_platform.ocpi.errors import InvalidParameters, NotFound
from ocpi_platform.ocpi.fields import CiString, check_url_ids, segments_as_sent
from ocpi_platform.ocpi.headers import RoutingHeaders
from ocpi_platform.ocpi.pagination import page_headers, page_request
from ocpi_platform.ocpi.parties import Party
from ocpi_platform.ocpi.permissions import principal_of
from ocpi_platform.ocpi.views import OcpiView

from . import listing, services
from .spec import ModuleSpec, ObjectKey

# The URL's ids follow the rules of the same ids in a body.
_URL_ID_RULES: dict[str, Any] = {
    "country_code": CiString(2),
    "party_id": CiString(3),
    "object_id": CiString(36),
    "type": CiString(16),
}


def routing(request: Request) -> dict[str, str]:
    """A response carries the request's routing headers, swapped (functional modules)."""
    return RoutingHeaders.from_request(request).swapped().as_headers()


def addressed_party(
    request: Request, spec: ModuleSpec, to: RoutingHeaders | None = None
) -> Party | None:
    to = to or RoutingHeaders.from_request(request)
    if to.to_country_code and to.to_party_id:
        return Party(to.to_country_code, to.to_party_id, spec.owner)
    return None


def object_type(request: Request, spec: ModuleSpec) -> str:
    if not spec.type_field:
        return ""
    kind = str(request.query_params.get("type") or spec.type_default)
    if spec.type_values and kind not in spec.type_values:
        raise InvalidParameters(
            f"type: {kind!r} is not a {spec.name} type; it is one of {', '.join(spec.type_values)}."
        )
    return kind


class _ModuleView(OcpiView):
    spec: ClassVar[ModuleSpec | None] = None

    @property
    def module(self) -> ModuleSpec:
        if self.spec is None:
            raise TypeError("a module view is made with as_view(spec=...)")
        return self.spec


class SenderListView(_ModuleView):
    """GET our objects, paginated (offset, limit, date_from, date_to)."""

    def get(self, request: Request) -> HttpResponse:
        plain = request._request  # the hot path: no DRF attribute proxy for what follows
        page = page_request(plain)
        routed = RoutingHeaders.from_request(plain)
        to = addressed_party(request, self.module, routed)  # several parties: one listed
        total, rows = listing.page(
            self.module, page, (to.country_code, to.party_id) if to else None
        )
        headers = {**page_headers(plain, page, total=total), **routed.swapped().as_headers()}
        return raw_data_response("[" + ",".join(rows) + "]", headers=headers)


class SenderObjectView(_ModuleView):
    """GET one of our objects by its id (and ``type``)."""

    def get(self, request: Request, object_id: str) -> Response:
        spec = self.module
        kind = object_type(request, spec)
        check_url_ids({"object_id": object_id, "type": kind or None}, _URL_ID_RULES)
        key = ObjectKey("", "", object_id, kind)
        found = services.sender_object(spec, key, party=addressed_party(request, spec))
        return ocpi_response(found, headers=routing(request))


class ReceiverView(_ModuleView):
    """GET, PUT, PATCH, DELETE (as the module allows) of a partner's object."""

    def _ids(self, request: Request, ids: dict[str, str]) -> dict[str, str]:
        """The URL's ids: from the raw target when the server gives it (an id may hold an
        encoded '/'), else as routed."""
        after = f"/receiver/{self.module.prefix}/"
        parts = segments_as_sent(request.META.get("RAW_URI"), request.path, after)
        if parts is None and "segments" not in ids:
            return ids
        if parts is None or len(parts) != 3 or not all(parts):
            raise NotFound(
                f"No {self.module.name} has this path: it is {{country_code}}/{{party_id}}/"
                f"{{{self.module.id_field}}}, each id one (encoded) segment."
            )
        return dict(zip(("country_code", "party_id", "object_id"), parts, strict=True))

    def _key(self, request: Request, ids: dict[str, str]) -> tuple[ObjectKey, int]:
        spec = self.module
        ids = self._ids(request, ids)
        kind = object_type(request, spec)
        check_url_ids({**ids, "type": kind or None}, _URL_ID_RULES)
        principal = principal_of(request)
        if not principal.owns(ids["country_code"], ids["party_id"]):
            raise NotFound(
                f"{ids['country_code']}/{ids['party_id']} is not one of your parties "
                "(the roles of your credentials)."
            )
        key = ObjectKey(ids["country_code"], ids["party_id"], ids["object_id"], kind)
        return key, principal.partner_id

    def get(self, request: Request, **ids: str) -> Response:
        key, owner = self._key(request, ids)
        found = services.get_object(self.module, key, owner=owner)
        return ocpi_response(found, headers=routing(request))

    def put(self, request: Request, **ids: str) -> Response:
        key, owner = self._key(request, ids)
        outcome = services.put(self.module, key, pushed_object(request), owner=owner)
        return ocpi_response(
            message=outcome.message,
            http_status=201 if outcome.created else 200,
            headers=routing(request),
        )

    def patch(self, request: Request, **ids: str) -> Response:
        key, owner = self._key(request, ids)
        outcome = services.patch(self.module, key, pushed_object(request), owner=owner)
        return ocpi_response(message=outcome.message, headers=routing(request))

    def delete(self, request: Request, **ids: str) -> Response:
        key, owner = self._key(request, ids)
        outcome = services.delete(self.module, key, owner=owner)
        return ocpi_response(message=outcome.message or "Deleted.", headers=routing(request))


class ReceiverRootView(_ModuleView):
    """The receiver endpoint itself: objects live under /{country_code}/{party_id}/{id}."""
