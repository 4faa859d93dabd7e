"""The OCPI objects of the versions and credentials modules, validated field by field."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ocpi_platform.ocpi.fields import BusinessDetailsSerializer as BusinessDetailsSerializer
from ocpi_platform.ocpi.fields import ImageSerializer as ImageSerializer
from ocpi_platform.ocpi.fields import OcpiString as OcpiString
from ocpi_platform.ocpi.fields import StrictChoice as StrictChoice
from ocpi_platform.ocpi.fields import UrlField as UrlField
from ocpi_platform.ocpi.fields import check_value as _check
from ocpi_platform.ocpi.fields import strip_nulls as strip_nulls
from ocpi_platform.ocpi.types import (
    Role,
    validate_country_code,
    validate_credentials_token,
    validate_party_id,
)

# The generic OCPI fields (OcpiString, UrlField, StrictChoice, ImageSerializer,
# BusinessDetailsSerializer, strip_nulls) live in ocpi_platform/ocpi/fields.py; they are
# re-exported here for existing importers.


class CredentialsRoleSerializer(serializers.Serializer[Any]):
    role = StrictChoice(choices=[r.value for r in Role])
    business_details = BusinessDetailsSerializer()
    party_id = OcpiString(3)
    country_code = OcpiString(2)

    def validate_party_id(self, value: str) -> str:
        return _check(validate_party_id, value)

    def validate_country_code(self, value: str) -> str:
        return _check(validate_country_code, value)


class CredentialsSerializer(serializers.Serializer[Any]):
    """Spec credentials › Credentials object."""

    # DRF's wording for the length error is kept here: partners and tests match on it.
    token = OcpiString(
        64,
        error_messages={
            "max_length": "Ensure this field has no more than {max_length} characters."
        },
    )
    url = UrlField()
    roles = CredentialsRoleSerializer(many=True, allow_empty=False)

    def validate_token(self, value: str) -> str:
        # The message names the rule, never the value.
        return _check(validate_credentials_token, value)

    def validate_roles(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[tuple[str, str, str]] = set()
        for item in value:
            key = (item["country_code"], item["party_id"], item["role"])
            if key in seen:
                raise serializers.ValidationError(
                    f"{key[0]}/{key[1]} {key[2]} is listed twice; each "
                    "(role, party_id, country_code) must be unique"
                )
            seen.add(key)
        return value


# --- a partner's answer: leniency for optional parts -------------------------------------------

# BusinessDetails fields a registration does not need; an invalid one is left out of an answer.
OPTIONAL_BUSINESS_FIELDS: tuple[str, ...] = ("website", "logo")
# Image fields a logo does without; an invalid one is left out, the logo kept.
OPTIONAL_IMAGE_FIELDS: tuple[str, ...] = ("thumbnail", "width", "height")


def _errors_of(field: serializers.Field[Any, Any, Any, Any], value: Any) -> list[str] | None:
    try:
        field.run_validation(value)
    except serializers.ValidationError as exc:
        return _flatten(exc.detail)
    return None


def _flatten(detail: Any, path: str = "") -> list[str]:
    from ocpi_platform.ocpi.envelope import describe_validation_errors

    return describe_validation_errors(detail, path)


def _clean_logo(logo: Any, path: str, dropped: list[str]) -> Any:
    """The logo without its invalid optional parts; None when what it needs is invalid."""
    if logo is None:
        return None
    serializer = ImageSerializer(data=logo)
    if serializer.is_valid():
        return logo
    bad = set(serializer.errors) if isinstance(serializer.errors, dict) else {"logo"}
    if isinstance(logo, dict) and bad <= set(OPTIONAL_IMAGE_FIELDS):
        for name in sorted(bad):
            dropped.append(
                f"{path}.{name} left out: " + "; ".join(_flatten(serializer.errors[name]))
            )
        return {k: v for k, v in logo.items() if k not in bad}
    dropped.append(f"{path} left out: " + "; ".join(_flatten(serializer.errors)))
    return None


def drop_invalid_optional(data: Any) -> tuple[Any, list[str]]:
    """A partner's Credentials object without its invalid optional business details.

    Returns the cleaned copy and one line per part left out (``roles[0].business_details.logo
    left out: url: ...``). Required fields are not touched: the caller's validation still
    refuses them. ``data`` itself is not changed.
    """
    if not isinstance(data, dict) or not isinstance(data.get("roles"), list):
        return data, []
    dropped: list[str] = []
    roles: list[Any] = []
    for index, role in enumerate(data["roles"]):
        details = role.get("business_details") if isinstance(role, dict) else None
        if not isinstance(details, dict):
            roles.append(role)
            continue
        path = f"roles[{index}].business_details"
        cleaned = dict(details)
        website = cleaned.get("website")
        if website is not None:
            errors = _errors_of(UrlField(), website)
            if errors:
                dropped.append(f"{path}.website left out: " + "; ".join(errors))
                del cleaned["website"]
        if "logo" in cleaned:
            logo = _clean_logo(cleaned["logo"], f"{path}.logo", dropped)
            if logo is None:
                del cleaned["logo"]
            else:
                cleaned["logo"] = logo
        roles.append({**role, "business_details": cleaned})
    return {**data, "roles": roles}, dropped
