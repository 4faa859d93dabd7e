"""OCPI data types: DateTime, CiString, credentials tokens, URLs, Role."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]00:?00)?$"
)
# fullmatch: "$" would also match before a trailing newline ("abc\n" is not printable).
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_PRINTABLE_ASCII_WITH_SPACE = re.compile(r"[\x20-\x7e]*")

TOKEN_MAX_LENGTH = 64
URL_MAX_LENGTH = 255


class Role(StrEnum):
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


def format_datetime(value: datetime) -> str:
    """UTC, 'Z', at most millisecond precision: the form every OCPI peer accepts."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    millis = value.microsecond // 1000  # what is sent: a stamp reads the same on both sides
    if millis:
        text += f".{millis:03d}"
    return text + "Z"


def parse_datetime(text: str) -> datetime:
    """Parse leniently: with or without 'Z', 0-9 fractional digits; no designator means UTC."""
    match = _DATETIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not an OCPI DateTime (e.g. 2015-06-29T20:39:09Z): {text!r}")
    year, month, day, hour, minute, second, fraction, _zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def is_printable_ascii(value: str, *, allow_space: bool = False) -> bool:
    pattern = _PRINTABLE_ASCII_WITH_SPACE if allow_space else _PRINTABLE_ASCII
    return pattern.fullmatch(value) is not None


def validate_credentials_token(value: str) -> str:
    """Spec credentials: string(64), printable non-whitespace ASCII (U+0021..U+007E)."""
    if not value:
        raise ValueError("must not be empty")
    if len(value) > TOKEN_MAX_LENGTH:
        raise ValueError(f"must be at most {TOKEN_MAX_LENGTH} characters")
    if not is_printable_ascii(value):
        raise ValueError("must contain only printable ASCII characters without spaces")
    return value


_url_validator = URLValidator(schemes=["http", "https"])


def validate_url(value: str) -> str:
    if len(value) > URL_MAX_LENGTH:
        raise ValueError(f"must be at most {URL_MAX_LENGTH} characters")
    try:
        _url_validator(value)
    except ValidationError:
        raise ValueError("is not a valid http(s) URL") from None
    return value


def validate_country_code(value: str) -> str:
    if not (len(value) == 2 and value.isascii() and value.isalpha()):
        raise ValueError("must be 2 letters (ISO 3166-1 alpha-2)")
    return value.upper()


def validate_party_id(value: str) -> str:
    if not (len(value) == 3 and is_printable_ascii(value) and value.isalnum()):
        raise ValueError("must be 3 letters or digits")
    return value.upper()


def join_url(base: str, *segments: str) -> str:
    """Join a peer's endpoint URL and path segments with exactly one '/' between them."""
    url = base.rstrip("/")
    for segment in segments:
        url += "/" + segment.strip("/")
    return url
