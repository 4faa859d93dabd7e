"""Validation of the Tariffs module objects (spec digest other-modules.md §3, mod_tariffs).

``validate_tariff`` checks a Tariff as received in a PUT (the module has no PATCH) or in a
page of the sender's list, and gives back a plain dict with only the keys that were present in
the input. ``last_updated``, ``start_date_time`` and ``end_date_time`` become aware UTC
``datetime``s; everything else (numbers, strings, the restriction times and dates) comes back as
given. ``render_tariff`` writes a validated Tariff back as OCPI JSON.

Errors are raised as ``rest_framework.serializers.ValidationError`` with DRF's nested detail,
ready for ``ocpi_platform.ocpi.envelope.describe_validation_errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from rest_framework import serializers

from locations.schema import HOUR_MINUTE, EnergyMixSerializer
from ocpi_platform.ocpi.fields import (
    CiString,
    DisplayTextSerializer,
    OcpiDateTime,
    PatternString,
    StrictChoice,
    StrictInt,
    StrictNumber,
    UrlField,
    as_json,
    validate_object,
)
from ocpi_platform.ocpi.types import format_datetime

__all__ = [
    "DAYS_OF_WEEK",
    "INT32_MAX",
    "RESERVATION_DIMENSIONS",
    "RESERVATION_RESTRICTION_TYPES",
    "TARIFF_DIMENSION_TYPES",
    "TARIFF_TYPES",
    "PriceComponentSerializer",
    "PriceSerializer",
    "TariffElementSerializer",
    "TariffRestrictionsSerializer",
    "TariffSerializer",
    "render_tariff",
    "validate_tariff",
]

# --- Enums (mod_tariffs data types): case-sensitive, exactly as written -------------------------

TARIFF_DIMENSION_TYPES: tuple[str, ...] = ("ENERGY", "FLAT", "PARKING_TIME", "TIME")
TARIFF_TYPES: tuple[str, ...] = (
    "AD_HOC_PAYMENT",
    "PROFILE_CHEAP",
    "PROFILE_FAST",
    "PROFILE_GREEN",
    "REGULAR",
)
DAYS_OF_WEEK: tuple[str, ...] = (
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
)
RESERVATION_RESTRICTION_TYPES: tuple[str, ...] = ("RESERVATION", "RESERVATION_EXPIRES")
# "A reservation can only have FLAT and TIME TariffDimensions" (TariffRestrictions.reservation).
RESERVATION_DIMENSIONS: tuple[str, ...] = ("FLAT", "TIME")

# `int` in the spec has no range; what a partner's int column (32-bit signed) can hold.
INT32_MAX = 2**31 - 1

# The spec's regex for start_date/end_date; the calendar check follows (no 2019-02-30).
DATE = r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
# ISO 4217 alphabetic codes are three capital letters.
CURRENCY = r"[A-Z]{3}"


# --- Field helpers ------------------------------------------------------------------------------


def _amount(**kwargs: Any) -> StrictNumber:
    """A price, VAT-less or not, or a restriction's kWh/A/kW: a JSON number, never negative."""
    return StrictNumber(min_value=0, **kwargs)


def _optional_amount() -> StrictNumber:
    return _amount(required=False, allow_null=True)


def _seconds() -> StrictInt:
    return StrictInt(min_value=0, max_value=INT32_MAX, required=False, allow_null=True)


