"""The tariffs receiver (kit receiver): GET, PUT, DELETE of a partner's tariff at
/{country_code}/{party_id}/{tariff_id}; ownership, ids, newest last_updated wins, 2001."""

from __future__ import annotations

import json

import pytest

from tariffs.models import Tariff
from tests.fixtures_names import TARIFF_EXAMPLES
from tests.tariffs.conftest import RECEIVER, example

pytestmark = pytest.mark.django_db


def url(tariff_id: str = "12", cc: str = "DE", pid: str = "ALL") -> str:
    return f"{RECEIVER}/{cc}/{pid}/{tariff_id}"


@pytest.mark.parametrize("name", TARIFF_EXAMPLES)
def test_every_spec_example_is_stored_and_served_unchanged(api, cpo, name):
    data = example(name)
    reply = api.put(url(data["id"]), token=cpo.inbound_token, body=data)
    assert (reply.status, reply.code) == (201, 1000), reply.message
    got = api.get(url(data["id"]), token=cpo.inbound_token)
    assert got.code == 1000
    assert got.data == data
    stored = Tariff.objects.get(partner=cpo.partner)
    assert json.loads(stored.ocpi_json) == data


def test_a_second_put_replaces_and_answers_200(api, cpo):
    data = example()
    api.put(url(), token=cpo.inbound_token, body=data)
    data["currency"] = "USD"
    data["last_updated"] = "2030-01-01T00:00:00Z"
    reply = api.put(url(), token=cpo.inbound_token, body=data)
    assert (reply.status, reply.code, reply.message) == (200, 1000, "Updated.")
    assert Tariff.objects.get().currency == "USD"


def test_an_older_put_is_not_applied(api, cpo):
    data = example()
    data["last_updated"] = "2030-01-01T00:00:00Z"
    api.put(url(), token=cpo.inbound_token, body=data)
    older = {**data, "currency": "USD", "last_updated": "2020-01-01T00:00:00Z"}
    reply = api.put(url(), token=cpo.inbound_token, body=older)
    assert reply.code == 1000
    assert "Not applied" in reply.message
    assert Tariff.objects.get().currency == "EUR"


def test_a_party_that_is_not_the_callers_is_refused_and_nothing_stored(api, cpo):
    data = {**example(), "country_code": "NL", "party_id": "OTH"}
    reply = api.put(url(cc="NL", pid="OTH"), token=cpo.inbound_token, body=data)
    assert reply.status == 404
    assert "not one of your parties" in reply.message
    assert not Tariff.objects.exists()


def test_a_delete_of_another_partys_tariff_is_refused_and_nothing_deleted(api, cpo):
    api.put(url(), token=cpo.inbound_token, body=example())
    reply = api.delete(url(cc="NL", pid="OTH"), token=cpo.inbound_token)
    assert reply.status == 404
    assert "not one of your parties" in reply.message
    assert Tariff.objects.count() == 1


def test_a_delete_removes_the_partners_tariff(api, cpo):
    api.put(url(), token=cpo.inbound_token, body=example())
    reply = api.delete(url(), token=cpo.inbound_token)
    assert (reply.status, reply.code) == (200, 1000)
    assert not Tariff.objects.exists()
    again = api.delete(url(), token=cpo.inbound_token)
    assert (again.status, again.code) == (404, 2001)


def test_a_partner_cannot_delete_our_tariff_of_the_same_key(api, cpo, spec):
    from kit import services
    from kit.spec import ObjectKey

    ours = {**example(), "country_code": "NL", "party_id": "ABC"}
    services.put(spec, ObjectKey("NL", "ABC", "12"), ours, owner=None)
    reply = api.delete(url(cc="NL", pid="ABC"), token=cpo.inbound_token)
    assert reply.status == 404
    assert Tariff.objects.filter(partner__isnull=True).count() == 1


def test_the_bodys_id_must_match_the_url(api, cpo):
    data = example()
    reply = api.put(url("OTHER"), token=cpo.inbound_token, body=data)
    assert (reply.status, reply.code) == (200, 2001)
    assert "does not match" in reply.message
    assert not Tariff.objects.exists()


def test_ids_compare_case_insensitively(api, cpo):
    data = example()
    reply = api.put(url("12", cc="de", pid="all"), token=cpo.inbound_token, body=data)
    assert reply.code == 1000
    assert api.get(url("12"), token=cpo.inbound_token).data == data


def test_a_put_without_last_updated_is_refused_with_2001(api, cpo):
    data = example("tariff_put_example.json")
    reply = api.put(url(data["id"]), token=cpo.inbound_token, body=data)
    assert (reply.status, reply.code) == (200, 2001)
    assert "last_updated" in reply.message
    assert not Tariff.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "euro"}, "currency"),
        ({"elements": []}, "elements"),
        (
            {"end_date_time": "2000-01-01T00:00:00Z", "start_date_time": "2001-01-01T00:00:00Z"},
            "end_date_time",
        ),
    ],
)
def test_an_invalid_tariff_is_answered_2001_naming_the_field(api, cpo, change, field):
    data = {**example(), **change}
    reply = api.put(url(), token=cpo.inbound_token, body=data)
    assert reply.code == 2001
    assert field in reply.message
    assert not Tariff.objects.exists()


def test_patch_is_not_allowed_for_tariffs(api, cpo):
    api.put(url(), token=cpo.inbound_token, body=example())
    reply = api.patch(url(), token=cpo.inbound_token, body={"currency": "USD"})
    assert reply.status == 405
    assert reply.code == 2000


def test_get_of_an_unknown_tariff_is_404(api, cpo):
    reply = api.get(url("NOPE"), token=cpo.inbound_token)
    assert (reply.status, reply.code) == (404, 2001)


def test_an_id_in_the_url_that_is_too_long_is_2001(api, cpo):
    reply = api.get(url("X" * 40), token=cpo.inbound_token)
    assert reply.code == 2001
    assert "object_id" in reply.message
