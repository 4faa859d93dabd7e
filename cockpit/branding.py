"""Which instance is this? The admin header names our parties and public URL."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin import AdminSite

from ocpi_platform.ocpi.parties import parse_parties


def instance_label() -> str:
    """E.g. "NL*ABC (CPO, EMSP) · https://ocpi.example.com"."""
    try:
        parties = parse_parties(settings.OCPI_PARTIES)
    except ValueError:
        return str(settings.OCPI_PUBLIC_URL)
    by_party: dict[str, list[str]] = {}
    for party in parties:
        by_party.setdefault(f"{party.country_code}*{party.party_id}", []).append(str(party.role))
    names = ", ".join(f"{key} ({', '.join(roles)})" for key, roles in by_party.items())
    return f"{names} · {settings.OCPI_PUBLIC_URL}"


def brand(site: AdminSite) -> None:
    label = instance_label()
    site.site_header = f"{settings.OCPI_BUSINESS_NAME}: {label}"
    site.site_title = f"{settings.OCPI_BUSINESS_NAME} ({label})"
    site.index_title = "Cockpit"
    # No public site: "View site" would lead to a 404.
    site.site_url = None
    # Room for the list columns at 1,400 px (the breadcrumbs and the index lead everywhere).
    site.enable_nav_sidebar = False
