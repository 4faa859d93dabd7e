"""System checks: refuse insecure defaults and a missing OCPI identity in a deployment."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .ocpi import urlpolicy
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


@register()
def check_outbound_allowed(app_configs: Any, **kwargs: Any) -> list[Error]:
    """A malformed OCPI_OUTBOUND_ALLOWED would fail every outbound call: refuse to start."""
    try:
        urlpolicy.current()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="ocpi.E004")]
    return []


@register(Tags.security, deploy=True)
def check_outbound_policy(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy`` reports the outbound URL policy in effect."""
    try:
        policy = urlpolicy.current()
    except ImproperlyConfigured:
        return []  # ocpi.E004 says why
    problems: list[CheckMessage] = [
        Info(f"Outbound URL policy: {policy.describe()}.", id="ocpi.I001")
    ]
    if policy.loopback_instance:
        problems.append(
            Error(
                "Outbound plain http and loopback addresses are allowed because OCPI_PUBLIC_URL "
                f"({settings.OCPI_PUBLIC_URL}) is http on loopback: a development setup, not a "
                "deployment.",
                id="ocpi.E005",
            )
        )
    if policy.allowed:
        problems.append(
            Warning(
                "OCPI_OUTBOUND_ALLOWED lets partners' URLs reach these hosts and networks "
                f"despite the address rules: {policy.allowed.describe()}.",
                hint="List only what a partner needs (its VPN address), never a whole range of "
                "internal services.",
                id="ocpi.W002",
            )
        )
    proxies = {k: v for k, v in urlpolicy.environment_proxies().items() if v}
    if proxies:
        problems.append(
            Info(
                "Outbound calls go through the proxy from the environment "
                f"({', '.join(sorted(proxies))}); targets are resolved and checked here first, "
                "but the proxy resolves each name again itself (CONNECT name:443), so a DNS "
                "answer that changes in between bypasses the address rules: the proxy must "
                "enforce them itself (refuse loopback, private, link-local and other "
                "non-public addresses).",
                id="ocpi.I002",
            )
        )
    return problems
