"""Tokens endpoints of our own (the kit serves the list and the receiver): the eMSP's real-time
authorization, ``POST {tokens}/{uid}/authorize[?type=...]`` (spec mod_tokens §4.2)."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpResponse
from rest_framework import serializers
from rest_framework.request import Request

from ocpi_platform.ocpi.envelope import describe_validation_errors, raw_data_response, read_json
from ocpi_platform.ocpi.errors import Forbidden, InvalidParameters
from ocpi_platform.ocpi.fields import check_url_ids
from ocpi_platform.ocpi.headers import RoutingHeaders
from ocpi_platform.ocpi.permissions import principal_of
from ocpi_platform.ocpi.types import Role
from ocpi_platform.ocpi.views import OcpiView

from . import authorization, schema

# A CPO asks; a hub relays a CPO's request.
ASKING_ROLES = frozenset({Role.CPO, Role.HUB})


@cache
def _url_rules() -> dict[str, Any]:
    token = schema.TokenSerializer().fields
    return {"uid": token["uid"], "type": token["type"]}


def token_type_of(request: Request) -> str:
    """The ``type`` query parameter (default RFID), a TokenType: 2001 naming it otherwise."""
    token_type = request.query_params.get("type") or "RFID"
    check_url_ids({"type": token_type}, _url_rules())
    return token_type


def location_references(request: Request) -> dict[str, Any] | None:
    """The optional LocationReferences body (None without a body): 2001 naming the field."""
    data = read_json(request._request)  # the real-time path: no DRF parser selection
    if data is None:
        return None
    try:
        return schema.validate_location_references(data)
    except serializers.ValidationError as exc:
        why = "; ".join(describe_validation_errors(exc.detail))
        raise InvalidParameters(f"The LocationReferences are not valid: {why}.") from None


class AuthorizeView(OcpiView):
    """POST: the AuthorizationInfo of one of our tokens for a CPO's charge point."""

    def post(self, request: Request, uid: str) -> HttpResponse:
        principal = principal_of(request)
        if not any(p.role in ASKING_ROLES for p in principal.parties):
            raise Forbidden("Only a CPO (or a hub for one) may ask for a real-time authorization.")
        check_url_ids({"uid": uid}, _url_rules())
        token_type = token_type_of(request)
        location = location_references(request)
        routing = RoutingHeaders.from_request(request)
        party = (
            (routing.to_country_code, routing.to_party_id)
            if routing.to_country_code and routing.to_party_id
            else None
        )
        data = authorization.authorize(uid, token_type, location, partner=principal, party=party)
        return raw_data_response(data, headers=routing.swapped().as_headers())
