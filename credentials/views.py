"""Versions and credentials endpoints (spec: version_information_endpoint, credentials)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from ocpi_platform.ocpi import registry
from ocpi_platform.ocpi.envelope import ocpi_response
from ocpi_platform.ocpi.errors import InvalidParameters
from ocpi_platform.ocpi.permissions import (
    CredentialsAccess,
    VersionsAccess,
    presented_token,
    principal_of,
)
from ocpi_platform.ocpi.views import OcpiView

from . import handshake


class VersionListView(OcpiView):
    """GET versions: the versions we support and their details URLs."""

    permission_classes = [VersionsAccess]

    def get(self, request: Request) -> Response:
        return ocpi_response([{"version": registry.VERSION, "url": registry.version_details_url()}])


class VersionDetailView(OcpiView):
    """GET version details: every endpoint the registered modules serve."""

    permission_classes = [VersionsAccess]

    def get(self, request: Request) -> Response:
        endpoints = [
            {"identifier": e.identifier, "role": str(e.role), "url": e.url()}
            for e in registry.endpoints()
        ]
        return ocpi_response({"version": registry.VERSION, "endpoints": endpoints})


def _offer(request: Request) -> handshake.Offer:
    if not isinstance(request.data, dict):
        kind = "no body" if request.data is None else f"a JSON {type(request.data).__name__}"
        raise InvalidParameters(f"Expected a credentials object, got {kind}.")
    return handshake.parse_offer(request.data, source="Invalid credentials")


class CredentialsView(OcpiView):
    """Credentials: GET any time; POST registers (token A); PUT updates; DELETE unregisters."""

    permission_classes = [CredentialsAccess]

    def get(self, request: Request) -> Response:
        return ocpi_response(handshake.our_credentials(presented_token(request)))

    def post(self, request: Request) -> Response:
        return ocpi_response(
            handshake.register_partner(principal=principal_of(request), offer=_offer(request))
        )

    def put(self, request: Request) -> Response:
        return ocpi_response(
            handshake.update_credentials(principal=principal_of(request), offer=_offer(request))
        )

    def delete(self, request: Request) -> Response:
        handshake.unregister_partner(principal=principal_of(request))
        return ocpi_response()
