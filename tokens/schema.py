"""Validation of the Tokens module objects (spec digest other-modules.md §4, mod_tokens).

``validate_token`` checks a Token as received in a PUT (or, with ``partial=True``, a PATCH) or in
a page of the sender's list; ``validate_authorization_info`` the answer to a real-time authorize
POST and ``validate_location_references`` the body of that POST. Each gives back a plain dict
with only the keys that were present in the input; a Token's ``last_updated`` becomes an aware
UTC ``datetime``, everything else comes back as given. ``render_token`` and
``render_authorization_info`` write a validated object back as OCPI JSON.

A token is keyed by (country_code, party_id, uid, type) (the URL's ``type`` defaults to RFID).
A PATCH cannot change the key: give ``key`` (the URL's) and a body may repeat it; without ``key``
a PATCH carrying any key field is refused. With ``key``, a PUT body must name the same token.

Errors are raised as ``rest_framework.serializers.ValidationError`` with DRF's nested detail,
ready for ``ocpi_platform.ocpi.envelope.describe_validation_errors``. No message repeats a
uid, contract_id or visual_number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from rest_framework import serializers

from locations.schema import TOKEN_TYPES
from ocpi_platform.ocpi.fields import (
    PATCH_NEEDS_LAST_UPDATED,
    CiString,
    DisplayTextSerializer,
    OcpiDateTime,
    OcpiString,
    StrictBoolean,
    StrictChoice,
    as_json,
    validate_object,
)
from ocpi_platform.ocpi.types import is_printable_ascii

__all__ = [
    "ALLOWED_TYPES",
    "KEY_FIELDS",
    "PATCH_NEEDS_LAST_UPDATED",
    "PROFILE_TYPES",
    "TOKEN_TYPES",
    "WHITELIST_TYPES",
    "AuthorizationInfoSerializer",
    "EnergyContractSerializer",
    "LocationReferencesSerializer",
    "TokenKey",
    "TokenSerializer",
    "render_authorization_info",
    "render_token",
    "validate_authorization_info",
    "validate_location_references",
    "validate_token",
]

# --- Enums (mod_tokens and mod_sessions data types): case-sensitive, exactly as written ---------

WHITELIST_TYPES: tuple[str, ...] = ("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")
ALLOWED_TYPES: tuple[str, ...] = ("ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED")
PROFILE_TYPES: tuple[str, ...] = ("CHEAP", "FAST", "GREEN", "REGULAR")

KEY_FIELDS: tuple[str, ...] = ("country_code", "party_id", "uid", "type")
PATCH_KEEPS_KEY = (
    "cannot be changed by a PATCH (a token is keyed by country_code, party_id, uid and type)"
)


class TokenKey(NamedTuple):
    """The token a URL names: ``/{country_code}/{party_id}/{uid}[?type=...]``."""

    country_code: str
    party_id: str
    uid: str
    type: str = "RFID"

    def matches(self, name: str, value: str) -> bool:
        """CiStrings compare case-insensitively (transport §11.2); the enum exactly."""
        expected: str = getattr(self, name)
        return value == expected if name == "type" else value.upper() == expected.upper()


# --- Sub-types ----------------------------------------------------------------------------------


class EnergyContractSerializer(serializers.Serializer[Any]):
    supplier_name = OcpiString(64)
    contract_id = OcpiString(64, required=False, allow_null=True)


class LocationReferencesSerializer(serializers.Serializer[Any]):
    """2.2.1 dropped ``connector_ids``; a 2.2 body that still has it passes (unknown keys go)."""

    location_id = CiString(36)
    evse_uids = serializers.ListField(child=CiString(36), required=False, allow_null=True)


# --- Token, AuthorizationInfo -------------------------------------------------------------------


class TokenSerializer(serializers.Serializer[Any]):
    country_code = CiString(2)
    party_id = CiString(3)
    uid = CiString(36)
    type = StrictChoice(choices=TOKEN_TYPES)
    contract_id = CiString(36)
    visual_number = OcpiString(64, required=False, allow_null=True)
    issuer = OcpiString(64)
    # OCPP 1.5/1.6 charge points take at most 20 characters; the spec allows 36.
    group_id = CiString(36, required=False, allow_null=True)
    valid = StrictBoolean()
    whitelist = StrictChoice(choices=WHITELIST_TYPES)
    language = OcpiString(2, required=False, allow_null=True)
    default_profile_type = StrictChoice(choices=PROFILE_TYPES, required=False, allow_null=True)
    energy_contract = EnergyContractSerializer(required=False, allow_null=True)
    last_updated = OcpiDateTime()


class AuthorizationInfoSerializer(serializers.Serializer[Any]):
    allowed = StrictChoice(choices=ALLOWED_TYPES)
    token = TokenSerializer()
    location = LocationReferencesSerializer(required=False, allow_null=True)
    authorization_reference = CiString(36, required=False, allow_null=True)
    info = DisplayTextSerializer(required=False, allow_null=True)


# --- Entry points -------------------------------------------------------------------------------


def _check_key(token: Mapping[str, Any], key: TokenKey | None, *, partial: bool) -> None:
    errors: dict[str, list[str]] = {}
    for name in KEY_FIELDS:
        if name not in token:
            continue
        if key is None:
            if partial:
                errors[name] = [PATCH_KEEPS_KEY]
        elif not key.matches(name, token[name]):
            errors[name] = [
                f"does not match the {name} in the URL"
                + (f"; it {PATCH_KEEPS_KEY}" if partial else "")
            ]
    if errors:
        raise serializers.ValidationError(errors)


def validate_token(
    data: Any, *, partial: bool = False, key: TokenKey | None = None
) -> dict[str, Any]:
    """A Token (PUT body, or with ``partial=True`` a PATCH body).

    ``key``: the token the URL names. A PATCH may repeat it but not change it (without ``key``
    it may not carry any key field); a PUT body must name it.
    """
    result = validate_object(TokenSerializer, data, partial=partial)
    _check_key(result, key, partial=partial)
    return result


def _plain_ci(value: Any, max_length: int) -> bool:
    """A CiString(n) that needs no checks beyond this: printable ASCII, 1..n characters."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and is_printable_ascii(value, allow_space=True)
    )