class LocalDate(PatternString):
    """string(10) ``YYYY-MM-DD`` (the spec's regex) that is also a real calendar date."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(10, DATE, "a date like 2015-12-24", **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            date.fromisoformat(value)
        except ValueError:
            raise serializers.ValidationError(f"{value} is not a date in the calendar") from None
        return value


def _check_ranges(attrs: Mapping[str, Any], pairs: tuple[tuple[str, str], ...]) -> None:
    """``max_*``/``end_*`` is exclusive, ``min_*``/``start_*`` inclusive: an element whose range
    is empty could never apply, so it is refused rather than stored."""
    errors: dict[str, list[str]] = {}
    for low, high in pairs:
        given = attrs.get(low) is not None and attrs.get(high) is not None
        if given and attrs[high] <= attrs[low]:
            word = "later" if low.startswith("start") else "greater"
            errors[high] = [f"must be {word} than {low} ({attrs[low]})"]
    if errors:
        raise serializers.ValidationError(errors)


# --- Sub-types ----------------------------------------------------------------------------------


class PriceSerializer(serializers.Serializer[Any]):
    excl_vat = _amount()
    incl_vat = _optional_amount()


class PriceComponentSerializer(serializers.Serializer[Any]):
    type = StrictChoice(choices=TARIFF_DIMENSION_TYPES)
    price = _amount()
    # A percentage; absent (no VAT applicable) is not the same as 0.
    vat = StrictNumber(min_value=0, max_value=100, required=False, allow_null=True)
    # tariff_5_free_of_charge.json has step_size 0 (a FLAT component has no step unit).
    step_size = StrictInt(min_value=0, max_value=INT32_MAX)


class TariffRestrictionsSerializer(serializers.Serializer[Any]):
    """All restrictions are optional. ``end_time`` earlier than ``start_time`` wraps past
    midnight and ``00:00`` is the end of the day, so the two times are not compared."""

    start_time = PatternString(5, HOUR_MINUTE, "a time like 13:30", required=False, allow_null=True)
    end_time = PatternString(5, HOUR_MINUTE, "a time like 19:45", required=False, allow_null=True)
    start_date = LocalDate(required=False, allow_null=True)
    end_date = LocalDate(required=False, allow_null=True)
    min_kwh = _optional_amount()
    max_kwh = _optional_amount()
    min_current = _optional_amount()
    max_current = _optional_amount()
    min_power = _optional_amount()
    max_power = _optional_amount()
    min_duration = _seconds()
    max_duration = _seconds()
    day_of_week = serializers.ListField(
        child=StrictChoice(choices=DAYS_OF_WEEK), required=False, allow_null=True
    )
    reservation = StrictChoice(
        choices=RESERVATION_RESTRICTION_TYPES, required=False, allow_null=True
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # YYYY-MM-DD (checked above): text order is date order.
        _check_ranges(
            attrs,
            (
                ("start_date", "end_date"),
                ("min_kwh", "max_kwh"),
                ("min_current", "max_current"),
                ("min_power", "max_power"),
                ("min_duration", "max_duration"),
            ),
        )
        return attrs


class TariffElementSerializer(serializers.Serializer[Any]):
    price_components = PriceComponentSerializer(
        many=True,
        allow_empty=False,
        error_messages={"empty": "must contain at least one price component"},
    )
    restrictions = TariffRestrictionsSerializer(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        restrictions = attrs.get("restrictions") or {}
        if restrictions.get("reservation") is None:
            return attrs
        # Keyed by the component's index, as DRF reports errors inside a list.
        wrong: dict[str, Any] = {
            str(index): {
                "type": ["must be FLAT or TIME in an element with a reservation restriction"]
            }
            for index, component in enumerate(attrs["price_components"])
            if component["type"] not in RESERVATION_DIMENSIONS
        }
        if wrong:
            raise serializers.ValidationError({"price_components": wrong})
        return attrs


# --- Tariff -------------------------------------------------------------------------------------


class TariffSerializer(serializers.Serializer[Any]):
    country_code = CiString(2)
    party_id = CiString(3)
    id = CiString(36)
    currency = PatternString(3, CURRENCY, "an ISO 4217 currency code like EUR")
    type = StrictChoice(choices=TARIFF_TYPES, required=False, allow_null=True)
    tariff_alt_text = DisplayTextSerializer(many=True, required=False, allow_null=True)
    tariff_alt_url = UrlField(required=False, allow_null=True)
    min_price = PriceSerializer(required=False, allow_null=True)
    max_price = PriceSerializer(required=False, allow_null=True)
    elements = TariffElementSerializer(
        many=True,
        allow_empty=False,
        error_messages={"empty": "must contain at least one element"},
    )
    start_date_time = OcpiDateTime(required=False, allow_null=True)
    end_date_time = OcpiDateTime(required=False, allow_null=True)
    energy_mix = EnergyMixSerializer(required=False, allow_null=True)
    last_updated = OcpiDateTime()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        start, end = attrs.get("start_date_time"), attrs.get("end_date_time")
        if start is not None and end is not None and end <= start:
            errors["end_date_time"] = [
                f"must be later than start_date_time ({format_datetime(start)})"
            ]
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low and high:
            # Both rules apply separately (excl. and incl. VAT), so each pair is compared.
            price_errors = {
                part: [f"must not be less than min_price.{part} ({low[part]})"]
                for part in ("excl_vat", "incl_vat")
                if low.get(part) is not None
                and high.get(part) is not None
                and high[part] < low[part]
            }
            if price_errors:
                errors["max_price"] = price_errors
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- Entry points -------------------------------------------------------------------------------


def validate_tariff(data: Any) -> dict[str, Any]:
    """A Tariff (PUT body, or one object of the sender's list)."""
    return validate_object(TariffSerializer, data)


def render_tariff(tariff: Mapping[str, Any]) -> dict[str, Any]:
    """A validated Tariff as OCPI JSON: DateTimes as ``format_datetime`` writes them, absent or
    null optional fields left out. Keys keep their order (validation gives the spec's)."""
    result: dict[str, Any] = as_json(tariff)
    return result
