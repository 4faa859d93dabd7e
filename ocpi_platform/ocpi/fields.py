"""DRF fields for the OCPI data types (transport §11) and the shared Image, BusinessDetails,
DisplayText objects.

Every field is strict about JSON types: an int must be a JSON integer (not "220", not true, not
220.5), a boolean a JSON boolean, a number a JSON number. Values come back as given (strings are
neither stripped nor re-cased). Messages name the rule in plain words.
"""

from __future__ import annotations

import json
import math
import re
import threading
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core import validators
from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from .envelope import describe_validation_errors
from .errors import InvalidParameters
from .types import format_datetime, is_printable_ascii, parse_datetime, validate_url

IMAGE_CATEGORIES: tuple[str, ...] = (
    "CHARGER",
    "ENTRANCE",
    "LOCATION",
    "NETWORK",
    "OPERATOR",
    "OTHER",
    "OWNER",
)


def shown(value: Any, limit: int = 40) -> str:
    """A value as it appeared in JSON, shortened for an error message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_kind(value: Any) -> str:
    """The JSON type of a value, for messages that must not echo the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list | tuple) else "an object"


def check_value(validator: Any, value: str) -> str:
    """Run a ``ValueError``-raising validator; its message becomes the field's error."""
    try:
        return str(validator(value))
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from None


def _range_error(
    value: float, min_value: float | None, max_value: float | None
) -> serializers.ValidationError | None:
    if min_value is not None and max_value is not None:
        if not min_value <= value <= max_value:
            return serializers.ValidationError(f"must be between {min_value} and {max_value}")
    elif min_value is not None and value < min_value:
        return serializers.ValidationError(f"must be at least {min_value}")
    elif max_value is not None and value > max_value:
        return serializers.ValidationError(f"must be at most {max_value}")
    return None


class OcpiString(serializers.CharField):
    """string(n): printable text, no control characters; surrounding spaces are kept."""

    default_error_messages = {"max_length": "must be at most {max_length} characters"}

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError(f"must be a string, not {json_kind(data)}")
        if any(unicodedata.category(ch) == "Cc" for ch in data):
            raise serializers.ValidationError(
                "must not contain control characters (CR, LF, TAB, ...)"
            )
        return str(super().to_internal_value(data))


class CiString(OcpiString):
    """CiString(n): printable ASCII (spaces allowed), not empty, at most n characters."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not is_printable_ascii(value, allow_space=True):
            raise serializers.ValidationError("must contain only printable ASCII characters")
        return value


class PatternString(OcpiString):
    """A string that must match ``pattern`` in full; ``description`` says what is expected."""

    def __init__(self, max_length: int, pattern: str, description: str, **kwargs: Any) -> None:
        super().__init__(max_length, **kwargs)
        self.pattern = re.compile(pattern)
        self.description = description

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not self.pattern.fullmatch(value):
            raise serializers.ValidationError(
                f"must be {self.description} (regex {self.pattern.pattern}), got {shown(value)}"
            )
        return value


class UrlField(serializers.CharField):
    """URL: string(255) with an http(s) scheme."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError(f"must be a string, not {json_kind(data)}")
        return check_value(validate_url, data)


class StrictChoice(serializers.ChoiceField):
    """An enum value: case-sensitive, exactly as listed."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or data not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise serializers.ValidationError(f"{data!r} is not one of {allowed}")
        return data


class _JsonValue(serializers.Field[Any, Any, Any, Any]):
    def to_representation(self, value: Any) -> Any:
        return value


class StrictInt(_JsonValue):
    """int: a JSON integer (not a string, boolean or fraction), optionally range-checked."""

    def __init__(
        self, *, min_value: int | None = None, max_value: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.min_value, self.max_value = min_value, max_value

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError(f"must be a JSON integer, got {shown(data)}")
        error = _range_error(data, self.min_value, self.max_value)
        if error:
            raise error
        return data


class StrictNumber(_JsonValue):
    """number: a finite JSON number (integer or fraction), returned as given."""

    def __init__(
        self, *, min_value: float | None = None, max_value: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.min_value, self.max_value = min_value, max_value

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
            raise serializers.ValidationError(f"must be a JSON number, got {shown(data)}")
        error = _range_error(data, self.min_value, self.max_value)
        if error:
            raise error
        return data


class StrictBoolean(_JsonValue):
    """boolean: JSON true or false (not "true", not 1)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"must be true or false, got {shown(data)}")
        return data