def validate_location_references(data: Any) -> dict[str, Any]:
    """LocationReferences: the (optional) body of a real-time authorize POST.

    The authorize endpoint is on the real-time path: a body that plainly passes (the common
    case) is answered without DRF, with exactly what the serializer would give; anything
    else goes through the serializer, which names what is wrong."""
    if isinstance(data, dict) and _plain_ci(data.get("location_id"), 36):
        evse_uids = data.get("evse_uids", ())
        if evse_uids is None or (
            isinstance(evse_uids, list) and all(_plain_ci(uid, 36) for uid in evse_uids)
        ):
            result: dict[str, Any] = {"location_id": data["location_id"]}
            if "evse_uids" in data:
                result["evse_uids"] = None if evse_uids is None else list(evse_uids)
            return result
    return validate_object(LocationReferencesSerializer, data)


def validate_authorization_info(data: Any) -> dict[str, Any]:
    """AuthorizationInfo: the eMSP's answer to a real-time authorize POST."""
    return validate_object(AuthorizationInfoSerializer, data)


def render_token(token: Mapping[str, Any]) -> dict[str, Any]:
    """A validated Token as OCPI JSON: ``last_updated`` as ``format_datetime`` writes it, absent
    or null optional fields left out. Keys keep their order (validation gives the spec's)."""
    result: dict[str, Any] = as_json(token)
    return result


def render_authorization_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A validated AuthorizationInfo as OCPI JSON (its token as ``render_token`` writes it)."""
    result: dict[str, Any] = as_json(info)
    return result
