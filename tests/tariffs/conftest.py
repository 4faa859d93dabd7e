"""Fixtures of the tariffs tests: a CPO partner that pushes its tariffs, an eMSP we push to."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kit import spec_of
from kit.spec import ModuleSpec
from ocpi_platform.ocpi.registry import ModuleId
from tests.conftest import RegisteredPartner, load_example, make_registered

RECEIVER = "/ocpi/2.2.1/receiver/tariffs"
SENDER = "/ocpi/2.2.1/sender/tariffs"
PARTNER_TARIFFS = "https://partner.test/ocpi/2.2.1/tariffs"


@pytest.fixture
def spec() -> ModuleSpec:
    return spec_of(ModuleId.TARIFFS)


@pytest.fixture
def cpo(db: None) -> RegisteredPartner:
    """A partner CPO (DE/ALL, the spec examples' party) with a tariffs SENDER endpoint."""
    return make_registered(
        "de-cpo",
        country_code="DE",
        party_id="ALL",
        role="CPO",
        endpoints=(("tariffs", "SENDER", PARTNER_TARIFFS),),
    )


@pytest.fixture
def emsp(db: None) -> RegisteredPartner:
    """A partner eMSP with a tariffs RECEIVER endpoint: our pushes go to it."""
    return make_registered(
        "be-emsp",
        country_code="BE",
        party_id="XYZ",
        role="EMSP",
        endpoints=(("tariffs", "RECEIVER", PARTNER_TARIFFS),),
    )


def example(name: str = "tariff_1_simple_2hour.json") -> Any:
    return copy.deepcopy(load_example(name))


def own_tariff(tariff_id: str = "T1", **changes: Any) -> dict[str, Any]:
    """A spec example tariff, as one of ours (NL/ABC, see tests/settings.py)."""
    data = example()
    data.update(country_code="NL", party_id="ABC", id=tariff_id, **changes)
    return data