class OcpiDateTime(_JsonValue):
    """DateTime, parsed leniently (types.parse_datetime).

    Gives an aware UTC ``datetime``, or with ``as_text=True`` the normalized text
    (``YYYY-MM-DDTHH:MM:SS[.mmm]Z``) for values kept inside JSON sub-objects.
    """

    def __init__(self, *, as_text: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.as_text = as_text

    def to_internal_value(self, data: Any) -> datetime | str:
        try:
            value = parse_datetime(data)
        except ValueError:
            raise serializers.ValidationError(
                f"must be a DateTime like 2015-06-29T20:39:09Z, got {shown(data)}"
            ) from None
        return format_datetime(value) if self.as_text else value


class ImageSerializer(serializers.Serializer[Any]):
    url = UrlField()
    thumbnail = UrlField(required=False, allow_null=True)
    category = StrictChoice(choices=IMAGE_CATEGORIES)
    type = CiString(4)
    width = StrictInt(min_value=0, max_value=99999, required=False, allow_null=True)
    height = StrictInt(min_value=0, max_value=99999, required=False, allow_null=True)


class BusinessDetailsSerializer(serializers.Serializer[Any]):
    name = OcpiString(100)
    website = UrlField(required=False, allow_null=True)
    logo = ImageSerializer(required=False, allow_null=True)


class DisplayTextSerializer(serializers.Serializer[Any]):
    language = OcpiString(2)
    text = OcpiString(512)


def strip_nulls(value: Any) -> Any:
    """OCPI output: leave optional fields out rather than sending null."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


_PLAIN_VALIDATORS = (
    validators.MaxLengthValidator,
    ProhibitNullCharactersValidator,
    ProhibitSurrogateCharactersValidator,
)


def _plainly_valid(rule: serializers.Field[Any, Any, Any, Any], value: str) -> bool:
    """What almost every id in a URL is, decided without DRF's validation machinery: a
    CiString of printable ASCII within its length (no control character, NUL or surrogate can
    be in it), or an enum value exactly as listed. Anything else (and every other kind of rule)
    takes the rule's own validation, and its message."""
    kind = type(rule)
    if kind is StrictChoice:
        return value in rule.choices  # type: ignore[attr-defined]
    if kind is not CiString or not isinstance(value, str):
        return False
    if rule.min_length is not None or rule.max_length is None:  # type: ignore[attr-defined]
        return False
    if not all(isinstance(v, _PLAIN_VALIDATORS) for v in rule.validators):
        return False
    return 0 < len(value) <= rule.max_length and is_printable_ascii(value, allow_space=True)  # type: ignore[attr-defined]


def check_url_ids(
    ids: Mapping[str, str | None], rules: Mapping[str, serializers.Field[Any, Any, Any, Any]]
) -> None:
    """Ids taken from a URL follow the rules of the same ids in a body (``rules``: the body's
    fields by URL parameter name): 2001 naming the parameter otherwise (a NUL, a control
    character, too long, not ASCII...)."""
    for name, value in ids.items():
        rule = rules.get(name)
        if value is None or rule is None or _plainly_valid(rule, value):
            continue
        try:
            rule.run_validation(value)
        except serializers.ValidationError as exc:
            why = "; ".join(describe_validation_errors(exc.detail))
            raise InvalidParameters(f"The {name} in the URL is not valid: {why}.") from None


# --- Validating and rendering a module's objects ------------------------------------------------

PATCH_NEEDS_LAST_UPDATED = "This field is required; every PATCH must carry it."


def plain(value: Any) -> Any:
    """Plain dicts and lists all the way down (no OrderedDict/ReturnDict)."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def validate_object(
    serializer_class: type[serializers.Serializer[Any]], data: Any, *, partial: bool = False
) -> dict[str, Any]:
    """Validate one OCPI object (a PUT body, or with ``partial`` a PATCH body) and give back a
    plain dict of what was present. Errors: DRF's ValidationError with the nested detail."""
    if not isinstance(data, Mapping):
        raise serializers.ValidationError(
            {"non_field_errors": [f"expected a JSON object, got {json_kind(data)}"]}
        )
    serializer = _validator(serializer_class, partial)
    # What is_valid() does, on a serializer made once: run_validation raises the same detail.
    validated = serializer.run_validation(data)
    result: dict[str, Any] = plain(validated)
    return result


_validators = threading.local()


def _validator(
    serializer_class: type[serializers.Serializer[Any]], partial: bool
) -> serializers.Serializer[Any]:
    """One serializer per class, kind and thread, reused: DRF deep-copies every declared field,
    nested ones included, for each new serializer (for a location with its EVSEs and connectors
    that was most of the validation's time). Validation keeps no state in it."""
    made: dict[tuple[type[Any], bool], serializers.Serializer[Any]] | None = getattr(
        _validators, "made", None
    )
    if made is None:
        made = _validators.made = {}
    serializer = made.get((serializer_class, partial))
    if serializer is None:
        serializer = serializer_class()
        if partial:
            # Not DRF's partial=True: that would also let nested objects go incomplete. Only
            # the top-level fields become optional; each present one is validated in full.
            for name, field in serializer.fields.items():
                field.required = name == "last_updated"
            serializer.fields["last_updated"].error_messages["required"] = PATCH_NEEDS_LAST_UPDATED
        made[(serializer_class, partial)] = serializer
    return serializer


def as_json(value: Any) -> Any:
    """A validated object back as OCPI JSON values: DateTimes as ``format_datetime`` writes
    them, nulls (absent optional fields) left out, key order kept."""

    def convert(item: Any) -> Any:
        if isinstance(item, datetime):
            return format_datetime(item)
        if isinstance(item, Mapping):
            return {key: convert(sub) for key, sub in item.items()}
        if isinstance(item, list | tuple):
            return [convert(sub) for sub in item]
        return item

    return strip_nulls(convert(value))


def segments_as_sent(raw_uri: str | None, path: str, after: str) -> list[str] | None:
    """The segments following ``after`` in the request target as the client sent it (the WSGI
    server's ``RAW_URI``, which gunicorn gives), each decoded on its own.

    The path the application gets is decoded as a whole, so an id's encoded '/' (``%2F``) reads
    as a separator there; the raw target tells them apart. None: no raw target, or it does not
    spell ``path`` (a proxy rewrote it), or it lacks ``after``.
    """
    if not raw_uri:
        return None
    raw_path = urlsplit(raw_uri).path
    start = raw_path.find(after)
    if start < 0 or unquote(raw_path) != path:
        return None
    rest = raw_path[start + len(after) :]
    return [unquote(part) for part in rest.removesuffix("/").split("/")]
