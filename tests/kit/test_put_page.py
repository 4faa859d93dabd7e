"""A page of a partner's objects stored at once (``kit.services.put_page``, the pull): the same
rules as one PUT per object, in a few statements whatever the page size (tariffs as the module)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kit import services
from kit.spec import ObjectKey
from ocpi_platform.ocpi.errors import InvalidParameters
from ocpi_platform.ocpi.types import format_datetime
from tariffs.models import Tariff
from tests.concurrency import race
from tests.conftest import make_registered
from tests.tariffs.conftest import example

BASE = datetime(2030, 1, 1, tzinfo=UTC)


def tariff(ident: str, stamp: datetime = BASE, currency: str = "EUR") -> dict[str, Any]:
    return {**example(), "id": ident, "currency": currency, "last_updated": format_datetime(stamp)}


def item(data: dict[str, Any]) -> tuple[ObjectKey, dict[str, Any]]:
    return ObjectKey(data["country_code"], data["party_id"], data["id"]), data


def currency(ident: str) -> str:
    return json.loads(Tariff.objects.get(object_id=ident).ocpi_json)["currency"]


@pytest.mark.django_db
def test_a_page_of_new_objects_is_stored_in_a_few_statements(
    spec, cpo, django_assert_max_num_queries
):
    page = [item(tariff(f"T{i}")) for i in range(50)]

    with django_assert_max_num_queries(7):  # 2 savepoints + release, 2 look-ups, 1 INSERT
        results = services.put_page(spec, page, owner=cpo.partner.pk)

    assert results == [None] * 50
    stored = Tariff.objects.filter(partner=cpo.partner)
    assert stored.count() == 50
    assert json.loads(stored.get(object_id="T7").ocpi_json) == tariff("T7")
    assert {t.id_upper for t in stored} == {f"T{i}" for i in range(50)}


@pytest.mark.django_db
def test_the_newest_last_updated_wins_and_an_unchanged_object_is_not_written(spec, cpo):
    owner = cpo.partner.pk
    services.put_page(
        spec, [item(tariff("OLD", BASE)), item(tariff("NEW", BASE)), item(tariff("SAME"))],
        owner=owner,
    )  # fmt: skip
    same_before = Tariff.objects.get(object_id="SAME").modified_at

    results = services.put_page(
        spec,
        [
            item(tariff("OLD", BASE - timedelta(hours=1), "USD")),  # older than ours
            item(tariff("NEW", BASE + timedelta(hours=1), "USD")),  # newer
            item(tariff("SAME")),  # what we hold
        ],
        owner=owner,
    )

    assert results == [None, None, None]
    assert currency("OLD") == "EUR"
    assert currency("NEW") == "USD"
    assert Tariff.objects.get(object_id="NEW").last_updated == BASE + timedelta(hours=1)
    assert Tariff.objects.get(object_id="SAME").modified_at == same_before


@pytest.mark.django_db
def test_invalid_objects_and_another_owners_are_refused_the_rest_stored(spec, cpo):
    other = make_registered("other-cpo", country_code="DE", party_id="OTH", role="CPO")
    theirs = {**tariff("THEIRS"), "party_id": "OTH"}
    services.put(spec, *item(theirs), owner=other.partner.pk)
    broken = {**tariff("BAD"), "currency": "EURO"}

    results = services.put_page(
        spec, [item(tariff("T1")), item(broken), item({**theirs, "currency": "USD"})],
        owner=cpo.partner.pk,
    )  # fmt: skip

    assert results[0] is None
    assert isinstance(results[1], InvalidParameters)
    assert "currency" in results[1].message
    assert isinstance(results[2], InvalidParameters)
    assert "another owner" in results[2].message
    assert list(Tariff.objects.filter(partner=cpo.partner).values_list("object_id", flat=True)) == [
        "T1"
    ]
    assert Tariff.objects.get(object_id="THEIRS").partner_id == other.partner.pk
    assert currency("THEIRS") == "EUR"


@pytest.mark.django_db
def test_a_key_twice_in_a_page_keeps_the_newer(spec, cpo):
    results = services.put_page(
        spec,
        [
            item(tariff("T1", BASE, "EUR")),
            item(tariff("t1", BASE + timedelta(seconds=1), "USD")),  # the same id (CiString)
            item(tariff("T1", BASE - timedelta(seconds=1), "GBP")),
        ],
        owner=cpo.partner.pk,
    )

    assert results == [None, None, None]
    assert Tariff.objects.count() == 1
    assert currency("t1") == "USD"


@pytest.mark.django_db(transaction=True)
def test_a_push_creating_the_same_object_during_the_page_loses_nothing():
    """A concurrent PUT inserts T1 (not yet committed) while the page is written: the page's
    insert waits on the unique index, fails, and each object is stored as a PUT would; the
    newest of both wins and the page's other object is stored."""
    owner = make_registered("cpo", country_code="DE", party_id="ALL", role="CPO").partner.pk
    from kit import spec_of
    from ocpi_platform.ocpi.registry import ModuleId

    spec = spec_of(ModuleId.TARIFFS)
    for round_, page_is_newer in enumerate((True, False)):
        ident, other = f"R{round_}", f"S{round_}"
        pushed = tariff(ident, BASE + timedelta(seconds=0 if page_is_newer else 2), "GBP")
        paged = tariff(ident, BASE + timedelta(seconds=1), "USD")

        def push(data: dict[str, Any] = pushed) -> None:
            services.put(spec, *item(data), owner=owner)

        (results,) = race(
            lambda p=paged, o=other: services.put_page(
                spec, [item(p), item(tariff(o))], owner=owner
            ),
            hold=push,
        )

        assert results == [None, None]
        assert Tariff.objects.filter(object_id=ident).count() == 1
        assert currency(ident) == ("USD" if page_is_newer else "GBP")
        assert Tariff.objects.filter(object_id=other, partner_id=owner).exists()
