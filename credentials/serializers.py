"""The OCPI objects of the versions and credentials modules, validated field by field."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ocpi_platform.ocpi.types import (
    Role,
    is_printable_ascii,
    validate_country_code,
    validate_credentials_token,
    validate_party_id,
    validate_url,
)


def _check(validator: Any, value: str) -> str:
    try:
        return str(validator(value))
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from None


class OcpiString(serializers.CharField):
    """string(n): printable text, no control characters; surrounding spaces are kept."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in data):
            raise serializers.ValidationError("must not contain control characters")
        return str(super().to_internal_value(data))


class UrlField(serializers.CharField):
    """URL: string(255) with an http(s) scheme."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        return _check(validate_url, data)


class StrictChoice(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> Any:
        if data not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise serializers.ValidationError(f"{data!r} is not one of {allowed}")
        return data


class ImageSerializer(serializers.Serializer[Any]):
    url = UrlField()
    thumbnail = UrlField(required=False, allow_null=True)
    category = StrictChoice(
        choices=["CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"]
    )
    type = OcpiString(4)
    width = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=99999)
    height = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=99999)

    def validate_type(self, value: str) -> str:
        if not is_printable_ascii(value):
            raise serializers.ValidationError("must be printable ASCII")
        return value


class BusinessDetailsSerializer(serializers.Serializer[Any]):
    name = OcpiString(100)
    website = UrlField(required=False, allow_null=True)
    logo = ImageSerializer(required=False, allow_null=True)


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

    token = OcpiString(64)
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


def strip_nulls(value: Any) -> Any:
    """OCPI output: leave optional fields out rather than sending null."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value
