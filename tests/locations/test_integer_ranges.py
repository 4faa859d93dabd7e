"""Integers of a Location, EVSE or Connector beyond their database column are bad input (2001,
naming the field), not a database error answered 3000 "Internal server error"."""

from __future__ import annotations

import pytest

from locations import services
from locations.models import Connector
from locations.paths import ObjectPath
from tests.locations.conftest import RECEIVER, example, own_location

pytestmark = pytest.mark.django_db

LOC = f"{RECEIVER}/BE/BEC/LOC1"
CONNECTOR = f"{LOC}/3256/1"
NEWER = "2030-01-01T00:00:00Z"
INT_MAX = 2**31 - 1  # the integer column (PositiveIntegerField) of each of them
FIELDS = ["max_voltage", "max_amperage", "max_electric_power"]


def with_connector_value(field: str, value: int) -> dict:
    data = example()
    data["evses"][0]["connectors"][0][field] = value
    return data


@pytest.mark.parametrize("field", FIELDS)
# (Integers of more than 20 digits are refused by the JSON parser already: HTTP 400, 2001.)
@pytest.mark.parametrize("value", [INT_MAX + 1, 2**63, 10**19])
def test_a_put_with_a_too_large_integer_is_2001_naming_the_field(api, cpo, field, value):
    reply = api.put(LOC, token=cpo.inbound_token, body=with_connector_value(field, value))

    assert (reply.status, reply.code) == (200, 2001), reply.body
    assert field in reply.message
    assert str(INT_MAX) in reply.message


@pytest.mark.parametrize("field", FIELDS)
def test_the_largest_value_of_the_column_is_stored(api, cpo, field):
    reply = api.put(LOC, token=cpo.inbound_token, body=with_connector_value(field, INT_MAX))

    assert (reply.status, reply.code) == (201, 1000), reply.body
    connector = Connector.objects.get(evse__uid="3256", connector_id="1")
    assert getattr(connector, field) == INT_MAX


@pytest.mark.parametrize("field", FIELDS)
def test_a_connector_patch_with_a_too_large_integer_is_2001(api, cpo, field):
    assert api.put(LOC, token=cpo.inbound_token, body=example()).code == 1000

    body = {field: INT_MAX + 1, "last_updated": NEWER}
    reply = api.patch(CONNECTOR, token=cpo.inbound_token, body=body)

    assert (reply.status, reply.code) == (200, 2001), reply.body
    assert field in reply.message
    assert Connector.objects.get(evse__uid="3256", connector_id="1").max_voltage == 220


def test_an_evse_put_with_a_too_large_integer_is_2001(api, cpo):
    assert api.put(LOC, token=cpo.inbound_token, body=example()).code == 1000
    evse = example()["evses"][0]
    evse["connectors"][1]["max_amperage"] = INT_MAX + 1

    reply = api.put(f"{LOC}/3256", token=cpo.inbound_token, body=evse)

    assert (reply.status, reply.code) == (200, 2001), reply.body
    assert "max_amperage" in reply.message


def test_our_own_data_is_checked_too():
    data = own_location()
    data["evses"][0]["connectors"][0]["max_electric_power"] = INT_MAX + 1

    with pytest.raises(services.InvalidParameters, match="max_electric_power"):
        services.put(ObjectPath("NL", "ABC", "LOC1"), data, owner=None)
