"""System checks: refuse insecure defaults and a missing OCPI identity in a deployment."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .ocpi.parties import parse_parties


@register(Tags.security, deploy=True)
def check_secrets(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    for name in ("SECRET_KEY", "OCPI_TOKEN_HMAC_KEY"):
        if str(getattr(settings, name)).startswith(settings.INSECURE_PREFIX):
            problems.append(Error(f"{name} uses the insecure development default.", id="ocpi.E001"))
    if settings.OCPI_TOKEN_ENCRYPTION_KEYS.startswith("aW5zZWN1cmUtZGV2LW9ubHkt"):
        problems.append(
            Error(
                "OCPI_TOKEN_ENCRYPTION_KEYS uses the insecure development default.", id="ocpi.E002"
            )
        )
    if not settings.OCPI_PUBLIC_URL.startswith("https://"):
        problems.append(Warning("OCPI_PUBLIC_URL is not https.", id="ocpi.W001"))
    return problems


@register()
def check_identity(app_configs: Any, **kwargs: Any) -> list[Error]:
    try:
        parse_parties(settings.OCPI_PARTIES)
    except ValueError as exc:
        return [Error(f"OCPI_PARTIES is invalid: {exc}", id="ocpi.E003")]
    return []
