"""Errors that the exception handler turns into an OCPI envelope.

Each carries the HTTP status and the OCPI status_code it is answered with. Messages are shown to
partners: they say what is wrong and never contain a token value.
"""

from __future__ import annotations

from .status import OcpiStatus


class OcpiError(Exception):
    http_status: int = 200
    ocpi_status: OcpiStatus = OcpiStatus.CLIENT_ERROR
    default_message = "Client error."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidParameters(OcpiError):
    ocpi_status = OcpiStatus.INVALID_PARAMETERS
    default_message = "Invalid or missing parameters."


class NotEnoughInformation(OcpiError):
    ocpi_status = OcpiStatus.NOT_ENOUGH_INFORMATION
    default_message = "Not enough information."


class UnknownLocation(OcpiError):
    ocpi_status = OcpiStatus.UNKNOWN_LOCATION
    default_message = "Unknown location."


class UnknownToken(OcpiError):
    ocpi_status = OcpiStatus.UNKNOWN_TOKEN
    default_message = "Unknown token."


class NotFound(OcpiError):
    http_status = 404
    ocpi_status = OcpiStatus.CLIENT_ERROR
    default_message = "Not found."


class UnknownObject(OcpiError):
    """A client owned object the URL names does not exist (spec transport › PATCH advice)."""

    http_status = 404
    ocpi_status = OcpiStatus.INVALID_PARAMETERS
    default_message = "Unknown object."


class LocationNotFound(OcpiError):
    """The location an EVSE or connector belongs to does not exist: nothing is stored."""

    http_status = 404
    ocpi_status = OcpiStatus.UNKNOWN_LOCATION
    default_message = "Unknown location."


class Unauthorized(OcpiError):
    http_status = 401
    ocpi_status = OcpiStatus.CLIENT_ERROR
    default_message = "Missing or unknown credentials token."


class Forbidden(OcpiError):
    """A valid token, but this partner may not use the endpoint (e.g. a non-hub on a hub's)."""

    http_status = 403
    ocpi_status = OcpiStatus.CLIENT_ERROR
    default_message = "Not allowed for this partner."


class MethodNotAllowed(OcpiError):
    http_status = 405
    ocpi_status = OcpiStatus.CLIENT_ERROR
    default_message = "Method not allowed."


class MalformedJson(OcpiError):
    http_status = 400
    ocpi_status = OcpiStatus.INVALID_PARAMETERS
    default_message = "The request body is not valid JSON."


class BadRequest(OcpiError):
    """2000 with HTTP 400: the HTTP request itself is unusable (a bad Host or Content-Length)."""

    http_status = 400
    ocpi_status = OcpiStatus.CLIENT_ERROR
    default_message = "Bad request."


class BadRoutingHeaders(OcpiError):
    """2001 with HTTP 400: OCPI-from-* do not name one of the caller's parties."""

    http_status = 400
    ocpi_status = OcpiStatus.INVALID_PARAMETERS
    default_message = "Invalid routing headers."


class BodyTooLarge(OcpiError):
    http_status = 413
    ocpi_status = OcpiStatus.CLIENT_ERROR
    default_message = "The request body is too large."

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            from django.conf import settings

            message = (
                f"The request body is larger than {settings.OCPI_MAX_BODY_BYTES} bytes, the "
                "most this platform accepts."
            )
        super().__init__(message)


class ServerError(OcpiError):
    ocpi_status = OcpiStatus.SERVER_ERROR
    default_message = "Internal server error."


class PartnerApiUnusable(OcpiError):
    """3001: we could not use the client's API (versions or version details)."""

    ocpi_status = OcpiStatus.UNABLE_TO_USE_CLIENT_API
    default_message = "Unable to use the client's API."


class UnsupportedVersion(OcpiError):
    ocpi_status = OcpiStatus.UNSUPPORTED_VERSION
    default_message = "Unsupported version."


class NoMutualEndpoints(OcpiError):
    ocpi_status = OcpiStatus.NO_MATCHING_ENDPOINTS
    default_message = "No matching endpoints, or expected endpoints missing."


class HubError(OcpiError):
    ocpi_status = OcpiStatus.HUB_ERROR
    default_message = "Hub error."


class UnknownReceiver(HubError):
    ocpi_status = OcpiStatus.UNKNOWN_RECEIVER
    default_message = "Unknown receiver."


class ForwardTimeout(HubError):
    ocpi_status = OcpiStatus.TIMEOUT_ON_FORWARDED_REQUEST
    default_message = "Timeout on forwarded request."


class ConnectionProblem(HubError):
    ocpi_status = OcpiStatus.CONNECTION_PROBLEM
    default_message = "Connection problem: the receiving party is not connected."
