"""Fixtures of the outbox tests: a registered eMSP that receives our locations pushes, and the
fake partner platform behind it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from credentials.models import PartnerEndpoint
from ocpi_platform.ocpi.client import use_transport
from tests.conftest import RegisteredPartner, make_registered
from tests.fakes.locations_partner import LocationsPartner

LOCATIONS = "https://partner.test/ocpi/2.2.1/locations"


def receiver(name: str, url: str = LOCATIONS, **kwargs: Any) -> RegisteredPartner:
    """A registered partner with a locations RECEIVER endpoint at ``url``."""
    registered = make_registered(name, **kwargs)
    PartnerEndpoint.objects.create(
        partner=registered.partner, identifier="locations", role="RECEIVER", url=url
    )
    return registered


@pytest.fixture
def emsp(db: None) -> RegisteredPartner:
    return receiver("de-emsp", country_code="DE", party_id="XYZ", role="EMSP")


@pytest.fixture
def fake() -> Iterator[LocationsPartner]:
    """The receiving partners live behind this fake (told apart by host and token)."""
    partner = LocationsPartner(accepted_tokens={"partner-token-c", "other-token-c"})
    with use_transport(partner.transport()):
        yield partner
