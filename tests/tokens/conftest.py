"""Fixtures of the tokens tests: a CPO partner that asks us (the eMSP), an eMSP partner whose
tokens we (the CPO) hold, and tokens stored through the kit's one write path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import kit
from kit import services as kit_services
from ocpi_platform.ocpi.registry import ModuleId
from tests.conftest import RegisteredPartner, load_example, make_registered
from tokens.models import Token

SENDER = "/ocpi/2.2.1/sender/tokens"
RECEIVER = "/ocpi/2.2.1/receiver/tokens"
PARTNER_TOKENS = "https://partner.test/ocpi/2.2.1/tokens"


def example(name: str = "token_example_2_full_rfid.json") -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(load_example(name))
    return data


def token_data(uid: str = "TOKEN1", **changes: Any) -> dict[str, Any]:
    """The spec's full RFID example as one of ours (NL/ABC, see tests/settings.py)."""
    data = example()
    data.update({"country_code": "NL", "party_id": "ABC", "uid": uid, **changes})
    return data


def store(data: dict[str, Any], owner: int | None = None) -> Token:
    spec = kit.spec_of(ModuleId.TOKENS)
    outcome = kit_services.put(spec, spec.key_of(data), data, owner=owner, keep_timestamp=True)
    assert isinstance(outcome.obj, Token)
    return outcome.obj


def own_token(uid: str = "TOKEN1", **changes: Any) -> Token:
    return store(token_data(uid, **changes))


def partner_token(partner: RegisteredPartner, uid: str = "TOKEN1", **changes: Any) -> Token:
    """A copy of the partner eMSP's (DE/TNM) token."""
    data = example()
    data.update(uid=uid, **changes)
    return store(data, owner=partner.partner.pk)


@pytest.fixture
def cpo(db: None) -> RegisteredPartner:
    """A partner CPO (BE/BEC) with a tokens RECEIVER endpoint: it asks us to authorize."""
    return make_registered(
        "be-cpo",
        country_code="BE",
        party_id="BEC",
        role="CPO",
        endpoints=(("tokens", "RECEIVER", PARTNER_TOKENS),),
    )


@pytest.fixture
def emsp(db: None) -> RegisteredPartner:
    """A partner eMSP (DE/TNM, the spec examples' party) with a tokens SENDER endpoint."""
    return make_registered(
        "de-emsp",
        country_code="DE",
        party_id="TNM",
        role="EMSP",
        endpoints=(("tokens", "SENDER", PARTNER_TOKENS),),
    )
