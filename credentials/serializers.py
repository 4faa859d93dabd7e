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
