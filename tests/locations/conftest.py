"""Fixtures of the locations tests: a CPO partner that pushes to us, an eMSP we push to."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import RegisteredPartner, load_example, make_registered

RECEIVER = "/ocpi/2.2.1/receiver/locations"
SENDER = "/ocpi/2.2.1/sender/locations"
PARTNER_LOCATIONS = "https://partner.test/ocpi/2.2.1/locations"


@pytest.fixture
def cpo(db: None) -> RegisteredPartner:
    """A partner CPO (BE/BEC, the spec examples' party) that pushes its locations to us."""
    return make_registered(
        "be-cpo",
        country_code="BE",
        party_id="BEC",
        role="CPO",
        endpoints=(("locations", "SENDER", PARTNER_LOCATIONS),),
    )


@pytest.fixture
def emsp(db: None) -> RegisteredPartner:
    """A partner eMSP with a locations RECEIVER endpoint: our pushes go to it."""
    return make_registered(
        "de-emsp",
        country_code="DE",
        party_id="XYZ",
        role="EMSP",
        endpoints=(("locations", "RECEIVER", PARTNER_LOCATIONS),),
    )


def example(name: str = "location_example.json") -> Any:
    return copy.deepcopy(load_example(name))


def own_location(location_id: str = "LOC1", **changes: Any) -> dict[str, Any]:
    """The spec's example location, as one of ours (NL/ABC, see tests/settings.py)."""
    data = example()
    data.update(country_code="NL", party_id="ABC", id=location_id, **changes)
    return data
