"""Read a partner's versions list and version details; choose the version.

Used by every handshake step in both directions. Failures become the OCPI errors of the
credentials module: 3001 (cannot use the partner's API), 3002 (no mutual version) and 3003
(required endpoints missing).

Their messages go back to the partner: they quote at most the start of an OCPI envelope's
status_message (``PartnerError.public``), never a body of another answer, and nothing of a URL
our outbound policy refused (nothing was fetched). The operator gets the fuller text
(``operator_message``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocpi_platform.ocpi import urlpolicy
from ocpi_platform.ocpi.client import OcpiClient, PartnerError
from ocpi_platform.ocpi.errors import NoMutualEndpoints, PartnerApiUnusable, UnsupportedVersion
from ocpi_platform.ocpi.registry import SUPPORTED_VERSIONS
from ocpi_platform.ocpi.types import InterfaceRole, validate_url

# Endpoints we cannot work without: credentials, to rotate and unregister later.
REQUIRED_MODULES = ("credentials",)

# A 3002 names at most this many of the partner's versions, each cut to VERSION_CHARS.
LISTED_VERSIONS, VERSION_CHARS = 10, 16


class DiscoveryFailed(PartnerApiUnusable):
    """3001 after a failed call: ``message`` for the partner, ``operator_message`` for us."""

    def __init__(self, message: str, *, operator_message: str) -> None:
        super().__init__(message)
        self.operator_message = operator_message


def _failed(what: str, exc: PartnerError) -> DiscoveryFailed:
    return DiscoveryFailed(f"{what}: {exc.public}", operator_message=f"{what}: {exc.message}")


def _listed(versions: list[str]) -> str:
    names = [v if len(v) <= VERSION_CHARS else v[:VERSION_CHARS] + "…" for v in versions]
    more = len(names) - LISTED_VERSIONS
    shown = ", ".join(names[:LISTED_VERSIONS]) or "none"
    return f"{shown} and {more} more" if more > 0 else shown


@dataclass(frozen=True)
class Endpoint:
    identifier: str
    role: InterfaceRole
    url: str


@dataclass(frozen=True)
class Discovery:
    version: str
    details_url: str
    endpoints: tuple[Endpoint, ...]

    def url_of(self, identifier: str) -> str:
        for endpoint in self.endpoints:
            if endpoint.identifier == identifier:
                return endpoint.url
        raise NoMutualEndpoints(f"The partner offers no {identifier} endpoint.")


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def choose_version(versions: Any, wanted: str | None) -> tuple[str, str]:
    """Pick ``wanted`` or the highest version both sides support; return (version, url)."""
    if not isinstance(versions, list) or not versions:
        raise PartnerApiUnusable("The partner's versions endpoint returned no list of versions.")
    offered: dict[str, str] = {}
    for item in versions:
        if isinstance(item, dict) and isinstance(item.get("version"), str):
            url = item.get("url")
            if isinstance(url, str):
                offered[item["version"]] = url
    if not offered:
        raise PartnerApiUnusable("The partner's versions list has no valid {version, url} entry.")
    candidates = [wanted] if wanted else sorted(SUPPORTED_VERSIONS, key=_version_key, reverse=True)
    for version in candidates:
        if version in offered:
            try:
                return version, validate_url(offered[version])
            except ValueError as exc:
                raise PartnerApiUnusable(
                    f"The partner's URL for version {version} {exc}."
                ) from None
    listed = _listed(sorted(offered, key=_version_key))
    raise UnsupportedVersion(
        f"The partner's versions endpoint lists {listed}; we need {' or '.join(candidates)}."
    )


def parse_endpoints(details: Any, version: str) -> tuple[Endpoint, ...]:
    if not isinstance(details, dict) or not isinstance(details.get("endpoints"), list):
        raise PartnerApiUnusable("The partner's version details have no endpoints list.")
    endpoints: dict[tuple[str, InterfaceRole], Endpoint] = {}
    policy = urlpolicy.current()
    for item in details["endpoints"]:
        if not isinstance(item, dict):
            continue
        identifier, role, url = item.get("identifier"), item.get("role"), item.get("url")
        if not isinstance(identifier, str) or not isinstance(url, str):
            continue
        if identifier == "credentials":
            role = InterfaceRole.SENDER  # the role has no meaning for credentials
        if role not in (InterfaceRole.SENDER, InterfaceRole.RECEIVER):
            continue  # unknown values are ignored, not fatal
        try:
            validate_url(url)
        except ValueError:
            continue
        try:
            policy.check_url(url)
        except urlpolicy.PolicyViolation as exc:
            raise PartnerApiUnusable(
                f"The partner's version {version} details list {identifier[:40]} at a URL "
                f"we do not call: {exc.public}."
            ) from None
        endpoints[(identifier, InterfaceRole(role))] = Endpoint(
            identifier, InterfaceRole(role), url
        )
    present = {e.identifier for e in endpoints.values()}
    missing = [m for m in REQUIRED_MODULES if m not in present]
    if missing:
        raise NoMutualEndpoints(
            f"The partner's version {version} details lack the required "
            f"{', '.join(missing)} endpoint."
        )
    return tuple(endpoints.values())


def discover(client: OcpiClient, versions_url: str, *, version: str | None = None) -> Discovery:
    """GET versions, pick the version, GET its details (spec credentials, registration 1-3)."""
    try:
        versions = client.get(versions_url).data
    except PartnerError as exc:
        raise _failed("Could not read the partner's versions", exc) from None
    chosen, details_url = choose_version(versions, version)
    try:
        details = client.get(details_url).data
    except PartnerError as exc:
        raise _failed(f"Could not read the partner's version {chosen} details", exc) from None
    return Discovery(chosen, details_url, parse_endpoints(details, chosen))
