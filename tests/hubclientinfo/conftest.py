"""Fixtures of the hubclientinfo tests: a hub partner that pushes ClientInfo to us, and, when we
are the hub (OCPI_PARTIES with role HUB), the connections whose ClientInfo we send.

``ocpi_platform.ocpi.parties`` caches the parsed parties by the OCPI_PARTIES text, so overriding
the setting with the ``settings`` fixture is enough (no cache to clear).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from credentials.models import ConnectionStatus, Partner, PartnerEndpoint
from locations import tasks as location_tasks
from outbox.tasks import deliver
from tests.conftest import RegisteredPartner, make_registered
from tests.fakes.partner import envelope

RECEIVER = "/ocpi/2.2.1/receiver/hubclientinfo"
SENDER = "/ocpi/2.2.1/sender/hubclientinfo"
VERSION_DETAILS = "/ocpi/2.2.1"
HUB_PARTIES = "NL:HUB:HUB"
MODULE = "hubclientinfo"


@pytest.fixture(autouse=True)
def _no_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """No Celery task leaves the process (a drain or a locations resend is only recorded)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(deliver, "apply_async", lambda **kw: calls.append(("deliver", kw)))
    monkeypatch.setattr(
        location_tasks.push_all_locations,
        "apply_async",
        lambda **kw: calls.append(("push_all_locations", kw)),
    )
    monkeypatch.setattr(
        location_tasks.push_all_locations,
        "delay",
        lambda **kw: calls.append(("push_all_locations", kw)),
    )
    return calls


@pytest.fixture
def hub(db: None) -> RegisteredPartner:
    """A partner registered with the single role HUB (DE/HUB): it may push ClientInfo to us."""
    return make_registered(
        "de-hub",
        country_code="DE",
        party_id="HUB",
        role="HUB",
        versions_url="https://hub.test/ocpi/versions",
        outbound_token="hub-token-c",
    )


@pytest.fixture
def emsp(db: None) -> RegisteredPartner:
    """A registered partner that is not a hub (DE/XYZ EMSP)."""
    return make_registered("de-emsp")


@pytest.fixture
def we_are_hub(settings: Any) -> None:
    settings.OCPI_PARTIES = HUB_PARTIES


def client_url(host: str) -> str:
    return f"https://{host}/ocpi/2.2.1/hubclientinfo"


def connection(
    name: str,
    country_code: str,
    party_id: str,
    role: str = "EMSP",
    *,
    receiver_url: str | None = None,
    status: ConnectionStatus = ConnectionStatus.CONNECTED,
    status_since: datetime | None = None,
    extra_roles: tuple[str, ...] = (),
) -> RegisteredPartner:
    """A registered partner of ours (we are the hub); with ``receiver_url`` it has a
    hubclientinfo RECEIVER endpoint. Status and extra roles are set without any signal."""
    host = f"{name}.test"
    registered = make_registered(
        name,
        country_code=country_code,
        party_id=party_id,
        role=role,
        versions_url=f"https://{host}/ocpi/versions",
        outbound_token=f"{name}-token",
    )
    partner = registered.partner
    for extra in extra_roles:
        partner.roles.create(
            role=extra,
            country_code=country_code,
            party_id=party_id,
            business_details={"name": name},
        )
    if receiver_url is not None:
        PartnerEndpoint.objects.create(
            partner=partner, identifier=MODULE, role="RECEIVER", url=receiver_url
        )
    Partner.objects.filter(pk=partner.pk).update(status=status, status_since=status_since)
    partner.refresh_from_db()
    return registered


@dataclass
class Recorder:
    """A fake receiving platform behind ``httpx.MockTransport``: records, answers 1000."""

    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=envelope())

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    from ocpi_platform.ocpi.client import use_transport

    fake = Recorder()
    with use_transport(fake.transport()):
        yield fake
