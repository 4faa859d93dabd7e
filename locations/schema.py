"""Validation of the Locations module objects (spec digest locations.md §4, §5).

``validate_location``, ``validate_evse`` and ``validate_connector`` check a Location, EVSE or
Connector as received in a PUT (or, with ``partial=True``, a PATCH) and give back a plain dict
with only the keys that were present in the input. The ``last_updated`` of every Location, EVSE
and Connector becomes an aware UTC ``datetime``; the DateTimes inside sub-objects (exceptional
periods, status schedules) become normalized text. Everything else comes back as given.

Errors are raised as ``rest_framework.serializers.ValidationError`` with DRF's nested detail,
ready for ``ocpi_platform.ocpi.envelope.describe_validation_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework import serializers

from ocpi_platform.ocpi.fields import (
    IMAGE_CATEGORIES,
    PATCH_NEEDS_LAST_UPDATED,
    BusinessDetailsSerializer,
    CiString,
    DisplayTextSerializer,
    ImageSerializer,
    OcpiDateTime,
    OcpiString,
    PatternString,
    StrictBoolean,
    StrictChoice,
    StrictInt,
    StrictNumber,
    UrlField,
    validate_object,
)
from ocpi_platform.ocpi.types import parse_datetime

__all__ = [
    "CAPABILITIES",
    "CONNECTOR_FORMATS",
    "CONNECTOR_TYPES",
    "ENERGY_SOURCE_CATEGORIES",
    "ENVIRONMENTAL_IMPACT_CATEGORIES",
    "EVSE_STATUSES",
    "FACILITIES",
    "IMAGE_CATEGORIES",
    "PARKING_RESTRICTIONS",
    "PARKING_TYPES",
    "PATCH_NEEDS_LAST_UPDATED",
    "POWER_TYPES",
    "TOKEN_TYPES",
    "AdditionalGeoLocationSerializer",
    "BusinessDetailsSerializer",
    "ConnectorSerializer",
    "DisplayTextSerializer",
    "EnergyMixSerializer",
    "EnergySourceSerializer",
    "EnvironmentalImpactSerializer",
    "EvseSerializer",
    "ExceptionalPeriodSerializer",
    "GeoLocationSerializer",
    "HoursSerializer",
    "ImageSerializer",
    "LocationSerializer",
    "PublishTokenTypeSerializer",
    "RegularHoursSerializer",
    "StatusScheduleSerializer",
    "choices",
    "validate_connector",
    "validate_energy_mix",
    "validate_evse",
    "validate_hours",
    "validate_location",
]

# --- Enums (§5): case-sensitive, exactly as written --------------------------------------------

EVSE_STATUSES: tuple[str, ...] = (
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
)
CAPABILITIES: tuple[str, ...] = (
    "CHARGING_PROFILE_CAPABLE",
    "CHARGING_PREFERENCES_CAPABLE",
    "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT",
    "CREDIT_CARD_PAYABLE",
    "DEBIT_CARD_PAYABLE",
    "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE",
    "UNLOCK_CAPABLE",
)
CONNECTOR_TYPES: tuple[str, ...] = (
    "CHADEMO",
    "CHAOJI",
    *(f"DOMESTIC_{letter}" for letter in "ABCDEFGHIJKLMNO"),
    "GBT_AC",
    "GBT_DC",
    "IEC_60309_2_single_16",
    "IEC_60309_2_three_16",
    "IEC_60309_2_three_32",
    "IEC_60309_2_three_64",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN",
    "TESLA_R",
    "TESLA_S",
)
CONNECTOR_FORMATS: tuple[str, ...] = ("SOCKET", "CABLE")
POWER_TYPES: tuple[str, ...] = (
    "AC_1_PHASE",
    "AC_2_PHASE",
    "AC_2_PHASE_SPLIT",
    "AC_3_PHASE",
    "DC",
)
PARKING_TYPES: tuple[str, ...] = (
    "ALONG_MOTORWAY",
    "PARKING_GARAGE",
    "PARKING_LOT",
    "ON_DRIVEWAY",
    "ON_STREET",
    "UNDERGROUND_GARAGE",
)
PARKING_RESTRICTIONS: tuple[str, ...] = (
    "EV_ONLY",
    "PLUGGED",
    "DISABLED",
    "CUSTOMERS",
    "MOTORCYCLES",
)
FACILITIES: tuple[str, ...] = (
    "HOTEL",
    "RESTAURANT",
    "CAFE",
    "MALL",
    "SUPERMARKET",
    "SPORT",
    "RECREATION_AREA",
    "NATURE",
    "MUSEUM",
    "BIKE_SHARING",
    "BUS_STOP",
    "TAXI_STAND",
    "TRAM_STOP",
    "METRO_STATION",
    "TRAIN_STATION",
    "AIRPORT",
    "PARKING_LOT",
    "CARPOOL_PARKING",
    "FUEL_STATION",
    "WIFI",
)
ENERGY_SOURCE_CATEGORIES: tuple[str, ...] = (
    "NUCLEAR",
    "GENERAL_FOSSIL",
    "COAL",
    "GAS",
    "GENERAL_GREEN",
    "SOLAR",
    "WIND",
    "WATER",
)
ENVIRONMENTAL_IMPACT_CATEGORIES: tuple[str, ...] = ("NUCLEAR_WASTE", "CARBON_DIOXIDE")
TOKEN_TYPES: tuple[str, ...] = ("AD_HOC_USER", "APP_USER", "OTHER", "RFID")


def choices(values: Iterable[str]) -> list[tuple[str, str]]:
    """Django model field choices for one of the enums above."""
    return [(value, value) for value in values]


# --- Field helpers ------------------------------------------------------------------------------


def _enum_list(values: tuple[str, ...]) -> serializers.ListField:
    """`*` list of enum values: may be missing, null or []."""
    return serializers.ListField(
        child=StrictChoice(choices=values), required=False, allow_null=True
    )


def _unique_ci(items: list[dict[str, Any]] | None, key: str, what: str) -> None:
    """CiString ids are compared case-insensitively (transport §11.2)."""
    seen: set[str] = set()
    for item in items or ():
        folded = item[key].upper()
        if folded in seen:
            raise serializers.ValidationError(
                f"{what} {item[key]!r} appears more than once (ids are compared case-insensitively)"
            )
        seen.add(folded)


# The regexes allow one character more than string(10)/string(11) in the spec's table (a
# negative latitude with two integer digits and seven decimals is 11 characters long): we accept
# what the regex accepts, so the regex is what limits the length.
LATITUDE = r"-?[0-9]{1,2}\.[0-9]{5,7}"
LONGITUDE = r"-?[0-9]{1,3}\.[0-9]{5,7}"
HOUR_MINUTE = r"([0-1][0-9]|2[0-3]):[0-5][0-9]"


def _check_range(value: str, limit: int) -> str:
    if abs(float(value)) > limit:
        raise serializers.ValidationError(f"must be between -{limit} and {limit}")
    return value


# --- Sub-types (§4.4) ---------------------------------------------------------------------------


class GeoLocationSerializer(serializers.Serializer[Any]):
    latitude = PatternString(11, LATITUDE, "a decimal string like 51.047599")
    longitude = PatternString(12, LONGITUDE, "a decimal string like 3.729944")

    def validate_latitude(self, value: str) -> str:
        return _check_range(value, 90)

    def validate_longitude(self, value: str) -> str:
        return _check_range(value, 180)


class AdditionalGeoLocationSerializer(GeoLocationSerializer):
    name = DisplayTextSerializer(required=False, allow_null=True)


class RegularHoursSerializer(serializers.Serializer[Any]):
    weekday = StrictInt(min_value=1, max_value=7)
    period_begin = PatternString(5, HOUR_MINUTE, "a time like 08:00")
    period_end = PatternString(5, HOUR_MINUTE, "a time like 20:00")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # HH:MM with leading zeros: text order is time order.
        if attrs["period_end"] <= attrs["period_begin"]:
            raise serializers.ValidationError(
                {"period_end": [f"must be later than period_begin ({attrs['period_begin']})"]}
            )
        return attrs


class ExceptionalPeriodSerializer(serializers.Serializer[Any]):
    period_begin = OcpiDateTime(as_text=True)
    period_end = OcpiDateTime(as_text=True)


class HoursSerializer(serializers.Serializer[Any]):
    """Hours. Every spec example with ``twentyfourseven: false`` has regular hours, so the
    spec's "then at least one entry" is enforced as written."""

    twentyfourseven = StrictBoolean()
    regular_hours = RegularHoursSerializer(many=True, required=False, allow_null=True)
    exceptional_openings = ExceptionalPeriodSerializer(many=True, required=False, allow_null=True)
    exceptional_closings = ExceptionalPeriodSerializer(many=True, required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        regular = attrs.get("regular_hours")
        if attrs["twentyfourseven"] and regular:
            raise serializers.ValidationError(
                {"regular_hours": ["must be empty when twentyfourseven is true"]}
            )
        if not attrs["twentyfourseven"] and not regular:
            raise serializers.ValidationError(
                {"regular_hours": ["must have at least one entry when twentyfourseven is false"]}
            )
        return attrs


class StatusScheduleSerializer(serializers.Serializer[Any]):
    period_begin = OcpiDateTime(as_text=True)
    period_end = OcpiDateTime(as_text=True, required=False, allow_null=True)
    status = StrictChoice(choices=EVSE_STATUSES)


class EnergySourceSerializer(serializers.Serializer[Any]):
    # DRF's metaclass takes declared fields off the class, so this does not clash at runtime
    # with Field.source; only the stubs see a clash.
    source = StrictChoice(choices=ENERGY_SOURCE_CATEGORIES)  # type: ignore[assignment]
    percentage = StrictNumber(min_value=0, max_value=100)


class EnvironmentalImpactSerializer(serializers.Serializer[Any]):
    category = StrictChoice(choices=ENVIRONMENTAL_IMPACT_CATEGORIES)
    amount = StrictNumber(min_value=0)


class EnergyMixSerializer(serializers.Serializer[Any]):
    is_green_energy = StrictBoolean()
    energy_sources = EnergySourceSerializer(many=True, required=False, allow_null=True)
    environ_impact = EnvironmentalImpactSerializer(many=True, required=False, allow_null=True)
    supplier_name = OcpiString(64, required=False, allow_null=True)
    energy_product_name = OcpiString(64, required=False, allow_null=True)


class PublishTokenTypeSerializer(serializers.Serializer[Any]):
    uid = CiString(36, required=False, allow_null=True)
    type = StrictChoice(choices=TOKEN_TYPES, required=False, allow_null=True)
    visual_number = OcpiString(64, required=False, allow_null=True)
    issuer = OcpiString(64, required=False, allow_null=True)
    group_id = CiString(36, required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        def given(name: str) -> bool:
            return attrs.get(name) is not None

        if not (given("uid") or given("visual_number") or given("group_id")):
            raise serializers.ValidationError(
                "at least one of uid, visual_number or group_id must be set"
            )
        errors: dict[str, list[str]] = {}
        if given("uid") and not given("type"):
            errors["type"] = ["is required when uid is set"]
        if given("visual_number") and not given("issuer"):
            errors["issuer"] = ["is required when visual_number is set"]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- Connector, EVSE, Location (§4.1-4.3) --------------------------------------------------------


# The integer fields stored in an integer column (models.PositiveIntegerField): a larger value
# is bad input, not a database error. The others (weekday, image sizes) have smaller ranges.
INT_COLUMN_MAX = 2**31 - 1


class ColumnInt(StrictInt):
    """A non-negative JSON integer that fits the integer column it is stored in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        if value > INT_COLUMN_MAX:
            raise serializers.ValidationError(f"must be at most {INT_COLUMN_MAX}")
        return value


class ConnectorSerializer(serializers.Serializer[Any]):
    id = CiString(36)
    standard = StrictChoice(choices=CONNECTOR_TYPES)
    format = StrictChoice(choices=CONNECTOR_FORMATS)
    power_type = StrictChoice(choices=POWER_TYPES)
    max_voltage = ColumnInt()
    max_amperage = ColumnInt()
    max_electric_power = ColumnInt(required=False, allow_null=True)
    tariff_ids = serializers.ListField(child=CiString(36), required=False, allow_null=True)
    terms_and_conditions = UrlField(required=False, allow_null=True)
    last_updated = OcpiDateTime()


class EvseSerializer(serializers.Serializer[Any]):
    uid = CiString(36)
    evse_id = CiString(48, required=False, allow_null=True)
    status = StrictChoice(choices=EVSE_STATUSES)
    status_schedule = StatusScheduleSerializer(many=True, required=False, allow_null=True)
    capabilities = _enum_list(CAPABILITIES)
    connectors = ConnectorSerializer(
        many=True,
        allow_empty=False,
        error_messages={"empty": "must contain at least one connector"},
    )
    floor_level = OcpiString(4, required=False, allow_null=True)
    coordinates = GeoLocationSerializer(required=False, allow_null=True)
    physical_reference = OcpiString(16, required=False, allow_null=True)
    directions = DisplayTextSerializer(many=True, required=False, allow_null=True)
    parking_restrictions = _enum_list(PARKING_RESTRICTIONS)
    images = ImageSerializer(many=True, required=False, allow_null=True)
    last_updated = OcpiDateTime()

    def validate_connectors(self, value: list[dict[str, Any]] | None) -> Any:
        _unique_ci(value, "id", "connector id")
        return value


class LocationSerializer(serializers.Serializer[Any]):
    country_code = CiString(2)
    party_id = CiString(3)
    id = CiString(36)
    publish = StrictBoolean()
    publish_allowed_to = PublishTokenTypeSerializer(many=True, required=False, allow_null=True)
    name = OcpiString(255, required=False, allow_null=True)
    address = OcpiString(255)
    city = OcpiString(45)
    postal_code = OcpiString(10, required=False, allow_null=True)
    state = OcpiString(45, required=False, allow_null=True)
    country = OcpiString(3)
    coordinates = GeoLocationSerializer()
    related_locations = AdditionalGeoLocationSerializer(many=True, required=False, allow_null=True)
    parking_type = StrictChoice(choices=PARKING_TYPES, required=False, allow_null=True)
    evses = EvseSerializer(many=True, required=False, allow_null=True)
    directions = DisplayTextSerializer(many=True, required=False, allow_null=True)
    operator = BusinessDetailsSerializer(required=False, allow_null=True)
    suboperator = BusinessDetailsSerializer(required=False, allow_null=True)
    owner = BusinessDetailsSerializer(required=False, allow_null=True)
    facilities = _enum_list(FACILITIES)
    time_zone = OcpiString(255)
    opening_times = HoursSerializer(required=False, allow_null=True)
    # No default: a missing charging_when_closed stays missing (the spec's default is true).
    charging_when_closed = StrictBoolean(required=False, allow_null=True)
    images = ImageSerializer(many=True, required=False, allow_null=True)
    energy_mix = EnergyMixSerializer(required=False, allow_null=True)
    last_updated = OcpiDateTime()

    def validate_evses(self, value: list[dict[str, Any]] | None) -> Any:
        _unique_ci(value, "uid", "EVSE uid")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # In a PATCH without `publish` this cannot be checked against the stored value here.
        if attrs.get("publish_allowed_to") and attrs.get("publish") is True:
            raise serializers.ValidationError(
                {"publish_allowed_to": ["is only allowed when publish is false"]}
            )
        return attrs


# --- Entry points -------------------------------------------------------------------------------


def validate_location(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """A Location (PUT body, or with ``partial=True`` a PATCH body)."""
    return validate_object(LocationSerializer, data, partial=partial)


def _status_patch(data: Any) -> dict[str, Any] | None:
    """The bulk of EVSE PATCHes, ``{status, last_updated}``, checked without a serializer.

    None when the body is anything else, or not valid: the serializer then says what is wrong.
    """
    if not isinstance(data, Mapping) or set(data) != {"status", "last_updated"}:
        return None
    status, stamp = data["status"], data["last_updated"]
    if not isinstance(status, str) or status not in EVSE_STATUSES:
        return None
    try:
        return {"status": status, "last_updated": parse_datetime(stamp)}
    except ValueError:
        return None


def validate_evse(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """An EVSE (PUT body, or with ``partial=True`` a PATCH body)."""
    if partial and (quick := _status_patch(data)) is not None:
        return quick
    return validate_object(EvseSerializer, data, partial=partial)


def validate_connector(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """A Connector (PUT body, or with ``partial=True`` a PATCH body)."""
    return validate_object(ConnectorSerializer, data, partial=partial)


def validate_hours(data: Any) -> dict[str, Any]:
    """An Hours object (Location.opening_times)."""
    return validate_object(HoursSerializer, data)


def validate_energy_mix(data: Any) -> dict[str, Any]:
    """An EnergyMix object (Location.energy_mix)."""
    return validate_object(EnergyMixSerializer, data)
